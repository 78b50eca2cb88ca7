package node

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/pion/sdp/v3"

	"github.com/hayate-sfu/hayate/config"
	"github.com/hayate-sfu/hayate/internal/sigclient"
)

// TestBadSignalingInput: each malformed or out-of-order input is closed with
// 4400 and a reason naming the problem, while another client on the same
// server keeps working, and the goroutine count returns to its baseline.
func TestBadSignalingInput(t *testing.T) {
	ev := newHookReceiver(t)
	n := startNode(t, func(c *config.Config) {
		c.MaxSignalingMessageBytes = 4096
		c.SignalingPingInterval = 50 * time.Millisecond
		c.EventWebhookURL = ev.url()
	})
	keeper, _ := join(t, n, "keep", "sendrecv")
	keeper.AutoPong = false
	base := goroutineBaseline()

	text := func(s string) func(*sigclient.Client) error {
		return func(c *sigclient.Client) error { return c.SendFrame(ws.OpText, []byte(s)) }
	}
	connectThen := func(then string) func(*sigclient.Client) error {
		return func(c *sigclient.Client) error {
			o, err := c.Connect(connectMsg("bad", "sendrecv"), soon())
			if err != nil || o.Type != "offer" {
				t.Fatalf("first connect: %v", err)
			}
			return c.SendFrame(ws.OpText, []byte(then))
		}
	}
	long := strings.Repeat("x", 256)
	cases := []struct {
		name   string
		send   func(*sigclient.Client) error
		reason string
	}{
		{"non-JSON text", text("hello"), "INVALID-JSON"},
		{"truncated JSON", text(`{"type":"connect","channel_id":`), "INVALID-JSON"},
		{"JSON array", text(`[1,2]`), "MISSING-TYPE"},
		{"no type", text(`{"channel_id":"x"}`), "MISSING-TYPE"},
		{"binary frame", func(c *sigclient.Client) error { return c.SendFrame(ws.OpBinary, []byte(`{"type":"connect"}`)) }, "BINARY-FRAME"},
		{"over the size limit", text(`{"type":"connect","channel_id":"` + strings.Repeat("a", 5000) + `"}`), "MESSAGE-TOO-LARGE"},
		{"invalid UTF-8", text("{\"type\":\"connect\",\"channel_id\":\"\xff\xfe\"}"), "INVALID-UTF8"},
		{"message before connect", text(`{"type":"pong"}`), "MESSAGE-BEFORE-CONNECT"},
		{"answer before offer", text(`{"type":"answer","sdp":"v=0"}`), "ANSWER-BEFORE-OFFER"},
		{"connect twice", connectThen(`{"type":"connect","role":"sendrecv","channel_id":"bad"}`), "DUPLICATE-CONNECT"},
		{"channel_id missing", text(`{"type":"connect","role":"sendrecv"}`), "MISSING-CHANNEL-ID"},
		{"channel_id empty", text(`{"type":"connect","role":"sendrecv","channel_id":""}`), "EMPTY-CHANNEL-ID"},
		{"channel_id over 255 bytes", text(`{"type":"connect","role":"sendrecv","channel_id":"` + long + `"}`), "CHANNEL-ID-TOO-LONG"},
		{"channel_id not a string", text(`{"type":"connect","role":"sendrecv","channel_id":7}`), "INVALID-CHANNEL-ID"},
		{"role missing", text(`{"type":"connect","channel_id":"c"}`), "MISSING-ROLE"},
		{"role invalid", text(`{"type":"connect","role":"viewer","channel_id":"c"}`), "INVALID-ROLE"},
		{"client_id over 255 bytes", text(`{"type":"connect","role":"sendrecv","channel_id":"c","client_id":"` + long + `"}`), "CLIENT-ID-TOO-LONG"},
		{"audio not bool or object", text(`{"type":"connect","role":"sendrecv","channel_id":"c","audio":"yes"}`), "INVALID-AUDIO"},
		{"unknown video codec", text(`{"type":"connect","role":"sendrecv","channel_id":"c","video":{"codec_type":"MPEG2"}}`), "UNSUPPORTED-VIDEO-CODEC-TYPE"},
		{"no media", text(`{"type":"connect","role":"sendrecv","channel_id":"c","audio":false,"video":false}`), "AUDIO-AND-VIDEO-DISABLED"},
		{"garbage capability SDP", text(`{"type":"connect","role":"sendrecv","channel_id":"c","sdp":"not sdp"}`), "INVALID-SDP"},
		{"simulcast not bool", text(`{"type":"connect","role":"sendrecv","channel_id":"c","simulcast":"yes"}`), "INVALID-SIMULCAST"},
		{"invalid answer SDP", connectThen(`{"type":"answer","sdp":"v=0\r\nbogus"}`), "INVALID-ANSWER"},
		{"answer without sdp", connectThen(`{"type":"answer"}`), "MISSING-SDP"},
		{"malformed candidate", connectThen(`{"type":"candidate","candidate":"candidate:1 1 udp"}`), "INVALID-CANDIDATE"},
		{"unmasked frame", func(c *sigclient.Client) error {
			// A frame without the mask bit, which RFC 6455 §5.1 forbids from clients.
			return ws.WriteFrame(c.Conn(), ws.NewTextFrame([]byte(`{"type":"connect"}`)))
		}, "UNMASKED-FRAME"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cl := dial(t, n)
			if err := c.send(cl); err != nil {
				t.Fatal(err)
			}
			closed, err := cl.AwaitClose(soon())
			if err != nil {
				t.Fatalf("no close frame: %v", err)
			}
			if closed.Code != 4400 || closed.Reason != c.reason {
				t.Fatalf("closed %d %q, want 4400 %q", closed.Code, closed.Reason, c.reason)
			}
			cl.Close()
			// The other client is still served: it is still listed and keeps
			// receiving pings, which it answers.
			for {
				msg, err := keeper.ReadMessage(soon())
				if err != nil {
					t.Fatalf("keeper: %v", err)
				}
				if strings.Contains(string(msg), `"ping"`) {
					break
				}
			}
			if err := keeper.SendJSON(map[string]string{"type": "pong"}); err != nil {
				t.Fatal(err)
			}
			// The refused connection is removed as its close is handled,
			// which may come after the client saw the close.
			waitFor(t, "the keeper the only connection", patience, func() bool { return n.hub.Connections() == 1 })
		})
	}
	checkGoroutines(t, base, n)
	// Every refusal before an offer produced connection.failed.
	waitFor(t, "connection.failed events", patience, func() bool { return ev.count("connection.failed") == len(cases) })
	if closed, err := keeper.Disconnect(soon()); err != nil || closed.Code != 1000 || closed.Reason != "TYPE-DISCONNECT" {
		t.Fatalf("keeper disconnect: %v %v", closed, err)
	}
	_, stats, _ := apiCall(t, n, "Sora_20171010.GetStatsReport", "")
	if stats["error"].(map[string]any)["signaling_error"] != float64(len(cases)) {
		t.Fatalf("signaling_error = %v, want %d", stats["error"], len(cases))
	}
}

func isTimeout(err error) bool {
	ne, ok := err.(interface{ Timeout() bool })
	return ok && ne.Timeout()
}

// TestOfferSDP checks the offer's SDP is what a browser needs: ICE-lite,
// credentials, the node's fingerprint, actpass, BUNDLE, rtcp-mux and the
// host candidate at ipv4_address:media_port, with codecs from the client's
// capability SDP.
func TestOfferSDP(t *testing.T) {
	n := startNode(t, nil)
	c := dial(t, n)
	msg := connectMsg("sdp", "sendrecv")
	msg["sdp"] = chromeCapabilitySDP
	msg["video"] = map[string]any{"codec_type": "VP8"}
	o, err := c.Connect(msg, soon())
	if err != nil {
		t.Fatal(err)
	}
	var s sdp.SessionDescription
	if err := s.UnmarshalString(o.SDP); err != nil {
		t.Fatalf("offer SDP does not parse: %v\n%s", err, o.SDP)
	}
	if _, ok := s.Attribute("ice-lite"); !ok {
		t.Error("no a=ice-lite")
	}
	if g, _ := s.Attribute("group"); g != "BUNDLE 0 1" {
		t.Errorf("group %q", g)
	}
	if o.Mid["audio"] != "0" || o.Mid["video"] != "1" {
		t.Errorf("mid %v", o.Mid)
	}
	wantCand := "1 1 udp 2130706431 127.0.0.1 " + itoa(int(n.MediaAddr().Port())) + " typ host"
	for i, md := range s.MediaDescriptions {
		get := func(k string) string { v, _ := md.Attribute(k); return v }
		if get("ice-ufrag") == "" || len(get("ice-pwd")) < 22 || get("setup") != "actpass" {
			t.Errorf("section %d ICE/DTLS attributes: %v", i, md.Attributes)
		}
		if get("fingerprint") != "sha-256 "+n.cert.Fingerprint {
			t.Errorf("section %d fingerprint %q", i, get("fingerprint"))
		}
		if _, ok := md.Attribute("rtcp-mux"); !ok {
			t.Errorf("section %d lacks rtcp-mux", i)
		}
		if _, ok := md.Attribute("recvonly"); !ok {
			t.Errorf("section %d is not recvonly", i)
		}
		if get("candidate") != wantCand {
			t.Errorf("section %d candidate %q, want %q", i, get("candidate"), wantCand)
		}
	}
	if r, _ := s.MediaDescriptions[0].Attribute("rtpmap"); r != "111 opus/48000/2" {
		t.Errorf("audio rtpmap %q", r)
	}
	if r, _ := s.MediaDescriptions[1].Attribute("rtpmap"); r != "96 VP8/90000" {
		t.Errorf("video rtpmap %q", r)
	}
	var raw map[string]any
	_ = json.Unmarshal(o.Raw, &raw)
	for _, k := range []string{"config", "connection_id", "client_id", "bundle_id", "session_id", "channel_id", "mid"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("offer lacks %q", k)
		}
	}
	if raw["client_id"] != o.ConnectionID || raw["bundle_id"] != o.ConnectionID {
		t.Errorf("client_id/bundle_id should default to the connection_id: %v", raw)
	}
	// A codec the client did not offer is refused.
	msg["video"] = map[string]any{"codec_type": "H265"}
	_, err = dial(t, n).Connect(msg, soon())
	expectClosed(t, err, 4400, "UNSUPPORTED-VIDEO-CODEC-TYPE")
	// A receive-only client gets no mid and inactive sections.
	msg = connectMsg("sdp", "recvonly")
	o, err = dial(t, n).Connect(msg, soon())
	if err != nil || o.Mid != nil || !strings.Contains(o.SDP, "a=inactive") {
		t.Fatalf("recvonly offer: mid %v err %v\n%s", o.Mid, err, o.SDP)
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// chromeCapabilitySDP is the shape of the capability SDP sora-js-sdk sends
// (a recvonly audio and video offer from Chromium), shortened.
const chromeCapabilitySDP = "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n" +
	"a=group:BUNDLE 0 1\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS\r\n" +
	"m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n" +
	"a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=ice-options:trickle\r\n" +
	"a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n" +
	"a=setup:actpass\r\na=mid:0\r\na=recvonly\r\na=rtcp-mux\r\n" +
	"a=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n" +
	"a=rtpmap:63 red/48000/2\r\na=fmtp:63 111/111\r\na=rtpmap:9 G722/8000\r\na=rtpmap:0 PCMU/8000\r\n" +
	"a=rtpmap:8 PCMA/8000\r\na=rtpmap:13 CN/8000\r\na=rtpmap:110 telephone-event/48000\r\na=rtpmap:126 telephone-event/8000\r\n" +
	"m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99 100 101 45\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n" +
	"a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=ice-options:trickle\r\n" +
	"a=fingerprint:sha-256 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF\r\n" +
	"a=setup:actpass\r\na=mid:1\r\na=recvonly\r\na=rtcp-mux\r\na=rtcp-rsize\r\n" +
	"a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n" +
	"a=rtpmap:98 VP9/90000\r\na=fmtp:98 profile-id=0\r\na=rtpmap:99 rtx/90000\r\na=fmtp:99 apt=98\r\n" +
	"a=rtpmap:100 VP9/90000\r\na=fmtp:100 profile-id=2\r\na=rtpmap:101 rtx/90000\r\na=fmtp:101 apt=100\r\n" +
	"a=rtpmap:45 AV1/90000\r\na=fmtp:45 level-idx=5;profile=0;tier=0\r\n"

func TestNotify(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.SignalingBundleID = true })
	readNotify := func(c *sigclient.Client) map[string]any {
		t.Helper()
		for {
			msg, err := c.ReadMessage(soon())
			if err != nil {
				t.Fatalf("waiting for notify: %v", err)
			}
			var m map[string]any
			_ = json.Unmarshal(msg, &m)
			if m["type"] == "notify" {
				return m
			}
		}
	}
	a, oa := join(t, n, "room", "sendrecv")
	self := readNotify(a)
	if self["event_type"] != "connection.created" || self["connection_id"] != oa.ConnectionID || self["channel_connections"] != 1.0 {
		t.Fatalf("own connection.created: %v", self)
	}
	b := dial(t, n)
	mb := connectMsg("room", "recvonly")
	mb["signaling_notify_metadata"] = map[string]any{"name": "bob"}
	ob, err := b.Connect(mb, soon())
	if err != nil {
		t.Fatal(err)
	}
	answer(t, b, ob)
	other := readNotify(a)
	if other["event_type"] != "connection.created" || other["connection_id"] != ob.ConnectionID ||
		other["channel_connections"] != 2.0 || other["channel_recvonly_connections"] != 1.0 ||
		other["metadata"].(map[string]any)["name"] != "bob" {
		t.Fatalf("A's notify of B: %v", other)
	}
	if _, ok := other["data"]; ok {
		t.Fatalf("data is only for the joining client: %v", other)
	}
	bself := readNotify(b)
	data, _ := bself["data"].([]any)
	if bself["connection_id"] != ob.ConnectionID || len(data) != 2 {
		t.Fatalf("B's own connection.created: %v", bself)
	}
	// Same bundle_id: C gets no notify about D and D none about C.
	c := dial(t, n)
	mc := connectMsg("room", "sendonly")
	mc["bundle_id"] = "bundle-x"
	oc, _ := c.Connect(mc, soon())
	answer(t, c, oc)
	if readNotify(c)["connection_id"] != oc.ConnectionID {
		t.Fatal("C's first notify is not its own")
	}
	d := dial(t, n)
	od, _ := d.Connect(mc, soon())
	answer(t, d, od)
	if got := readNotify(d)["connection_id"]; got != od.ConnectionID {
		t.Fatalf("D's first notify is about %v", got)
	}
	if closed, err := b.Disconnect(soon()); err != nil || closed.Code != 1000 {
		t.Fatal(closed, err)
	}
	// A sees C created, D created, B destroyed, in order; C sees B destroyed
	// next, without a notify about D.
	for _, want := range []string{oc.ConnectionID, od.ConnectionID} {
		if m := readNotify(a); m["connection_id"] != want || m["event_type"] != "connection.created" {
			t.Fatalf("A: %v, want created %s", m, want)
		}
	}
	if m := readNotify(a); m["event_type"] != "connection.destroyed" || m["connection_id"] != ob.ConnectionID {
		t.Fatalf("A: %v", m)
	}
	if m := readNotify(c); m["event_type"] != "connection.destroyed" || m["connection_id"] != ob.ConnectionID {
		t.Fatalf("C got %v, want B destroyed (and nothing about D)", m)
	}
}

// TestPingPongAndTimeouts: each signaling timer closes with its code, on a
// node where only that timer is short (a short timer elsewhere would also
// close clients that are merely slow on a loaded machine).
func TestPingPongAndTimeouts(t *testing.T) {
	t.Run("ping then PONG-TIMEOUT", func(t *testing.T) {
		n := startNode(t, func(c *config.Config) {
			c.SignalingPingInterval = 50 * time.Millisecond
			c.SignalingPongTimeout = 300 * time.Millisecond
		})
		c, _ := join(t, n, "p", "sendrecv")
		c.AutoPong = false
		for {
			msg, err := c.ReadMessage(soon())
			if err != nil {
				expectClosed(t, err, 4408, "PONG-TIMEOUT")
				return
			}
			var m map[string]any
			_ = json.Unmarshal(msg, &m)
			if m["type"] == "ping" && m["stats"] != false {
				t.Fatalf("ping %s", msg)
			}
		}
	})
	t.Run("pongs keep it alive", func(t *testing.T) {
		const pongTimeout = 500 * time.Millisecond
		n := startNode(t, func(c *config.Config) {
			c.SignalingPingInterval = 50 * time.Millisecond
			c.SignalingPongTimeout = pongTimeout
		})
		c, _ := join(t, n, "p2", "sendrecv")
		// AutoPong answers; after three pong timeouts it is still connected.
		end := time.Now().Add(3 * pongTimeout)
		for time.Now().Before(end) {
			if _, err := c.ReadMessage(end); err != nil && !isTimeout(err) {
				t.Fatalf("closed while answering pings: %v", err)
			}
		}
		if closed, err := c.Disconnect(soon()); err != nil || closed.Reason != "TYPE-DISCONNECT" {
			t.Fatal(closed, err)
		}
	})
	t.Run("ANSWER-TIMEOUT", func(t *testing.T) {
		n := startNode(t, func(c *config.Config) { c.AnswerTimeout = 300 * time.Millisecond })
		c := dial(t, n)
		if _, err := c.Connect(connectMsg("a", "sendrecv"), soon()); err != nil {
			t.Fatal(err)
		}
		closed, err := c.AwaitClose(soon())
		if err != nil || closed.Code != 4408 || closed.Reason != "ANSWER-TIMEOUT" {
			t.Fatalf("%v %v", closed, err)
		}
		waitFor(t, "connection gone", patience, func() bool { return n.hub.Connections() == 0 })
	})
	t.Run("CONNECT-TIMEOUT", func(t *testing.T) {
		n := startNode(t, func(c *config.Config) { c.ConnectTimeout = 300 * time.Millisecond })
		c := dial(t, n)
		closed, err := c.AwaitClose(soon())
		if err != nil || closed.Code != 4408 || closed.Reason != "CONNECT-TIMEOUT" {
			t.Fatalf("%v %v", closed, err)
		}
	})
	t.Run("disconnect is answered with the close", func(t *testing.T) {
		n := startNode(t, nil)
		c, _ := join(t, n, "d", "sendrecv")
		closed, err := c.Disconnect(soon())
		if err != nil || closed.Code != 1000 || closed.Reason != "TYPE-DISCONNECT" {
			t.Fatalf("%v %v", closed, err)
		}
	})
}
