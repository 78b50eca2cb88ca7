package node

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/hayate-sfu/hayate/config"
	"github.com/hayate-sfu/hayate/internal/sigclient"
	"github.com/hayate-sfu/hayate/signal"
)

// authAnswering is an auth webhook that answers every connect with body.
func authAnswering(t *testing.T, body string) *hookReceiver {
	r := newHookReceiver(t)
	r.respond = func(w http.ResponseWriter, _ map[string]any) { w.Write([]byte(body)) }
	return r
}

// TestAuthRequestReportsTheConnect: the auth request carries sora_client as
// Sora's object parsed from the connect's strings, and what the client
// asked for (simulcast, bit rates) before any payout.
func TestAuthRequestReportsTheConnect(t *testing.T) {
	r := authAnswering(t, `{"allowed":true}`)
	n := startNode(t, func(c *config.Config) { c.AuthWebhookURL = r.url() })
	msg := connectMsg("ch", "sendrecv")
	msg["sora_client"] = "Sora C++ SDK 2024.6.1 (ab12cd34)"
	msg["environment"] = "[x86_64] Ubuntu 24.04"
	msg["libwebrtc"] = "Shiguredo-build M126"
	msg["simulcast"] = true
	msg["video"] = map[string]any{"codec_type": "VP8", "bit_rate": 1500}
	if _, err := dial(t, n).Connect(msg, soon()); err != nil {
		t.Fatal(err)
	}
	req := r.all()[0]
	sc, _ := req["sora_client"].(map[string]any)
	want := map[string]any{"raw": "Sora C++ SDK 2024.6.1 (ab12cd34)", "type": "Sora C++ SDK", "version": "2024.6.1",
		"commit_short": "ab12cd34", "environment": "[x86_64] Ubuntu 24.04", "libwebrtc": "Shiguredo-build M126"}
	for k, v := range want {
		if sc[k] != v {
			t.Errorf("sora_client.%s = %v, want %v (%v)", k, sc[k], v, sc)
		}
	}
	if req["simulcast"] != true || req["video_codec_type"] != "VP8" || req["video_bit_rate"] != 1500.0 || req["video"] != true {
		t.Errorf("auth request does not report the connect: %v", req)
	}
}

func TestParseSoraClientOfEverySDK(t *testing.T) {
	r := authAnswering(t, `{"allowed":true}`)
	n := startNode(t, func(c *config.Config) { c.AuthWebhookURL = r.url() })
	for _, c := range []struct{ raw, typ, version string }{
		{"Sora JavaScript SDK 2025.1.0", "Sora JavaScript SDK", "2025.1.0"},
		{"Sora JavaScript SDK 2025.2.0-canary.3", "Sora JavaScript SDK", "2025.2.0-canary.3"},
		{"hayate-test", "hayate-test", ""},
	} {
		msg := connectMsg("ch", "recvonly")
		msg["sora_client"] = c.raw
		if _, err := dial(t, n).Connect(msg, soon()); err != nil {
			t.Fatal(err)
		}
		all := r.all()
		sc := all[len(all)-1]["sora_client"].(map[string]any)
		if sc["raw"] != c.raw || sc["type"] != c.typ || (c.version != "" && sc["version"] != c.version) || (c.version == "" && sc["version"] != nil) {
			t.Errorf("%q parsed as %v", c.raw, sc)
		}
	}
}

// TestConnectionLifetime: the connection_lifetime payout closes the
// connection with 1000 LIFETIME-EXPIRED once that many seconds have passed
// since its admission, and connection.destroyed says why.
func TestConnectionLifetime(t *testing.T) {
	r := authAnswering(t, `{"allowed":true,"connection_lifetime":1}`)
	ev := newHookReceiver(t)
	n := startNode(t, func(c *config.Config) { c.AuthWebhookURL, c.EventWebhookURL = r.url(), ev.url() })
	start := time.Now()
	c, _ := join(t, n, "ch", "sendrecv")
	cl, err := c.AwaitClose(soon())
	if err != nil {
		t.Fatal(err)
	}
	if cl.Code != 1000 || cl.Reason != "LIFETIME-EXPIRED" {
		t.Fatalf("closed with %d %q, want 1000 LIFETIME-EXPIRED", cl.Code, cl.Reason)
	}
	if took := time.Since(start); took < time.Second {
		t.Fatalf("closed after %v, before the 1 s lifetime", took)
	}
	waitFor(t, "connection.destroyed", patience, func() bool { return ev.count("connection.destroyed") == 1 })
	if d := ev.ofType("connection.destroyed")[0]["data"].(map[string]any); d["reason"] != "LIFETIME-EXPIRED" {
		t.Fatalf("connection.destroyed data: %v", d)
	}
	// Without the payout, nothing expires: another connection outlives 1 s.
	r2 := authAnswering(t, `{"allowed":true}`)
	n2 := startNode(t, func(c *config.Config) { c.AuthWebhookURL = r2.url() })
	c2, _ := join(t, n2, "ch", "sendrecv")
	if cl, err := c2.AwaitClose(time.Now().Add(1500 * time.Millisecond)); err == nil {
		t.Fatalf("a connection without connection_lifetime closed: %v", cl)
	}
	if n2.hub.Connections() != 1 {
		t.Fatal("a connection without connection_lifetime ended")
	}
	for _, bad := range []string{`0`, `-5`, `"60"`} {
		r3 := authAnswering(t, `{"allowed":true,"connection_lifetime":`+bad+`}`)
		n3 := startNode(t, func(c *config.Config) { c.AuthWebhookURL = r3.url() })
		_, err := dial(t, n3).Connect(connectMsg("ch", "sendrecv"), soon())
		expectClosed(t, err, 4502, "INVALID-AUTH-WEBHOOK-RESPONSE-JSON")
	}
}

// TestMediaPayouts: audio/video false payouts take the kind out of the
// offer (a pion client sees no such transceiver), the codec type payouts
// choose the offer's codec.
func TestMediaPayouts(t *testing.T) {
	t.Run("video false", func(t *testing.T) {
		r := authAnswering(t, `{"allowed":true,"video":false}`)
		ev := newHookReceiver(t)
		n := startNode(t, func(c *config.Config) { c.AuthWebhookURL, c.EventWebhookURL = r.url(), ev.url() })
		p := newPionPeer(t, n, pionAPI(t, 0), "ch", "sendrecv")
		if strings.Contains(p.offer.SDP, "m=video") || !strings.Contains(p.offer.SDP, "m=audio") {
			t.Fatalf("offer after video: false:\n%s", p.offer.SDP)
		}
		for _, tr := range p.pc.GetTransceivers() {
			if tr.Kind() == webrtc.RTPCodecTypeVideo {
				t.Fatal("pion client got a video transceiver")
			}
		}
		p.waitConnected(n)
		waitFor(t, "connection.created", patience, func() bool { return ev.count("connection.created") == 1 })
		if d := ev.ofType("connection.created")[0]["data"].(map[string]any); d["video"] != false || d["audio"] != true {
			t.Fatalf("connection.created data: %v", d)
		}
	})
	t.Run("audio false", func(t *testing.T) {
		r := authAnswering(t, `{"allowed":true,"audio":false}`)
		n := startNode(t, func(c *config.Config) { c.AuthWebhookURL = r.url() })
		o, err := dial(t, n).Connect(connectMsg("ch", "sendrecv"), soon())
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(o.SDP, "m=audio") || !strings.Contains(o.SDP, "m=video") {
			t.Fatalf("offer after audio: false:\n%s", o.SDP)
		}
	})
	t.Run("both false", func(t *testing.T) {
		r := authAnswering(t, `{"allowed":true,"audio":false,"video":false}`)
		n := startNode(t, func(c *config.Config) { c.AuthWebhookURL = r.url() })
		_, err := dial(t, n).Connect(connectMsg("ch", "sendrecv"), soon())
		expectClosed(t, err, 4400, "AUDIO-AND-VIDEO-DISABLED")
	})
	t.Run("codec type", func(t *testing.T) {
		for _, body := range []string{`{"allowed":true,"video_codec_type":"H264"}`, `{"allowed":true,"video":{"codec_type":"H264"}}`} {
			r := authAnswering(t, body)
			n := startNode(t, func(c *config.Config) { c.AuthWebhookURL = r.url() })
			msg := connectMsg("ch", "sendrecv")
			msg["video"] = map[string]any{"codec_type": "VP8"}
			o, err := dial(t, n).Connect(msg, soon())
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(o.SDP, "H264/90000") || strings.Contains(o.SDP, "VP8/90000") {
				t.Fatalf("%s: offer video codec:\n%s", body, o.SDP)
			}
		}
	})
}

// TestUnsupportedPayoutsRefused: a payout Hayate cannot honour refuses the
// connect with 4502 UNSUPPORTED-PAYOUT-<FIELD>; asking for nothing (false,
// null) is accepted.
func TestUnsupportedPayoutsRefused(t *testing.T) {
	ev := newHookReceiver(t)
	for _, c := range []struct{ body, reason string }{
		{`{"allowed":true,"audio_bit_rate":32}`, "UNSUPPORTED-PAYOUT-AUDIO-BIT-RATE"},
		{`{"allowed":true,"audio":{"codec_type":"OPUS","bit_rate":32}}`, "UNSUPPORTED-PAYOUT-AUDIO-BIT-RATE"},
		{`{"allowed":true,"simulcast_multicodec":true}`, "UNSUPPORTED-PAYOUT-SIMULCAST-MULTICODEC"},
		{`{"allowed":true,"video_vp9_params":{"profile_id":2}}`, "UNSUPPORTED-PAYOUT-VIDEO-VP9-PARAMS"},
		{`{"allowed":true,"forwarding_filter":{"action":"block","rules":[]}}`, "UNSUPPORTED-PAYOUT-FORWARDING-FILTER"},
		{`{"allowed":true,"audio_streaming_language_code":"ja-JP"}`, "UNSUPPORTED-PAYOUT-AUDIO-STREAMING-LANGUAGE-CODE"},
		{`{"allowed":true,"simulcast":false,"spotlight":null,"audio_opus_params":null}`, ""},
		{`{"allowed":true,"video":{"codec_type":"VP8","bit_rate":500},"video_bit_rate":500}`, ""},
	} {
		r := authAnswering(t, c.body)
		n := startNode(t, func(cfg *config.Config) { cfg.AuthWebhookURL, cfg.EventWebhookURL = r.url(), ev.url() })
		_, err := dial(t, n).Connect(connectMsg("ch", "sendrecv"), soon())
		if c.reason == "" {
			if err != nil {
				t.Fatalf("%s: %v", c.body, err)
			}
			continue
		}
		expectClosed(t, err, 4502, c.reason)
		waitFor(t, "connection.failed", patience, func() bool {
			for _, f := range ev.ofType("connection.failed") {
				if f["data"].(map[string]any)["message"] == c.reason {
					return true
				}
			}
			return false
		})
	}
}

// TestSimulcastAndSpotlightPayouts: the auth webhook's simulcast and
// spotlight payouts are applied (payout > connect): simulcast: true with
// simulcast_encodings offers those encodings, video_bit_rate sizes the
// default ones; spotlight: true makes a plain connect a spotlight one
// (offered simulcast, the webhooks say spotlight), spotlight: false takes
// it away, spotlight_encodings are the offer's encodings, and a bad
// spotlight_number or rid is refused as in connect.
func TestSimulcastAndSpotlightPayouts(t *testing.T) {
	type offerFlags struct {
		Simulcast bool `json:"simulcast"`
		Spotlight bool `json:"spotlight"`
		Encodings []struct {
			MaxBitrate int `json:"maxBitrate"`
		} `json:"encodings"`
	}
	for _, c := range []struct {
		name, body  string
		askSpot     bool
		spot, simul bool
		encodings   int
		bitRate     int // kbit/s the encodings share, 0: not checked
	}{
		{"simulcast encodings", `{"allowed":true,"simulcast":true,"simulcast_encodings":[{"rid":"r0","active":true},{"rid":"r1","active":true}]}`, false, false, true, 2, 0},
		{"video bit rate", `{"allowed":true,"simulcast":true,"video_bit_rate":3000}`, false, false, true, 3, 3000},
		{"video object bit rate", `{"allowed":true,"simulcast":true,"video":{"bit_rate":1200}}`, false, false, true, 3, 1200},
		{"spotlight on", `{"allowed":true,"spotlight":true,"spotlight_number":2,"spotlight_focus_rid":"r2","spotlight_unfocus_rid":"none"}`, false, true, true, 3, 0},
		{"spotlight off", `{"allowed":true,"spotlight":false}`, true, false, false, 0, 0},
		{"spotlight encodings", `{"allowed":true,"spotlight":true,"spotlight_encodings":[{"rid":"r0","active":true},{"rid":"r1","active":true}]}`, false, true, true, 2, 0},
		{"spotlight details without spotlight", `{"allowed":true,"spotlight_number":3}`, false, false, false, 0, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := authAnswering(t, c.body)
			ev := newHookReceiver(t)
			n := startNode(t, func(cfg *config.Config) { cfg.AuthWebhookURL, cfg.EventWebhookURL = r.url(), ev.url() })
			msg := connectMsg("ch", "sendrecv")
			if c.askSpot {
				msg["spotlight"] = true
			}
			cl := dial(t, n)
			o, err := cl.Connect(msg, soon())
			if err != nil {
				t.Fatal(err)
			}
			answer(t, cl, o)
			var f offerFlags
			if err := json.Unmarshal(o.Raw, &f); err != nil {
				t.Fatal(err)
			}
			if f.Spotlight != c.spot || f.Simulcast != c.simul || len(f.Encodings) != c.encodings {
				t.Fatalf("offer spotlight %v simulcast %v encodings %d, want %v %v %d", f.Spotlight, f.Simulcast, len(f.Encodings), c.spot, c.simul, c.encodings)
			}
			if c.bitRate != 0 {
				sum := 0
				for _, e := range f.Encodings {
					sum += e.MaxBitrate
				}
				if sum != c.bitRate*1000 {
					t.Fatalf("encodings share %d bit/s, want %d", sum, c.bitRate*1000)
				}
			}
			waitFor(t, "connection.created", patience, func() bool { return ev.count("connection.created") == 1 })
			if e := ev.ofType("connection.created")[0]; e["spotlight"] != c.spot || e["simulcast"] != c.simul {
				t.Fatalf("connection.created: %v", e)
			}
		})
	}
	for _, c := range []struct{ body, reason string }{
		{`{"allowed":true,"spotlight":true,"spotlight_number":9}`, "INVALID-SPOTLIGHT-NUMBER"},
		{`{"allowed":true,"spotlight":true,"spotlight_focus_rid":"r3"}`, "INVALID-SPOTLIGHT-RID"},
		{`{"allowed":true,"simulcast_rid":"r7"}`, "INVALID-SIMULCAST-RID"},
		{`{"allowed":true,"simulcast":true,"simulcast_encodings":[]}`, "INVALID-SIMULCAST-ENCODINGS"},
	} {
		r := authAnswering(t, c.body)
		n := startNode(t, func(cfg *config.Config) { cfg.AuthWebhookURL = r.url() })
		_, err := dial(t, n).Connect(connectMsg("ch", "sendrecv"), soon())
		expectClosed(t, err, 4400, c.reason)
	}
}

// TestNotifyPayouts: signaling_notify: false from the auth webhook keeps
// notifies from that connection (its first message after the offer is a
// push), and signaling_notify_metadata is the metadata the others see.
func TestNotifyPayouts(t *testing.T) {
	auth := newHookReceiver(t)
	auth.respond = func(w http.ResponseWriter, body map[string]any) {
		switch md, _ := body["metadata"].(map[string]any); md["who"] {
		case "quiet":
			w.Write([]byte(`{"allowed":true,"signaling_notify":false}`))
		default:
			w.Write([]byte(`{"allowed":true,"signaling_notify_metadata":{"name":"paid"}}`))
		}
	}
	n := startNode(t, func(c *config.Config) { c.AuthWebhookURL = auth.url() })
	connect := func(who string) *sigclient.Client {
		c := dial(t, n)
		msg := connectMsg("room", "sendrecv")
		msg["metadata"] = map[string]any{"who": who}
		msg["signaling_notify_metadata"] = map[string]any{"name": "asked"}
		o, err := c.Connect(msg, soon())
		if err != nil {
			t.Fatal(err)
		}
		answer(t, c, o)
		return c
	}
	// next is c's next message but re-offers (a member gets one for each
	// publisher that joins after it, in no fixed order with the rest).
	next := func(c *sigclient.Client) map[string]any {
		t.Helper()
		for {
			raw, err := c.ReadMessage(soon())
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			must(t, json.Unmarshal(raw, &m))
			if m["type"] != "re-offer" {
				return m
			}
		}
	}
	connect("loud")
	quiet := connect("quiet")
	// Both answers handled (connect returns once its answer is sent): the
	// third's connection.created lists the connections created before it.
	waitFor(t, "two connections created", patience, func() bool { return n.hub.Stats().ConnectionCreated.Load() == 2 })
	apiOK[map[string]any](t, n, "Sora_20160711.PushChannel", `{"channel_id":"room","data":{"p":1}}`)
	if m := next(quiet); m["type"] != "push" {
		t.Fatalf("the connection with signaling_notify: false got %v before the push", m)
	}
	third := connect("third")
	m := next(third)
	data, _ := m["data"].([]any)
	if m["type"] != "notify" || len(data) != 3 {
		t.Fatalf("third's own connection.created: %v", m)
	}
	first := data[0].(map[string]any)
	md, _ := first["metadata"].(map[string]any)
	authn, _ := first["authn_metadata"].(map[string]any)
	authz, _ := first["authz_metadata"].(map[string]any)
	if md["name"] != "paid" || authn["name"] != "asked" || authz["name"] != "paid" {
		t.Fatalf("the first connection's notify metadata %v, want the payout's as metadata and authz_metadata, connect's as authn_metadata", first)
	}
}

// TestTURNPayouts: turn_fqdn and turn_tls_fqdn name the offer's TURN
// hosts, turn_tls_only keeps the TLS URL alone.
func TestTURNPayouts(t *testing.T) {
	for _, c := range []struct {
		body string
		want []string // URL prefixes
	}{
		{`{"allowed":true,"turn_fqdn":"paid.example.com","turn_tls_fqdn":"paidtls.example.com"}`,
			[]string{"turn:paid.example.com:", "turn:paid.example.com:", "turns:paidtls.example.com:443"}},
		{`{"allowed":true,"turn_tls_only":true}`, []string{"turns:tls.example.com:443"}},
	} {
		r := authAnswering(t, c.body)
		n := startNode(t, func(cfg *config.Config) {
			cfg.AuthWebhookURL = r.url()
			cfg.TURNTLS, cfg.TURNTLSPort, cfg.TURNFQDN, cfg.TURNTLSFQDN = true, 443, "turn.example.com", "tls.example.com"
		})
		_, o := join(t, n, "ice", "recvonly")
		oc := parseOfferConfig(t, o)
		if len(oc.ICEServers) != 1 || len(oc.ICEServers[0].URLs) != len(c.want) {
			t.Fatalf("%s: iceServers %+v", c.body, oc.ICEServers)
		}
		for i, u := range oc.ICEServers[0].URLs {
			if !strings.HasPrefix(u, c.want[i]) {
				t.Fatalf("%s: URL %d is %s, want %s...", c.body, i, u, c.want[i])
			}
		}
	}
}

// TestSessionCreatedAnswer: session_metadata from the session.created
// answer comes back in session.destroyed; trial_max_connections caps the
// session; a payout Hayate does not apply is counted.
func TestSessionCreatedAnswer(t *testing.T) {
	sess := newHookReceiver(t)
	sess.respond = func(w http.ResponseWriter, body map[string]any) {
		if body["type"] == "session.created" {
			w.Write([]byte(`{"session_metadata":{"room":"blue"},"trial_max_connections":1,"recording":true}`))
		}
	}
	n := startNode(t, func(c *config.Config) { c.SessionWebhookURL = sess.url() })
	a, _ := join(t, n, "ch", "sendrecv")
	flushHooks(t, n) // the answer is applied before the queue is idle
	_, err := dial(t, n).Connect(connectMsg("ch", "sendrecv"), soon())
	expectClosed(t, err, 4429, "MAX-CHANNEL-CONNECTIONS")
	if _, err := a.Disconnect(soon()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "session.destroyed", patience, func() bool { return sess.count("session.destroyed") == 1 })
	md, _ := json.Marshal(sess.ofType("session.destroyed")[0]["session_metadata"])
	if string(md) != `{"room":"blue"}` {
		t.Fatalf("session.destroyed session_metadata %s", md)
	}
	_, stats, _ := apiCall(t, n, "Sora_20171010.GetStatsReport", "")
	if stats["total_unsupported_session_payouts"] != 1.0 {
		t.Fatalf("total_unsupported_session_payouts %v", stats["total_unsupported_session_payouts"])
	}
}

// TestEventWebhookByteCounters: connection.destroyed reports the bytes the
// media path received from a publisher and sent to a subscriber (Sora's
// total_received_bytes, total_sent_bytes).
func TestEventWebhookByteCounters(t *testing.T) {
	ev := newHookReceiver(t)
	n := startNode(t, func(c *config.Config) { c.EventWebhookURL = ev.url() })
	api := pionAPI(t, 0)
	sub := newPionPeer(t, n, api, "bytes", "recvonly")
	video := newSource(t, webrtc.RTPCodecTypeVideo)
	pub := newPionPeer(t, n, api, "bytes", "sendonly", video.track)
	pub.waitConnected(n)
	sub.waitConnected(n)
	const want = 20 // packets of 1100 bytes of payload the subscriber must get
	got := 0
	waitFor(t, "the subscriber to receive video", patience, func() bool {
		seq := video.send(t)
		if _, ok := sub.has(webrtc.RTPCodecTypeVideo, seq-1); ok {
			got++
		}
		return got >= want
	})
	pub.disconnect()
	sub.disconnect()
	waitFor(t, "connection.destroyed", patience, func() bool { return ev.count("connection.destroyed") == 2 })
	for _, d := range ev.ofType("connection.destroyed") {
		data := d["data"].(map[string]any)
		in, out := data["total_received_bytes"].(float64), data["total_sent_bytes"].(float64)
		switch d["connection_id"] {
		case pub.offer.ConnectionID:
			if in < float64(want*1100) {
				t.Errorf("publisher: total_received_bytes %v for at least %d packets of 1100 bytes", in, want)
			}
		case sub.offer.ConnectionID:
			if out < float64(want*1100) || in == 0 {
				t.Errorf("subscriber: total_sent_bytes %v for %d packets received, total_received_bytes %v", out, got, in)
			}
		}
	}
}

// TestConnectionUpdated: a created connection's connection.updated event
// webhook comes periodically (a minute; 200 ms here) between its
// connection.created and connection.destroyed, and stops with it.
func TestConnectionUpdated(t *testing.T) {
	ev := newHookReceiver(t)
	n := startNode(t, func(c *config.Config) { c.EventWebhookURL = ev.url() })
	n.hub.SetTestHooks(signal.TestHooks{UpdatedEvery: 200 * time.Millisecond})
	a, oa := join(t, n, "ch", "sendrecv")
	_, ob := join(t, n, "ch", "recvonly")
	of := func(id, typ string) int {
		k := 0
		for _, b := range ev.ofType(typ) {
			if b["connection_id"] == id {
				k++
			}
		}
		return k
	}
	waitFor(t, "two connection.updated of A", patience, func() bool { return of(oa.ConnectionID, "connection.updated") >= 2 })
	if _, err := a.Disconnect(soon()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "A's connection.destroyed", patience, func() bool { return of(oa.ConnectionID, "connection.destroyed") == 1 })
	// B's updates, on the same period, show that A's timer had its turns.
	seen := of(ob.ConnectionID, "connection.updated")
	waitFor(t, "two more connection.updated of B", patience, func() bool { return of(ob.ConnectionID, "connection.updated") >= seen+2 })
	flushHooks(t, n)
	var order []string
	for _, b := range ev.all() {
		if b["connection_id"] == oa.ConnectionID {
			order = append(order, b["type"].(string))
		}
	}
	if len(order) < 4 || order[0] != "connection.created" || order[len(order)-1] != "connection.destroyed" {
		t.Fatalf("event webhooks %v", order)
	}
	for _, typ := range order[1 : len(order)-1] {
		if typ != "connection.updated" {
			t.Fatalf("event webhooks %v: %s between created and destroyed", order, typ)
		}
	}
	for _, u := range ev.ofType("connection.updated") {
		if d := u["data"].(map[string]any); u["session_id"] != oa.SessionID || d["channel_connections"].(float64) < 1 || d["minutes"] != 0.0 {
			t.Fatalf("connection.updated: %v", u)
		}
	}
}
