package jsep

import (
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// DataChannels: one m=application section carries SCTP over the DTLS
// transport of the bundle (RFC 8841, RFC 8831 §5).

// Application is the kind of the section carrying DataChannels.
const Application Kind = "application"

// SCTPPort is the SCTP port Hayate offers (RFC 8841 §5.2; 5000 as every
// WebRTC stack uses). Only one association runs per transport, so the
// port has no other meaning.
const SCTPPort = 5000

// writeApplication writes the m=application section s (RFC 8841 §5.1):
// the transport attributes every bundled section carries, a=sctp-port and
// a=max-message-size (the largest message Hayate accepts).
func (o *Offer) writeApplication(b *strings.Builder, s Section, candidate string) {
	b.WriteString("m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n")
	b.WriteString("a=ice-ufrag:" + o.Ufrag + "\r\na=ice-pwd:" + o.Pwd + "\r\n")
	b.WriteString("a=fingerprint:sha-256 " + o.Fingerprint + "\r\n")
	b.WriteString("a=setup:actpass\r\na=mid:" + s.Mid + "\r\n")
	b.WriteString("a=sctp-port:" + strconv.Itoa(SCTPPort) + "\r\n")
	if o.MaxMessageSize > 0 {
		b.WriteString("a=max-message-size:" + strconv.Itoa(o.MaxMessageSize) + "\r\n")
	}
	b.WriteString(candidate)
	b.WriteString("a=end-of-candidates\r\n")
}

// parseApplication reads an answered m=application section: its SCTP
// port and the client's a=max-message-size (RFC 8841 §6: absent means
// 64 KiB, 0 means no limit; both are reported as they are written, -1
// when absent).
func parseApplication(md *sdp.MediaDescription, sec *AnswerSection) {
	sec.MaxMessageSize = -1
	if v, ok := md.Attribute("sctp-port"); ok {
		if p, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && p > 0 && p < 65536 {
			sec.SCTPPort = p
		}
	}
	if v, ok := md.Attribute("max-message-size"); ok {
		if n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 31); err == nil {
			sec.MaxMessageSize = int(n)
		}
	}
}
