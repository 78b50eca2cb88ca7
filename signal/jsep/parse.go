package jsep

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// maxSDPBytes bounds any SDP Hayate parses.
const maxSDPBytes = 256 << 10

func unmarshal(text string) (*sdp.SessionDescription, error) {
	if len(text) > maxSDPBytes {
		return nil, fmt.Errorf("%w: %d bytes", ErrSDPTooLarge, len(text))
	}
	var s sdp.SessionDescription
	if err := s.UnmarshalString(text); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSDP, err) //nolint:errorlint // pion's error text only
	}
	return &s, nil
}

// ParseCapabilities reads the codec lists of a client's capability SDP (the
// `sdp` of Sora's connect message). An empty text gives unknown capabilities.
func ParseCapabilities(text string) (Capabilities, error) {
	if strings.TrimSpace(text) == "" {
		return Capabilities{}, nil
	}
	s, err := unmarshal(text)
	if err != nil {
		return Capabilities{}, err
	}
	caps := Capabilities{Known: true, codecs: map[Kind][]Codec{}}
	for _, md := range s.MediaDescriptions {
		kind := Kind(md.MediaName.Media)
		if kind != Audio && kind != Video {
			continue
		}
		byPT := map[uint8]*Codec{}
		var order []uint8
		for _, a := range md.Attributes {
			caps.readCapabilityExtras(a)
			switch a.Key {
			case "rtpmap":
				pt, c, ok := parseRtpmap(a.Value)
				if !ok {
					return Capabilities{}, fmt.Errorf("%w: bad rtpmap %q", ErrBadSDP, a.Value)
				}
				c.Kind = kind
				if _, dup := byPT[pt]; !dup {
					order = append(order, pt)
				}
				byPT[pt] = &c
			case "fmtp":
				ptText, params, _ := strings.Cut(a.Value, " ")
				pt, err := strconv.ParseUint(ptText, 10, 7)
				if err != nil {
					continue
				}
				if c, ok := byPT[uint8(pt)]; ok {
					c.Fmtp = strings.TrimSpace(params)
				}
			}
		}
		for _, pt := range order {
			caps.codecs[kind] = append(caps.codecs[kind], *byPT[pt])
		}
	}
	return caps, nil
}

// Answer is what Hayate needs from a client's answer.
type Answer struct {
	Ufrag, Pwd string
	// Fingerprint is the sha-256 certificate fingerprint, upper-case hex
	// pairs separated by colons (RFC 8122 §5).
	Fingerprint string
	// Setup is the answer's a=setup: active (the client opens DTLS, as
	// browsers do) or passive (the offerer must, as pion does towards an
	// ICE-lite offerer).
	Setup    string
	Sections []AnswerSection
}

// AnswerSection is one answered m-section.
type AnswerSection struct {
	Mid       string
	Kind      Kind
	Direction Direction
	// Rejected is true for a section answered with port 0.
	Rejected bool
	// SSRCs are the sources the client will send in this section, in order
	// of appearance (primary SSRCs only; no RTX is negotiated).
	SSRCs []uint32
	// StreamID and TrackID come from a=msid (RFC 8830).
	StreamID, TrackID string
	// SCTPPort and MaxMessageSize of an m=application section
	// (application.go).
	SCTPPort, MaxMessageSize int
	// AnswerExtras are the accepted extensions, feedback, RTX and
	// simulcast streams (simulcast.go).
	AnswerExtras
}

// ParseAnswer checks a client's answer against the offer it answers and
// returns the transport parameters and sections.
func ParseAnswer(text string, offer *Offer) (*Answer, error) {
	s, err := unmarshal(text)
	if err != nil {
		return nil, err
	}
	if len(s.MediaDescriptions) != len(offer.Sections) {
		return nil, fmt.Errorf("%w: %d m-sections for an offer of %d", ErrAnswerMismatch, len(s.MediaDescriptions), len(offer.Sections))
	}
	a := &Answer{}
	sessUfrag, _ := s.Attribute("ice-ufrag")
	sessPwd, _ := s.Attribute("ice-pwd")
	sessFP, _ := s.Attribute("fingerprint")
	sessSetup, _ := s.Attribute("setup")
	for i, md := range s.MediaDescriptions {
		want := offer.Sections[i]
		mid, _ := md.Attribute("mid")
		if mid != want.Mid || Kind(md.MediaName.Media) != want.Kind {
			return nil, fmt.Errorf("%w: section %d is %s mid %q, offered %s mid %q", ErrAnswerMismatch, i, md.MediaName.Media, mid, want.Kind, want.Mid)
		}
		sec := AnswerSection{Mid: mid, Kind: want.Kind, Direction: Inactive, Rejected: md.MediaName.Port.Value == 0}
		for _, attr := range md.Attributes {
			switch attr.Key {
			case "sendrecv", "sendonly", "recvonly", "inactive":
				sec.Direction = Direction(attr.Key)
			case "msid":
				sec.StreamID, sec.TrackID, _ = strings.Cut(attr.Value, " ")
			case "ssrc":
				id, rest, _ := strings.Cut(attr.Value, " ")
				v, err := strconv.ParseUint(id, 10, 32)
				if err != nil {
					return nil, fmt.Errorf("%w: bad a=ssrc %q", ErrBadSDP, attr.Value)
				}
				if !containsSSRC(sec.SSRCs, uint32(v)) {
					sec.SSRCs = append(sec.SSRCs, uint32(v))
				}
				if sec.StreamID == "" {
					if msid, ok := strings.CutPrefix(rest, "msid:"); ok {
						sec.StreamID, sec.TrackID, _ = strings.Cut(msid, " ")
					}
				}
			}
		}
		if want.Kind == Application {
			parseApplication(md, &sec)
		} else {
			parseExtras(md, want, &sec)
		}
		if want.Kind != Application && !sec.Rejected && !want.Direction.answerAllowed(sec.Direction) {
			return nil, fmt.Errorf("%w: mid %q answered %s to %s", ErrAnswerMismatch, mid, sec.Direction, want.Direction)
		}
		a.Sections = append(a.Sections, sec)
		ufrag := firstOf(md, "ice-ufrag", sessUfrag)
		pwd := firstOf(md, "ice-pwd", sessPwd)
		fp := firstOf(md, "fingerprint", sessFP)
		setup := firstOf(md, "setup", sessSetup)
		if sec.Rejected {
			continue
		}
		if a.Ufrag == "" {
			a.Ufrag, a.Pwd = ufrag, pwd
			a.Fingerprint, err = parseFingerprint(fp)
			if err != nil {
				return nil, err
			}
			// We offer actpass, so the answer is active or passive
			// (RFC 8842 §5.3); actpass or holdconn are not answers.
			if setup != "active" && setup != "passive" {
				return nil, fmt.Errorf("%w: a=setup:%q in an answer", ErrUnsupported, setup)
			}
			a.Setup = setup
		}
	}
	if a.Ufrag == "" {
		return nil, fmt.Errorf("%w: every section rejected", ErrAnswerMismatch)
	}
	// RFC 8445 §5.3: ufrag at least 4 and password at least 22 ice-chars.
	if len(a.Ufrag) < 4 || len(a.Ufrag) > 256 || len(a.Pwd) < 22 || len(a.Pwd) > 256 {
		return nil, fmt.Errorf("%w: ICE ufrag/pwd missing or of bad length", ErrBadSDP)
	}
	return a, nil
}

func firstOf(md *sdp.MediaDescription, key, fallback string) string {
	if v, ok := md.Attribute(key); ok {
		return v
	}
	return fallback
}

func containsSSRC(list []uint32, v uint32) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// parseFingerprint accepts "sha-256 AB:CD:..." and returns the hex part in
// upper case.
func parseFingerprint(v string) (string, error) {
	alg, hex, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok || !strings.EqualFold(alg, "sha-256") {
		return "", fmt.Errorf("%w: need a sha-256 fingerprint, got %q", ErrBadSDP, v)
	}
	hex = strings.ToUpper(strings.TrimSpace(hex))
	if len(hex) != 32*3-1 {
		return "", fmt.Errorf("%w: sha-256 fingerprint of bad length", ErrBadSDP)
	}
	for i := 0; i < len(hex); i++ {
		c := hex[i]
		if i%3 == 2 {
			if c != ':' {
				return "", fmt.Errorf("%w: malformed fingerprint", ErrBadSDP)
			}
			continue
		}
		if !(c >= '0' && c <= '9' || c >= 'A' && c <= 'F') {
			return "", fmt.Errorf("%w: malformed fingerprint", ErrBadSDP)
		}
	}
	return hex, nil
}

// ParseCandidate checks a trickled ICE candidate attribute (RFC 8839 §5.1)
// and returns its transport, address and port. The "candidate:" prefix is
// optional.
func ParseCandidate(line string) (transport, addr string, port int, err error) {
	line = strings.TrimPrefix(strings.TrimPrefix(line, "a="), "candidate:")
	f := strings.Fields(line)
	if len(f) < 8 || f[6] != "typ" {
		return "", "", 0, fmt.Errorf("%w: %q", ErrBadCandidate, truncate(line, 64))
	}
	p, err := strconv.Atoi(f[5])
	if err != nil || p < 0 || p > 65535 {
		return "", "", 0, fmt.Errorf("%w: bad port in %q", ErrBadCandidate, truncate(line, 64))
	}
	return strings.ToLower(f[2]), f[4], p, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
