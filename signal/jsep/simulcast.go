package jsep

import (
	"slices"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// RTP header extensions, RTX and congestion feedback.
//
// Hayate is always the offerer, so it picks one id per header extension
// (RFC 8285) for every connection: a packet's extensions mean the same on
// every transport. Publishers' sections offer mid and rid (RFC 8852: how a
// simulcast stream names itself when the answer lists no SSRCs) and
// transport-cc; subscribers' sections offer transport-cc. The payload type
// of a codec's RTX (RFC 4588) is the codec's plus one.

// Extension is an RTP header extension with the id Hayate gives it.
type Extension struct {
	ID  uint8
	URI string
}

// The header extensions Hayate offers.
var (
	ExtMID  = Extension{1, "urn:ietf:params:rtp-hdrext:sdes:mid"}
	ExtRID  = Extension{2, "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id"}
	ExtRRID = Extension{3, "urn:ietf:params:rtp-hdrext:sdes:repaired-rtp-stream-id"}
	// ExtTWCC carries the transport-wide sequence number of transport-cc
	// (draft-holmer-rmcat-transport-wide-cc-extensions-01 §2).
	ExtTWCC = Extension{4, "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"}
	// ExtAudioLevel is the client-to-mixer audio level (RFC 6464), offered
	// to spotlight publishers' audio.
	ExtAudioLevel = Extension{5, "urn:ietf:params:rtp-hdrext:ssrc-audio-level"}
)

// SimulcastRIDs are the rids of Sora's simulcast, lowest stream first.
var SimulcastRIDs = []string{"r0", "r1", "r2"}

// Extras is what a media section offers besides its codec.
type Extras struct {
	// Ext are the header extensions offered.
	Ext []Extension
	// TransportCC and REMB offer the rtcp-fb of transport-wide congestion
	// control and of goog-remb (video).
	TransportCC, REMB bool
	// RTX offers retransmissions in a separate stream (RFC 4588) with
	// payload type RTXPayloadType(codec).
	RTX bool
	// RIDs, on a section Hayate receives, ask for rid-based simulcast
	// (RFC 8851 a=rid, RFC 8853 a=simulcast), lowest stream first.
	RIDs []string
}

// RTXPayloadType is the payload type of codec's RTX.
func RTXPayloadType(c Codec) uint8 { return c.PayloadType + 1 }

// formats is the m= line's payload type list.
func (s Section) formats() string {
	pt := strconv.Itoa(int(s.Codec.PayloadType))
	if s.RTX {
		pt += " " + strconv.Itoa(int(RTXPayloadType(s.Codec)))
	}
	return pt
}

// writeExtras writes a section's extensions, feedback, RTX and simulcast
// attributes (after its codec's rtpmap, fmtp and rtcp-fb).
func (s Section) writeExtras(b *strings.Builder) {
	pt := strconv.Itoa(int(s.Codec.PayloadType))
	if s.TransportCC {
		b.WriteString("a=rtcp-fb:" + pt + " transport-cc\r\n")
	}
	if s.REMB && s.Kind == Video {
		b.WriteString("a=rtcp-fb:" + pt + " goog-remb\r\n")
	}
	if s.RTX {
		rtx := strconv.Itoa(int(RTXPayloadType(s.Codec)))
		b.WriteString("a=rtpmap:" + rtx + " rtx/" + strconv.FormatUint(uint64(s.Codec.ClockRate), 10) + "\r\n")
		b.WriteString("a=fmtp:" + rtx + " apt=" + pt + "\r\n")
	}
	for _, e := range s.Ext {
		b.WriteString("a=extmap:" + strconv.Itoa(int(e.ID)) + " " + e.URI + "\r\n")
	}
	if len(s.RIDs) > 0 && s.Direction == RecvOnly {
		for _, r := range s.RIDs {
			b.WriteString("a=rid:" + r + " recv\r\n")
		}
		b.WriteString("a=simulcast:recv " + strings.Join(s.RIDs, ";") + "\r\n")
	}
}

// writeRTXSource writes the RTX stream of a sending section (RFC 4588
// §8.2: the ssrc-group FID ties it to the primary stream).
func (s Section) writeRTXSource(b *strings.Builder) {
	src := s.Source
	if !s.RTX || src.RTXSSRC == 0 {
		return
	}
	ssrc, rtx := strconv.FormatUint(uint64(src.SSRC), 10), strconv.FormatUint(uint64(src.RTXSSRC), 10)
	b.WriteString("a=ssrc-group:FID " + ssrc + " " + rtx + "\r\n")
	b.WriteString("a=ssrc:" + rtx + " cname:" + src.CNAME + "\r\n")
	b.WriteString("a=ssrc:" + rtx + " msid:" + src.StreamID + " " + src.TrackID + "\r\n")
}

// AnswerExtras is what an answered section accepted of the Extras.
type AnswerExtras struct {
	// Ext maps the accepted header extensions' URIs to their ids.
	Ext map[string]uint8
	// TransportCC and REMB: the answer kept the rtcp-fb.
	TransportCC, REMB bool
	// RTX: the answer kept the RTX payload type.
	RTX bool
	// RIDs are the simulcast streams the client will send (its
	// a=simulcast:send, without paused or unknown ones), in the offer's
	// order.
	RIDs []string
}

// ExtID is the id of the accepted extension e, 0 when not accepted.
func (a AnswerExtras) ExtID(e Extension) uint8 { return a.Ext[e.URI] }

// parseExtras reads the extras of an answered section md, answering want.
func parseExtras(md *sdp.MediaDescription, want Section, sec *AnswerSection) {
	pt := strconv.Itoa(int(want.Codec.PayloadType))
	rtx := strconv.Itoa(int(RTXPayloadType(want.Codec)))
	sec.RTX = want.RTX && slices.Contains(md.MediaName.Formats, rtx)
	var sendRIDs []string
	var simulcast []string
	for _, a := range md.Attributes {
		switch a.Key {
		case "extmap":
			idText, rest, _ := strings.Cut(a.Value, " ")
			idText, _, _ = strings.Cut(idText, "/") // id/direction
			uri, _, _ := strings.Cut(strings.TrimSpace(rest), " ")
			id, err := strconv.ParseUint(idText, 10, 8)
			if err != nil || id == 0 || id > 14 {
				continue // not a one-byte id (RFC 8285 §4.2)
			}
			for _, e := range want.Ext {
				if e.URI == uri && uint8(id) == e.ID {
					if sec.Ext == nil {
						sec.Ext = map[string]uint8{}
					}
					sec.Ext[uri] = uint8(id)
				}
			}
		case "rtcp-fb":
			p, fb, _ := strings.Cut(a.Value, " ")
			if p != pt && p != "*" {
				continue
			}
			switch strings.TrimSpace(fb) {
			case "transport-cc":
				sec.TransportCC = want.TransportCC
			case "goog-remb":
				sec.REMB = want.REMB
			}
		case "rid":
			id, dir, _ := strings.Cut(a.Value, " ")
			if d, _, _ := strings.Cut(dir, " "); d == "send" {
				sendRIDs = append(sendRIDs, id)
			}
		case "simulcast":
			dir, list, _ := strings.Cut(strings.TrimSpace(a.Value), " ")
			if dir != "send" {
				continue
			}
			for _, alt := range strings.Split(list, ";") {
				// RFC 8853 §5.1: alternatives separated by commas, the
				// first is used; "~" marks a paused stream.
				r, _, _ := strings.Cut(alt, ",")
				if !strings.HasPrefix(r, "~") {
					simulcast = append(simulcast, strings.TrimSpace(r))
				}
			}
		}
	}
	if sec.Ext[ExtTWCC.URI] == 0 {
		sec.TransportCC = false
	}
	if len(want.RIDs) == 0 || sec.Ext[ExtRID.URI] == 0 {
		return
	}
	for _, r := range want.RIDs {
		if slices.Contains(simulcast, r) && slices.Contains(sendRIDs, r) {
			sec.RIDs = append(sec.RIDs, r)
		}
	}
}

// Supports reports what the client said it can do in its connect SDP: the
// transport-cc and goog-remb feedback, RTX, and rid-based simulcast (the
// rtp-stream-id extension). Unknown capabilities support everything.
func (c Capabilities) SupportsTransportCC() bool { return !c.Known || c.transportCC }

// SupportsREMB: see SupportsTransportCC.
func (c Capabilities) SupportsREMB() bool { return !c.Known || c.remb }

// SupportsRTX: see SupportsTransportCC.
func (c Capabilities) SupportsRTX() bool { return !c.Known || c.rtx }

// SupportsRID: see SupportsTransportCC.
func (c Capabilities) SupportsRID() bool { return !c.Known || c.rid }

// readCapabilityExtras notes the extras a capability SDP attribute shows.
func (c *Capabilities) readCapabilityExtras(a sdp.Attribute) {
	switch a.Key {
	case "rtcp-fb":
		switch _, fb, _ := strings.Cut(a.Value, " "); strings.TrimSpace(fb) {
		case "transport-cc":
			c.transportCC = true
		case "goog-remb":
			c.remb = true
		}
	case "rtpmap":
		if _, codec, ok := strings.Cut(a.Value, " "); ok && strings.HasPrefix(strings.ToLower(codec), "rtx/") {
			c.rtx = true
		}
	case "extmap":
		if strings.Contains(a.Value, ExtRID.URI) && !strings.Contains(a.Value, ExtRRID.URI) {
			c.rid = true
		}
	}
}
