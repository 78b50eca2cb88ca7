package jsep

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/pion/sdp/v3"
)

const capsSDP = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" +
	"m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=recvonly\r\n" +
	"a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\na=rtpmap:0 PCMU/8000\r\n" +
	"m=video 9 UDP/TLS/RTP/SAVPF 96 98 100 102 45\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=recvonly\r\n" +
	"a=rtpmap:96 VP8/90000\r\na=rtpmap:98 VP9/90000\r\na=fmtp:98 profile-id=2\r\n" +
	"a=rtpmap:100 VP9/90000\r\na=fmtp:100 profile-id=0\r\n" +
	"a=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n" +
	"a=rtpmap:45 AV1/90000\r\n"

func TestCapabilitiesChoose(t *testing.T) {
	caps, err := ParseCapabilities(capsSDP)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		typ  string
		ok   bool
		pt   uint8
		fmtp string
	}{
		{"OPUS", true, 111, "minptime=10;useinbandfec=1"},
		{"VP8", true, 96, ""},
		{"VP9", true, 98, "profile-id=0"}, // profile 2 skipped, profile 0 chosen
		{"H264", true, 102, "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"},
		{"AV1", true, 104, ""},
		{"H265", false, 0, ""},
		{"MJPEG", false, 0, ""},
	} {
		got, ok := caps.Choose(c.typ)
		if ok != c.ok || ok && (got.PayloadType != c.pt || got.Fmtp != c.fmtp) {
			t.Errorf("Choose(%s) = %+v, %v", c.typ, got, ok)
		}
	}
	if unknown, _ := ParseCapabilities(""); unknown.Known {
		t.Error("empty SDP gives known capabilities")
	}
	if _, err := ParseCapabilities("garbage"); !errors.Is(err, ErrBadSDP) {
		t.Errorf("garbage: %v", err)
	}
	if _, err := ParseCapabilities("v=0\r\n" + strings.Repeat("a=x\r\n", 60000)); !errors.Is(err, ErrSDPTooLarge) {
		t.Errorf("huge: %v", err)
	}
}

func testOffer() *Offer {
	opus, _ := Builtin("OPUS")
	vp8, _ := Builtin("VP8")
	return &Offer{
		SessionID: 42, Version: 1, Ufrag: "uFrA", Pwd: "0123456789012345678901",
		Fingerprint: strings.Repeat("AB:", 31) + "AB", Candidate: netip.MustParseAddrPort("127.0.0.1:50000"),
		Sections: []Section{
			{Mid: "0", Kind: Audio, Direction: RecvOnly, Codec: opus},
			{Mid: "1", Kind: Video, Direction: RecvOnly, Codec: vp8},
			{Mid: "2", Kind: Video, Direction: SendOnly, Codec: vp8, Source: &Source{SSRC: 1234, CNAME: "c", StreamID: "s", TrackID: "t"}},
		},
	}
}

func TestOfferMarshalParses(t *testing.T) {
	text := testOffer().Marshal()
	var s sdp.SessionDescription
	if err := s.UnmarshalString(text); err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if len(s.MediaDescriptions) != 3 {
		t.Fatal("sections")
	}
	if v, _ := s.MediaDescriptions[2].Attribute("msid"); v != "s t" {
		t.Errorf("msid %q", v)
	}
	for _, want := range []string{"a=ice-lite", "a=group:BUNDLE 0 1 2", "a=setup:actpass", "a=rtcp-fb:96 nack pli",
		"a=candidate:1 1 udp 2130706431 127.0.0.1 50000 typ host", "a=ssrc:1234 cname:c"} {
		if !strings.Contains(text, want) {
			t.Errorf("offer lacks %q", want)
		}
	}
}

// TestOfferTCPCandidate: with a TCP candidate, every section offers the
// UDP host candidate and then the passive ICE-TCP one (RFC 6544 §4.5),
// ranked below UDP; without, only UDP.
func TestOfferTCPCandidate(t *testing.T) {
	o := testOffer()
	if strings.Contains(o.Marshal(), " tcp ") {
		t.Fatal("a TCP candidate without TCPCandidate")
	}
	o.TCPCandidate = netip.MustParseAddrPort("127.0.0.1:50001")
	text := o.Marshal()
	var s sdp.SessionDescription
	if err := s.UnmarshalString(text); err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	for i, md := range s.MediaDescriptions {
		var cands []string
		for _, a := range md.Attributes {
			if a.Key == "candidate" {
				cands = append(cands, a.Value)
			}
		}
		want := []string{"1 1 udp 2130706431 127.0.0.1 50000 typ host", "2 1 tcp 1520435199 127.0.0.1 50001 typ host tcptype passive"}
		if strings.Join(cands, "|") != strings.Join(want, "|") {
			t.Fatalf("section %d candidates %q, want %q", i, cands, want)
		}
	}
	if TCPPassivePriority >= 2130706431 {
		t.Fatal("the TCP candidate outranks the UDP one")
	}
}

func answerFor(sections string) string {
	return "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1 2\r\n" + sections
}

func section(kind, mid, dir, extra string) string {
	pt := "111"
	if kind == "video" {
		pt = "96"
	}
	return "m=" + kind + " 9 UDP/TLS/RTP/SAVPF " + pt + "\r\nc=IN IP4 0.0.0.0\r\n" +
		"a=ice-ufrag:WXYZ\r\na=ice-pwd:abcdefghijklmnopqrstuvwxyz\r\n" +
		"a=fingerprint:sha-256 " + strings.Repeat("cd:", 31) + "cd\r\na=setup:active\r\n" +
		"a=mid:" + mid + "\r\na=" + dir + "\r\n" + extra
}

func TestParseAnswer(t *testing.T) {
	o := testOffer()
	good := answerFor(section("audio", "0", "sendonly", "a=msid:stream atrack\r\na=ssrc:11 cname:x\r\n") +
		section("video", "1", "sendonly", "a=ssrc:22 cname:x\r\na=ssrc:22 msid:stream vtrack\r\n") +
		section("video", "2", "recvonly", ""))
	a, err := ParseAnswer(good, o)
	if err != nil {
		t.Fatal(err)
	}
	if a.Ufrag != "WXYZ" || a.Fingerprint != strings.Repeat("CD:", 31)+"CD" {
		t.Fatalf("transport %+v", a)
	}
	if a.Sections[0].SSRCs[0] != 11 || a.Sections[0].TrackID != "atrack" || a.Sections[1].SSRCs[0] != 22 ||
		a.Sections[1].TrackID != "vtrack" || a.Sections[2].Direction != RecvOnly {
		t.Fatalf("sections %+v", a.Sections)
	}
	bad := map[string]string{
		"too few sections": answerFor(section("audio", "0", "sendonly", "")),
		"wrong mid":        answerFor(section("audio", "0", "sendonly", "") + section("video", "9", "sendonly", "") + section("video", "2", "recvonly", "")),
		"wrong direction":  answerFor(section("audio", "0", "sendonly", "") + section("video", "1", "sendonly", "") + section("video", "2", "sendonly", "")),
		"actpass setup":    strings.ReplaceAll(good, "setup:active", "setup:actpass"),
		"sha-1":            strings.ReplaceAll(good, "sha-256", "sha-1"),
		"short pwd":        strings.ReplaceAll(good, "abcdefghijklmnopqrstuvwxyz", "short"),
		"bad ssrc":         strings.ReplaceAll(good, "a=ssrc:22", "a=ssrc:x22"),
		"not sdp":          "hello",
	}
	for name, text := range bad {
		if _, err := ParseAnswer(text, o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestParseCandidate(t *testing.T) {
	tr, addr, port, err := ParseCandidate("candidate:842163049 1 udp 1677729535 192.0.2.7 46154 typ srflx raddr 0.0.0.0 rport 0 generation 0")
	if err != nil || tr != "udp" || addr != "192.0.2.7" || port != 46154 {
		t.Fatalf("%v %v %v %v", tr, addr, port, err)
	}
	for _, bad := range []string{"", "candidate:1 1 udp", "candidate:1 1 udp 1 1.2.3.4 99999 typ host", "candidate:1 1 udp 1 1.2.3.4 5 host host"} {
		if _, _, _, err := ParseCandidate(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseCapabilities(f *testing.F) {
	f.Add(capsSDP)
	f.Add("")
	f.Add("v=0\r\nm=video 9 RTP/AVP 96\r\na=rtpmap:96 VP8\r\n")
	f.Fuzz(func(t *testing.T, text string) {
		caps, err := ParseCapabilities(text)
		if err != nil {
			return
		}
		for _, typ := range []string{"OPUS", "VP8", "VP9", "AV1", "H264", "H265"} {
			caps.Choose(typ)
		}
	})
}

func FuzzParseAnswer(f *testing.F) {
	o := testOffer()
	f.Add(answerFor(section("audio", "0", "sendonly", "a=ssrc:11 cname:x\r\n") + section("video", "1", "sendonly", "") + section("video", "2", "recvonly", "")))
	f.Add("v=0\r\n")
	f.Fuzz(func(t *testing.T, text string) {
		a, err := ParseAnswer(text, o)
		if err == nil && (a.Ufrag == "" || len(a.Sections) != len(o.Sections) || len(a.Fingerprint) != 95) {
			t.Fatalf("accepted an answer without transport: %+v", a)
		}
	})
}

// TestSimulcastOfferAndAnswer: a publisher's section asks for r0..r2 with
// the extensions RFC 8852 needs; a subscriber's carries RTX and
// transport-cc; the answer's acceptance of each is read.
func TestSimulcastOfferAndAnswer(t *testing.T) {
	o := testOffer()
	o.Sections[1].Extras = Extras{Ext: []Extension{ExtMID, ExtRID, ExtTWCC}, TransportCC: true, RIDs: SimulcastRIDs}
	o.Sections[2].Extras = Extras{Ext: []Extension{ExtTWCC}, TransportCC: true, REMB: true, RTX: true}
	o.Sections[2].Source.RTXSSRC = 5678
	text := o.Marshal()
	var s sdp.SessionDescription
	if err := s.UnmarshalString(text); err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	for _, want := range []string{"a=rid:r0 recv", "a=rid:r2 recv", "a=simulcast:recv r0;r1;r2",
		"a=extmap:2 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id", "m=video 9 UDP/TLS/RTP/SAVPF 96 97",
		"a=rtpmap:97 rtx/90000", "a=fmtp:97 apt=96", "a=rtcp-fb:96 transport-cc", "a=rtcp-fb:96 goog-remb",
		"a=ssrc-group:FID 1234 5678", "a=ssrc:5678 cname:c"} {
		if !strings.Contains(text, want) {
			t.Errorf("offer lacks %q", want)
		}
	}
	if strings.Count(text, "a=simulcast") != 1 {
		t.Error("simulcast on a section Hayate sends")
	}
	ans := answerFor(section("audio", "0", "sendonly", "a=ssrc:11 cname:x\r\n") +
		section("video", "1", "sendonly", "a=extmap:1 urn:ietf:params:rtp-hdrext:sdes:mid\r\n"+
			"a=extmap:2 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\n"+
			"a=extmap:4 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r\n"+
			"a=rtcp-fb:96 transport-cc\r\na=rid:r0 send\r\na=rid:r1 send\r\na=rid:r2 send\r\na=simulcast:send r0;~r1;r2\r\n") +
		strings.Replace(section("video", "2", "recvonly", "a=rtcp-fb:96 goog-remb\r\n"), "SAVPF 96", "SAVPF 96 97", 1))
	a, err := ParseAnswer(ans, o)
	if err != nil {
		t.Fatal(err)
	}
	pub, sub := a.Sections[1], a.Sections[2]
	if strings.Join(pub.RIDs, ",") != "r0,r2" || !pub.TransportCC || pub.ExtID(ExtRID) != 2 || pub.ExtID(ExtMID) != 1 {
		t.Fatalf("publisher section %+v", pub.AnswerExtras)
	}
	if !sub.RTX || !sub.REMB || sub.TransportCC {
		t.Fatalf("subscriber section %+v", sub.AnswerExtras)
	}
	caps, _ := ParseCapabilities(capsSDP)
	if caps.SupportsTransportCC() || caps.SupportsRTX() || caps.SupportsRID() {
		t.Fatal("capabilities without extras say they have them")
	}
	caps, _ = ParseCapabilities(strings.Replace(capsSDP, "a=rtpmap:45 AV1/90000\r\n", "a=rtpmap:45 AV1/90000\r\na=rtcp-fb:45 transport-cc\r\na=rtpmap:46 rtx/90000\r\n"+
		"a=extmap:3 urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id\r\n", 1))
	if !caps.SupportsTransportCC() || !caps.SupportsRTX() || !caps.SupportsRID() || caps.SupportsREMB() {
		t.Fatal("capabilities misread")
	}
}
