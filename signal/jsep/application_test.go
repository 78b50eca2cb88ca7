package jsep

import (
	"strings"
	"testing"

	"github.com/pion/sdp/v3"
)

func TestApplicationSection(t *testing.T) {
	o := testOffer()
	o.MaxMessageSize = 65536
	o.Sections = append(o.Sections, Section{Mid: "3", Kind: Application})
	text := o.Marshal()
	var s sdp.SessionDescription
	if err := s.UnmarshalString(text); err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	md := s.MediaDescriptions[3]
	if md.MediaName.Media != "application" || strings.Join(md.MediaName.Protos, "/") != "UDP/DTLS/SCTP" ||
		strings.Join(md.MediaName.Formats, " ") != "webrtc-datachannel" {
		t.Fatalf("m-line %+v", md.MediaName)
	}
	for _, want := range []string{"a=group:BUNDLE 0 1 2 3", "a=sctp-port:5000", "a=max-message-size:65536"} {
		if !strings.Contains(text, want) {
			t.Errorf("offer lacks %q", want)
		}
	}
	if v, _ := md.Attribute("mid"); v != "3" {
		t.Errorf("mid %q", v)
	}
	if _, ok := md.Attribute("candidate"); !ok {
		t.Error("no candidate in the application section")
	}

	app := func(port string, extra string) string {
		return port + "\r\nc=IN IP4 0.0.0.0\r\na=ice-ufrag:WXYZ\r\na=ice-pwd:abcdefghijklmnopqrstuvwxyz\r\n" +
			"a=fingerprint:sha-256 " + strings.Repeat("cd:", 31) + "cd\r\na=setup:active\r\na=mid:3\r\n" + extra
	}
	base := section("audio", "0", "sendonly", "a=ssrc:11 cname:x\r\n") + section("video", "1", "sendonly", "") + section("video", "2", "recvonly", "")
	a, err := ParseAnswer(answerFor(base+app("m=application 9 UDP/DTLS/SCTP webrtc-datachannel", "a=sctp-port:5000\r\na=max-message-size:262144\r\n")), o)
	if err != nil {
		t.Fatal(err)
	}
	if sec := a.Sections[3]; sec.Kind != Application || sec.Rejected || sec.SCTPPort != 5000 || sec.MaxMessageSize != 262144 {
		t.Fatalf("application %+v", sec)
	}
	a, err = ParseAnswer(answerFor(base+app("m=application 0 UDP/DTLS/SCTP webrtc-datachannel", "")), o)
	if err != nil {
		t.Fatal(err)
	}
	if sec := a.Sections[3]; !sec.Rejected || sec.MaxMessageSize != -1 {
		t.Fatalf("rejected application %+v", sec)
	}
	if _, err := ParseAnswer(answerFor(base+section("audio", "3", "sendonly", "")), o); err == nil {
		t.Error("audio answered to an application section")
	}
}
