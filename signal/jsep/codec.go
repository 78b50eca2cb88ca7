// Package jsep is Hayate's narrow subset of JSEP (RFC 8829): it reads the
// capability SDP a Sora client puts in `connect`, writes the offers Hayate
// sends (the server is always the offerer in Sora's signaling) and checks the
// client's answers.
//
// pion/sdp/v3 does the lexing; the negotiation rules are ours. Hayate offers
// every codec with a fixed payload type, so a packet keeps its payload type
// from publisher to subscriber and needs no rewriting. No RTX and no header
// extensions are negotiated: retransmissions travel in the original stream
// (RFC 4585 §3.6.1 NACK without RTX), and the sdes:mid extension would name
// the publisher's mid in packets forwarded to a subscriber.
package jsep

import (
	"strconv"
	"strings"
)

// Kind is the media kind of a section.
type Kind string

// The two media kinds Hayate forwards.
const (
	Audio Kind = "audio"
	Video Kind = "video"
)

// Codec is one negotiated codec.
type Codec struct {
	Kind        Kind
	Name        string // as in rtpmap: opus, VP8, VP9, AV1, H264, H265
	ClockRate   uint32
	Channels    uint16 // audio only
	Fmtp        string
	PayloadType uint8
}

// Type is Sora's codec_type for the codec (OPUS, VP8, ...).
func (c Codec) Type() string { return strings.ToUpper(c.Name) }

// builtin is the codec table: Sora's codec_type → Hayate's fixed payload
// type and default description.
var builtin = map[string]Codec{
	"OPUS": {Kind: Audio, Name: "opus", ClockRate: 48000, Channels: 2, Fmtp: "minptime=10;useinbandfec=1", PayloadType: 111},
	"VP8":  {Kind: Video, Name: "VP8", ClockRate: 90000, PayloadType: 96},
	"VP9":  {Kind: Video, Name: "VP9", ClockRate: 90000, Fmtp: "profile-id=0", PayloadType: 98},
	"H264": {Kind: Video, Name: "H264", ClockRate: 90000, Fmtp: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f", PayloadType: 102},
	"AV1":  {Kind: Video, Name: "AV1", ClockRate: 90000, PayloadType: 104},
	"H265": {Kind: Video, Name: "H265", ClockRate: 90000, PayloadType: 106},
}

// Builtin returns Hayate's default description of codec_type t.
func Builtin(t string) (Codec, bool) {
	c, ok := builtin[strings.ToUpper(t)]
	return c, ok
}

// videoFeedback is the RTCP feedback Hayate offers for video (RFC 4585 NACK and
// PLI, RFC 5104 FIR).
var videoFeedback = []string{"nack", "nack pli", "ccm fir"}

// Capabilities is what a client can receive and send, read from the SDP in
// its connect message.
type Capabilities struct {
	// Known is false when the client sent no SDP; every codec is then assumed.
	Known  bool
	codecs map[Kind][]Codec
	// What the SDP shows beyond codecs (simulcast.go).
	transportCC, remb, rtx, rid bool
}

// Choose returns the codec to use for codec_type t, with the client's own fmtp
// where it offered one. It fails when the client cannot handle t.
func (c Capabilities) Choose(t string) (Codec, bool) {
	want, ok := Builtin(t)
	if !ok {
		return Codec{}, false
	}
	if !c.Known {
		return want, true
	}
	for _, have := range c.codecs[want.Kind] {
		if matches(want, have) {
			out := want
			if have.Fmtp != "" && want.Kind == Video {
				out.Fmtp = have.Fmtp
			}
			return out, true
		}
	}
	return Codec{}, false
}

// Supports reports whether the client can receive codec c as offered.
func (c Capabilities) Supports(codec Codec) bool {
	if !c.Known {
		return true
	}
	for _, have := range c.codecs[codec.Kind] {
		if matches(codec, have) && (codec.Name != "H264" || fmtpParam(have.Fmtp, "profile-level-id") == fmtpParam(codec.Fmtp, "profile-level-id")) {
			return true
		}
	}
	return false
}

// matches compares a codec Hayate wants with one a client described.
func matches(want, have Codec) bool {
	if !strings.EqualFold(want.Name, have.Name) || want.ClockRate != have.ClockRate {
		return false
	}
	switch strings.ToUpper(want.Name) {
	case "VP9":
		return fmtpParam(have.Fmtp, "profile-id") == "" || fmtpParam(have.Fmtp, "profile-id") == "0"
	case "AV1":
		return fmtpParam(have.Fmtp, "profile") == "" || fmtpParam(have.Fmtp, "profile") == "0"
	case "H264":
		// Packetization mode 1 (RFC 6184 §6.3) is what browsers send.
		return fmtpParam(have.Fmtp, "packetization-mode") == "1"
	}
	return true
}

// fmtpParam returns the value of key in an fmtp parameter list.
func fmtpParam(fmtp, key string) string {
	for _, p := range strings.Split(fmtp, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return ""
}

// parseRtpmap reads "<pt> <name>/<clock>[/<channels>]".
func parseRtpmap(v string) (pt uint8, c Codec, ok bool) {
	ptText, rest, ok := strings.Cut(v, " ")
	if !ok {
		return 0, c, false
	}
	n, err := strconv.ParseUint(ptText, 10, 7)
	if err != nil {
		return 0, c, false
	}
	parts := strings.Split(strings.TrimSpace(rest), "/")
	if len(parts) < 2 {
		return 0, c, false
	}
	clock, err := strconv.ParseUint(parts[1], 10, 32)
	if err != nil {
		return 0, c, false
	}
	c = Codec{Name: parts[0], ClockRate: uint32(clock), PayloadType: uint8(n)}
	if len(parts) > 2 {
		ch, err := strconv.ParseUint(parts[2], 10, 16)
		if err != nil {
			return 0, c, false
		}
		c.Channels = uint16(ch)
	}
	return uint8(n), c, true
}
