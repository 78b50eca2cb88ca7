package signal

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/hayate-sfu/hayate/media"
	"github.com/hayate-sfu/hayate/signal/jsep"
)

// Simulcast the Sora way (https://sora-doc.shiguredo.jp/SIMULCAST).
//
// A publisher that connects with `simulcast: true` (or is given it by the
// auth webhook) is offered a video section that receives rids r0, r1 and
// r2 (RFC 8853), and the offer's `encodings`, which sora-js-sdk applies to
// its video sender: r0 at a quarter of the resolution, r1 at half, r2 at
// full. With a video bit_rate, each encoding's maxBitrate is its share of
// it in the proportions of the targets libwebrtc gives the three streams of
// 720p (150, 500 and 2500 kbit/s, the table Sora's document reproduces);
// without one the browser's own allocation applies. The auth webhook's
// simulcast_encodings replace them.
//
// Every subscriber receives a simulcast track as one stream. What it gets
// is capped by the rid it asks for (simulcast_rid, or the newer
// simulcast_request_rid; "none" is no video) and, per publisher, by the
// RequestRtpStream / RequestSimulcastRid API; within the cap the media path
// picks the best stream the subscriber's network carries. Hayate's default
// cap is r2 (Sora's is r0): without a rid, a viewer gets the best its link
// carries. Each switch is notified to the viewer as simulcast.switched.

// ridLayer maps a rid to a media layer; "" is no cap.
func ridLayer(rid string) (int, bool) {
	switch rid {
	case "":
		return media.LayerMax, true
	case "none":
		return media.LayerNone, true
	case "auto":
		return media.LayerMax, true
	}
	if i := slices.Index(jsep.SimulcastRIDs, rid); i >= 0 {
		return i, true
	}
	return 0, false
}

// layerRID is the rid of a media layer.
func layerRID(l int) string {
	if l >= 0 && l < len(jsep.SimulcastRIDs) {
		return jsep.SimulcastRIDs[l]
	}
	if l == media.LayerMax {
		return jsep.SimulcastRIDs[len(jsep.SimulcastRIDs)-1]
	}
	return "none"
}

// applySimulcast takes simulcast, simulcast_rid and simulcast_request_rid
// from connect.
func (c *Conn) applySimulcast(cm *connectMessage, videoBitRate int) *CloseError {
	c.simulcast = cm.Simulcast != nil && *cm.Simulcast
	c.videoBitRate = videoBitRate
	rid := cm.SimulcastRid
	if cm.SimulcastRequestRid != "" {
		rid = cm.SimulcastRequestRid
	}
	l, ok := ridLayer(rid)
	if !ok {
		return ErrInvalidSimulcastRid
	}
	c.ridCap.Store(int32(l))
	return nil
}

// applySimulcastPayouts applies the auth webhook's simulcast payouts.
func (c *Conn) applySimulcastPayouts(simulcast *bool, rid *string, encodings json.RawMessage, bitRate *int) *CloseError {
	if simulcast != nil {
		c.simulcast = *simulcast
	}
	if rid != nil {
		l, ok := ridLayer(*rid)
		if !ok {
			return ErrInvalidSimulcastRid
		}
		c.ridCap.Store(int32(l))
	}
	if bitRate != nil && *bitRate >= 0 {
		c.videoBitRate = *bitRate
	}
	if e := nonNull(encodings); e != nil {
		var list []map[string]any
		if json.Unmarshal(e, &list) != nil || len(list) == 0 {
			return ErrInvalidSimulcastEncodings
		}
		c.encodings = e
	}
	return nil
}

// encoding is one entry of the offer's encodings (RTCRtpEncodingParameters).
type encoding struct {
	RID                   string  `json:"rid"`
	Active                bool    `json:"active"`
	ScaleResolutionDownBy float64 `json:"scaleResolutionDownBy"`
	MaxBitrate            int     `json:"maxBitrate,omitempty"`
	ScalabilityMode       string  `json:"scalabilityMode,omitempty"`
}

// simulcastEncodings are the encodings of a publisher's offer: the auth
// webhook's, else r0..r2 at scales 4, 2, 1 with their shares of the video
// bit rate (kbit/s; 0: none given). For VP9 and AV1 each encoding names
// its scalability mode (L1T3): without one, Chromium encodes the three as
// spatial layers of a single stream (its legacy SVC) instead of three
// streams.
func simulcastEncodings(codec string, bitRate int) []encoding {
	scales := []float64{4, 2, 1}
	targets := []int{150, 500, 2500} // libwebrtc's 720p targets, kbit/s
	total := 0
	for _, t := range targets {
		total += t
	}
	out := make([]encoding, len(jsep.SimulcastRIDs))
	used := 0
	for i, rid := range jsep.SimulcastRIDs {
		out[i] = encoding{RID: rid, Active: true, ScaleResolutionDownBy: scales[i]}
		if codec == "VP9" || codec == "AV1" {
			out[i].ScalabilityMode = "L1T3"
		}
		if bitRate > 0 {
			share := bitRate * 1000 * targets[i] / total
			if i == len(out)-1 {
				share = bitRate*1000 - used
			}
			out[i].MaxBitrate = share
			used += share
		}
	}
	return out
}

// offersSimulcast reports whether c's own video section asks for
// simulcast: a sending role with simulcast on, whose client can name
// streams by rid.
func (c *Conn) offersSimulcast() bool {
	return c.simulcast && c.role.Sends() && c.caps.SupportsRID()
}

// publisherExtras are the extras of the section receiving c's own media.
func (c *Conn) publisherExtras(kind jsep.Kind) jsep.Extras {
	var x jsep.Extras
	if c.caps.SupportsTransportCC() {
		x.Ext, x.TransportCC = []jsep.Extension{jsep.ExtTWCC}, true
	}
	if kind == jsep.Video && c.offersSimulcast() {
		x.Ext = append([]jsep.Extension{jsep.ExtMID, jsep.ExtRID}, x.Ext...)
		x.RIDs = jsep.SimulcastRIDs
	}
	if kind == jsep.Audio && c.spot.on {
		x.Ext = append(x.Ext, jsep.ExtAudioLevel)
	}
	return x
}

// subscriberExtras are the extras of a section carrying a track to m, and
// the RTX SSRC of that section's stream (0: none).
func subscriberExtras(m *Conn, tr media.Track) (jsep.Extras, uint32) {
	var x jsep.Extras
	if m.caps.SupportsTransportCC() {
		x.Ext, x.TransportCC = []jsep.Extension{jsep.ExtTWCC}, true
	}
	if tr.Kind == media.Video {
		x.REMB = m.caps.SupportsREMB()
		if len(tr.RIDs) > 0 && m.caps.SupportsRTX() {
			x.RTX = true
			return x, rand.Uint32() | 1
		}
	}
	return x, 0
}

// remoteExtras reads the congestion control and extension parameters of
// an answer for the media path.
func remoteExtras(a *jsep.Answer) (media.Extensions, bool, bool) {
	var ext media.Extensions
	var twcc, remb bool
	for _, s := range a.Sections {
		if s.Rejected {
			continue
		}
		if id := s.ExtID(jsep.ExtTWCC); id != 0 && s.TransportCC {
			ext.TWCC, twcc = id, true
		}
		if id := s.ExtID(jsep.ExtRID); id != 0 {
			ext.RID = id
		}
		if id := s.ExtID(jsep.ExtMID); id != 0 {
			ext.MID = id
		}
		if id := s.ExtID(jsep.ExtAudioLevel); id != 0 {
			ext.AudioLevel = id
		}
		remb = remb || s.REMB
	}
	return ext, twcc, remb
}

// capFor is the layer cap of c's stream of sender's video.
func (c *Conn) capFor(sender string) int {
	c.ridMu.Lock()
	defer c.ridMu.Unlock()
	if l, ok := c.ridBySender[sender]; ok {
		return l
	}
	if c.spot.on {
		if l, ok := c.spotBySender[sender]; ok {
			return l
		}
		return c.spot.unfocus
	}
	return int(c.ridCap.Load())
}

// applyCapsLocked caps what c receives of each track of p.
func applyCapsLocked(c, p *Conn) {
	lt, ok := c.tr.(media.LayerTransport)
	if !ok || p.tr == nil {
		return
	}
	l := c.capFor(p.id)
	for _, tr := range p.tracks {
		if len(tr.RIDs) > 0 {
			lt.LimitLayer(p.tr, tr.SSRC, l)
		}
	}
}

// RequestRid caps the simulcast stream receiverID receives of senderID's
// video (of every publisher when senderID is empty) at rid (none, r0, r1,
// r2, or auto for no cap); reset returns it to the connection's own rid
// (Sora: RequestRtpStream, RequestSimulcastRid, ResetRtpStream).
func (h *Hub) RequestRid(channelID, receiverID, senderID, rid string, reset bool) error {
	l, ok := ridLayer(rid)
	if !ok && !reset {
		return ErrInvalidRid
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	ch := h.channels[channelID]
	if ch == nil {
		return ErrChannelNotFound
	}
	c := h.conns[receiverID]
	if c == nil || c.ch != ch {
		return ErrConnectionNotFound
	}
	var senders []*Conn
	if senderID != "" {
		p := h.conns[senderID]
		if p == nil || p.ch != ch {
			return ErrConnectionNotFound
		}
		senders = []*Conn{p}
	} else {
		senders = ch.members
	}
	c.ridMu.Lock()
	if c.ridBySender == nil {
		c.ridBySender = map[string]int{}
	}
	for _, p := range senders {
		if reset {
			delete(c.ridBySender, p.id)
		} else {
			c.ridBySender[p.id] = l
		}
	}
	c.ridMu.Unlock()
	h.stats.RidRequests.Add(1)
	for _, p := range senders {
		if p != c {
			applyCapsLocked(c, p)
		}
	}
	return nil
}

// simulcastSwitched is Sora's notify simulcast.switched (docs/spec/sora-protocol.md §1.9).
type simulcastSwitched struct {
	Type               string   `json:"type"`
	EventType          string   `json:"event_type"`
	Timestamp          string   `json:"timestamp"`
	SenderConnectionID string   `json:"sender_connection_id"`
	Priority           string   `json:"priority"`
	Trigger            string   `json:"trigger"`
	RPCRids            []string `json:"rpc_rids"`
	AutoRids           []string `json:"auto_rids"`
	RequestRid         string   `json:"request_rid"`
	CurrentRid         string   `json:"current_rid"`
	PreviousRid        string   `json:"previous_rid"`
}

// Switched implements media.LayerEvents: the viewer is told in a
// simulcast.switched notify.
func (c *Conn) Switched(sender string, _ uint32, from, to int, cause media.SwitchCause) {
	c.hub.stats.SimulcastSwitched.Add(1)
	if !c.notify {
		return
	}
	m := simulcastSwitched{Type: "notify", EventType: "simulcast.switched", Timestamp: timestamp(time.Now()),
		SenderConnectionID: sender, Priority: "lower", Trigger: "receiver", RPCRids: []string{}, AutoRids: []string{},
		RequestRid: layerRID(c.capFor(sender)), CurrentRid: layerRID(to), PreviousRid: layerRID(from)}
	if to > from {
		m.Priority = "higher"
	}
	if cause == media.BySender {
		m.Trigger = "sender"
	}
	if b, err := json.Marshal(m); err == nil {
		c.signal(labelNotify, b)
	}
}
