package sigclient

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// AnswerParams are the client side of an answer built by Answer.
type AnswerParams struct {
	Ufrag, Pwd  string
	Fingerprint string // sha-256, hex pairs
	// SSRCs gives the SSRC the client sends in each section it sends in,
	// by kind ("audio", "video"); missing kinds get a derived SSRC.
	SSRCs map[string]uint32
	CNAME string
	// Simulcast answers a video section asking for rid-based simulcast
	// (a=simulcast:recv) by sending every rid, named by the rtp-stream-id
	// extension instead of an SSRC (RFC 8853, RFC 8852).
	Simulcast bool
	// Feedback keeps the offered header extensions, transport-cc and
	// goog-remb feedback and RTX in the answer.
	Feedback bool
}

// Answer builds a minimal valid answer to a Hayate offer, as a browser would:
// it flips each direction, keeps each section's first payload type and mid,
// and announces an SSRC with msid for each section it sends in.
func Answer(offerSDP string, p AnswerParams) (string, error) {
	var off sdp.SessionDescription
	if err := off.UnmarshalString(offerSDP); err != nil {
		return "", fmt.Errorf("sigclient: offer: %w", err)
	}
	if p.CNAME == "" {
		p.CNAME = "sigclient"
	}
	var b strings.Builder
	b.WriteString("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n")
	if g, ok := off.Attribute("group"); ok {
		b.WriteString("a=group:" + g + "\r\n")
	}
	for i, md := range off.MediaDescriptions {
		mid, _ := md.Attribute("mid")
		dir := "inactive"
		for _, d := range []string{"sendrecv", "sendonly", "recvonly", "inactive"} {
			if _, ok := md.Attribute(d); ok {
				dir = d
			}
		}
		if md.MediaName.Media == "application" {
			b.WriteString("m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\nc=IN IP4 0.0.0.0\r\n")
			b.WriteString("a=ice-ufrag:" + p.Ufrag + "\r\na=ice-pwd:" + p.Pwd + "\r\n")
			b.WriteString("a=fingerprint:sha-256 " + p.Fingerprint + "\r\na=setup:active\r\n")
			b.WriteString("a=mid:" + mid + "\r\na=sctp-port:5000\r\na=max-message-size:262144\r\n")
			continue
		}
		answerDir := map[string]string{"sendrecv": "sendrecv", "sendonly": "recvonly", "recvonly": "sendonly", "inactive": "inactive"}[dir]
		pt := "0"
		if len(md.MediaName.Formats) > 0 {
			pt = md.MediaName.Formats[0]
		}
		formats := pt
		rtx := rtxOf(md, pt)
		if p.Feedback && rtx != "" {
			formats += " " + rtx
		}
		b.WriteString("m=" + md.MediaName.Media + " 9 UDP/TLS/RTP/SAVPF " + formats + "\r\n")
		b.WriteString("c=IN IP4 0.0.0.0\r\n")
		b.WriteString("a=ice-ufrag:" + p.Ufrag + "\r\na=ice-pwd:" + p.Pwd + "\r\n")
		b.WriteString("a=fingerprint:sha-256 " + p.Fingerprint + "\r\na=setup:active\r\n")
		b.WriteString("a=mid:" + mid + "\r\na=" + answerDir + "\r\na=rtcp-mux\r\n")
		simulcast := ""
		for _, a := range md.Attributes {
			switch {
			case a.Key == "rtpmap" || a.Key == "fmtp":
				if strings.HasPrefix(a.Value, pt+" ") || p.Feedback && rtx != "" && strings.HasPrefix(a.Value, rtx+" ") {
					b.WriteString("a=" + a.Key + ":" + a.Value + "\r\n")
				}
			case a.Key == "rtcp-fb" && p.Feedback && strings.HasPrefix(a.Value, pt+" "):
				b.WriteString("a=rtcp-fb:" + a.Value + "\r\n")
			case a.Key == "extmap" && (p.Feedback || p.Simulcast):
				b.WriteString("a=extmap:" + a.Value + "\r\n")
			case a.Key == "simulcast" && p.Simulcast && strings.HasPrefix(a.Value, "recv "):
				simulcast = strings.TrimPrefix(a.Value, "recv ")
			}
		}
		if simulcast != "" && answerDir != "inactive" && answerDir != "recvonly" {
			for _, r := range strings.Split(simulcast, ";") {
				b.WriteString("a=rid:" + r + " send\r\n")
			}
			b.WriteString("a=simulcast:send " + simulcast + "\r\n")
			b.WriteString("a=msid:sigclient " + md.MediaName.Media + "\r\n")
			continue
		}
		if answerDir == "sendonly" || answerDir == "sendrecv" {
			ssrc, ok := p.SSRCs[md.MediaName.Media]
			if !ok {
				ssrc = uint32(1000 + i)
			}
			s := strconv.FormatUint(uint64(ssrc), 10)
			b.WriteString("a=msid:sigclient " + md.MediaName.Media + "\r\n")
			b.WriteString("a=ssrc:" + s + " cname:" + p.CNAME + "\r\n")
		}
	}
	return b.String(), nil
}

// rtxOf returns the payload type of the section's RTX for pt (RFC 4588
// apt), or "".
func rtxOf(md *sdp.MediaDescription, pt string) string {
	for _, a := range md.Attributes {
		if a.Key == "fmtp" && strings.HasSuffix(a.Value, " apt="+pt) {
			rtx, _, _ := strings.Cut(a.Value, " ")
			return rtx
		}
	}
	return ""
}
