package jsep

import (
	"net/netip"
	"strconv"
	"strings"
)

// Direction is an SDP media direction (RFC 8866 §6.7), seen from the side
// that writes it.
type Direction string

// The four directions.
const (
	SendRecv Direction = "sendrecv"
	SendOnly Direction = "sendonly"
	RecvOnly Direction = "recvonly"
	Inactive Direction = "inactive"
)

// answerAllowed reports whether d is a valid answer to an offer of o
// (RFC 3264 §6.1).
func (o Direction) answerAllowed(d Direction) bool {
	switch o {
	case SendRecv:
		return true
	case SendOnly:
		return d == RecvOnly || d == Inactive
	case RecvOnly:
		return d == SendOnly || d == Inactive
	default:
		return d == Inactive
	}
}

// Section is one m-section of an offer.
type Section struct {
	Mid       string
	Kind      Kind
	Direction Direction
	Codec     Codec
	// Source is set on sections that carry a publisher's track to the client.
	Source *Source
	// Extras are header extensions, feedback, RTX and simulcast
	// (simulcast.go).
	Extras
}

// Source is a stream the server sends in a section (RFC 8830 msid, RFC 5576
// ssrc attributes).
type Source struct {
	SSRC uint32
	// RTXSSRC is the SSRC of the section's RTX stream (with Extras.RTX).
	RTXSSRC  uint32
	CNAME    string
	StreamID string
	TrackID  string
}

// Offer is an SDP offer from Hayate. Sections are only ever appended or
// changed in place, never removed or reordered (RFC 8829 §5.2.2).
type Offer struct {
	SessionID   uint64
	Version     uint64
	Ufrag, Pwd  string
	Fingerprint string // upper-case sha-256 hex pairs
	Candidate   netip.AddrPort
	// TCPCandidate, when valid, is a passive ICE-TCP host candidate
	// (RFC 6544) offered after the UDP one.
	TCPCandidate netip.AddrPort
	Sections     []Section
	// MaxMessageSize is the a=max-message-size of an m=application
	// section (application.go).
	MaxMessageSize int
}

// Marshal writes the offer. It is an ICE-lite (RFC 8445 §2.5), BUNDLE
// (RFC 9143), rtcp-mux (RFC 5761) offer with a=setup:actpass (RFC 8842),
// whose host candidates (UDP, and passive TCP when TCPCandidate is set) are
// in every section.
func (o *Offer) Marshal() string {
	var b strings.Builder
	b.Grow(512 + 512*len(o.Sections))
	b.WriteString("v=0\r\no=- ")
	b.WriteString(strconv.FormatUint(o.SessionID, 10))
	b.WriteByte(' ')
	b.WriteString(strconv.FormatUint(o.Version, 10))
	b.WriteString(" IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n")
	if len(o.Sections) > 0 {
		b.WriteString("a=group:BUNDLE")
		for _, s := range o.Sections {
			b.WriteByte(' ')
			b.WriteString(s.Mid)
		}
		b.WriteString("\r\n")
	}
	b.WriteString("a=ice-lite\r\na=msid-semantic: WMS *\r\n")
	candidate := "a=candidate:1 1 udp 2130706431 " + o.Candidate.Addr().String() + " " +
		strconv.Itoa(int(o.Candidate.Port())) + " typ host\r\n"
	if o.TCPCandidate.IsValid() {
		candidate += "a=candidate:2 1 tcp " + strconv.FormatUint(TCPPassivePriority, 10) + " " +
			o.TCPCandidate.Addr().String() + " " + strconv.Itoa(int(o.TCPCandidate.Port())) + " typ host tcptype passive\r\n"
	}
	for _, s := range o.Sections {
		if s.Kind == Application {
			o.writeApplication(&b, s, candidate)
			continue
		}
		pt := strconv.Itoa(int(s.Codec.PayloadType))
		b.WriteString("m=" + string(s.Kind) + " 9 UDP/TLS/RTP/SAVPF " + s.formats() + "\r\n")
		b.WriteString("c=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n")
		b.WriteString("a=ice-ufrag:" + o.Ufrag + "\r\na=ice-pwd:" + o.Pwd + "\r\n")
		b.WriteString("a=fingerprint:sha-256 " + o.Fingerprint + "\r\n")
		b.WriteString("a=setup:actpass\r\na=mid:" + s.Mid + "\r\n")
		b.WriteString("a=" + string(s.Direction) + "\r\na=rtcp-mux\r\na=rtcp-rsize\r\n")
		b.WriteString("a=rtpmap:" + pt + " " + s.Codec.Name + "/" + strconv.FormatUint(uint64(s.Codec.ClockRate), 10))
		if s.Codec.Channels > 0 {
			b.WriteString("/" + strconv.Itoa(int(s.Codec.Channels)))
		}
		b.WriteString("\r\n")
		if s.Codec.Fmtp != "" {
			b.WriteString("a=fmtp:" + pt + " " + s.Codec.Fmtp + "\r\n")
		}
		if s.Kind == Video {
			for _, fb := range videoFeedback {
				b.WriteString("a=rtcp-fb:" + pt + " " + fb + "\r\n")
			}
		}
		s.writeExtras(&b)
		if src := s.Source; src != nil && (s.Direction == SendOnly || s.Direction == SendRecv) {
			ssrc := strconv.FormatUint(uint64(src.SSRC), 10)
			b.WriteString("a=msid:" + src.StreamID + " " + src.TrackID + "\r\n")
			b.WriteString("a=ssrc:" + ssrc + " cname:" + src.CNAME + "\r\n")
			b.WriteString("a=ssrc:" + ssrc + " msid:" + src.StreamID + " " + src.TrackID + "\r\n")
			s.writeRTXSource(&b)
		}
		b.WriteString(candidate)
		b.WriteString("a=end-of-candidates\r\n")
	}
	return b.String()
}

// TCPPassivePriority is the priority of the passive ICE-TCP host
// candidate (RFC 8445 §5.1.2.1 with RFC 6544 §4.2): a type preference of
// 90, below UDP's 126 so that a client that can reach the UDP candidate
// prefers it, and a local preference of 2^13 × 4 (passive) + 8191.
const TCPPassivePriority = 90<<24 | (4<<13+8191)<<8 | 255

// Clone returns a deep copy of the offer, for a snapshot of what was sent.
func (o *Offer) Clone() *Offer {
	c := *o
	c.Sections = make([]Section, len(o.Sections))
	for i, s := range o.Sections {
		c.Sections[i] = s
		if s.Source != nil {
			src := *s.Source
			c.Sections[i].Source = &src
		}
	}
	return &c
}
