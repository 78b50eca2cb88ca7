package node

import (
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hayate-sfu/hayate/config"
	"github.com/hayate-sfu/hayate/internal/ids"
	"github.com/hayate-sfu/hayate/mode"
)

// flushHooks waits until every queued session and event webhook has been
// delivered (or has failed).
func flushHooks(t *testing.T, n *Node) {
	t.Helper()
	waitFor(t, "webhook queues to drain", patience, func() bool { return n.sessionQ.Idle() && n.eventQ.Idle() })
}

func TestSessionVanished(t *testing.T) {
	withVanished := func(c *config.Config, r *hookReceiver) {
		c.SessionWebhookURL = r.url()
		c.IgnoreSessionVanishedWebhook = false
	}
	t.Run("once when the last session ends in a block mode", func(t *testing.T) {
		r := newHookReceiver(t)
		n := startNode(t, func(c *config.Config) { withVanished(c, r) })
		a, _ := join(t, n, "ch-a", "sendrecv")
		b, _ := join(t, n, "ch-b", "recvonly")
		b2, _ := join(t, n, "ch-b", "sendonly")
		setMode(t, n, "block_new_session")
		if _, err := a.Disconnect(soon()); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Disconnect(soon()); err != nil {
			t.Fatal(err)
		}
		flushHooks(t, n)
		if got := r.count("session.vanished"); got != 0 {
			t.Fatalf("session.vanished sent with a session still live (%d)", got)
		}
		if _, err := b2.Disconnect(soon()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "session.vanished", patience, func() bool { return r.count("session.vanished") == 1 })
		// Same drain: a stricter block mode with no session sends nothing new.
		setMode(t, n, "block_new_connection")
		flushHooks(t, n)
		if got := r.count("session.vanished"); got != 1 {
			t.Fatalf("session.vanished received %d times, want exactly 1", got)
		}
		v := r.ofType("session.vanished")[0]
		for _, k := range []string{"id", "timestamp", "version", "label", "node_name"} {
			if _, ok := v[k]; !ok {
				t.Errorf("session.vanished lacks %q: %v", k, v)
			}
		}
		if !ids.Valid(v["id"].(string)) || v["label"] != "Hayate" || v["node_name"] != "hayate@127.0.0.1" {
			t.Errorf("session.vanished fields: %v", v)
		}
		// A new drain after normal sends it again.
		setMode(t, n, "normal")
		setMode(t, n, "block_new_session")
		waitFor(t, "second drain's session.vanished", patience, func() bool { return r.count("session.vanished") == 2 })
	})
	t.Run("at once when a block mode is entered with no sessions", func(t *testing.T) {
		r := newHookReceiver(t)
		n := startNode(t, func(c *config.Config) { withVanished(c, r) })
		flushHooks(t, n)
		if r.count("session.vanished") != 0 {
			t.Fatal("session.vanished sent in normal mode")
		}
		setMode(t, n, "block_new_connection")
		waitFor(t, "session.vanished", patience, func() bool { return r.count("session.vanished") == 1 })
		flushHooks(t, n)
		if got := r.count("session.vanished"); got != 1 {
			t.Fatalf("got %d", got)
		}
	})
	t.Run("at start in a block mode", func(t *testing.T) {
		for _, m := range []mode.Mode{mode.BlockNewSession, mode.BlockNewConnection} {
			r := newHookReceiver(t)
			n := startNode(t, func(c *config.Config) { withVanished(c, r); c.InitialMode = m })
			waitFor(t, "session.vanished", patience, func() bool { return r.count("session.vanished") == 1 })
			flushHooks(t, n)
			if got := r.count("session.vanished"); got != 1 {
				t.Fatalf("initial_mode %s: %d session.vanished, want 1", m, got)
			}
		}
	})
	t.Run("after the session.destroyed that drained the node", func(t *testing.T) {
		// The receiver refuses the first try of session.destroyed: its
		// retry reaches it later; session.vanished must wait for it.
		r := newHookReceiver(t)
		var mu sync.Mutex
		var accepted []string
		tries := 0
		r.respond = func(w http.ResponseWriter, body map[string]any) {
			mu.Lock()
			defer mu.Unlock()
			if body["type"] == "session.destroyed" {
				if tries++; tries == 1 {
					w.WriteHeader(http.StatusServiceUnavailable)
					return
				}
			}
			accepted = append(accepted, body["type"].(string))
			w.WriteHeader(http.StatusOK)
		}
		n := startNode(t, func(c *config.Config) {
			withVanished(c, r)
			c.WebhookRetries, c.WebhookRetryInterval = 1, 300*time.Millisecond
		})
		a, _ := join(t, n, "ch", "sendrecv")
		setMode(t, n, "block_new_session")
		if _, err := a.Disconnect(soon()); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "session.vanished", patience, func() bool { return r.count("session.vanished") == 1 })
		mu.Lock()
		defer mu.Unlock()
		if len(accepted) != 3 || accepted[1] != "session.destroyed" || accepted[2] != "session.vanished" {
			t.Fatalf("session webhooks delivered as %v, want created, destroyed (retried), vanished", accepted)
		}
	})
	t.Run("at once on SIGTERM with no sessions, not for a cluster's health", func(t *testing.T) {
		r := newHookReceiver(t)
		n := startNode(t, func(c *config.Config) { withVanished(c, r) })
		n.hub.SetHealthMode(mode.BlockNewConnection, false) // as a cluster node that lost its lease
		flushHooks(t, n)
		if got := r.count("session.vanished"); got != 0 {
			t.Fatalf("%d session.vanished for a health mode that is no drain", got)
		}
		n.hub.SetHealthMode(mode.Normal, false)
		n.StartDrain()
		waitFor(t, "session.vanished", patience, func() bool { return r.count("session.vanished") == 1 })
	})
	t.Run("never with ignore_session_vanished_webhook = true", func(t *testing.T) {
		r := newHookReceiver(t)
		n := startNode(t, func(c *config.Config) { c.SessionWebhookURL = r.url() })
		a, _ := join(t, n, "ch", "sendrecv")
		setMode(t, n, "block_new_session")
		if _, err := a.Disconnect(soon()); err != nil {
			t.Fatal(err)
		}
		setMode(t, n, "normal")
		setMode(t, n, "block_new_connection")
		waitFor(t, "session.destroyed", patience, func() bool { return r.count("session.destroyed") == 1 })
		flushHooks(t, n)
		if got := r.count("session.vanished"); got != 0 {
			t.Fatalf("session.vanished sent %d times although ignored", got)
		}
	})
}

func TestSessionAndEventWebhooks(t *testing.T) {
	sess, ev := newHookReceiver(t), newHookReceiver(t)
	n := startNode(t, func(c *config.Config) { c.SessionWebhookURL, c.EventWebhookURL = sess.url(), ev.url() })
	a, oa := join(t, n, "room", "sendrecv")
	waitFor(t, "A's connection.created", patience, func() bool { return ev.count("connection.created") == 1 })
	b, ob := join(t, n, "room", "recvonly")
	waitFor(t, "two connection.created", patience, func() bool { return ev.count("connection.created") == 2 })
	if _, err := b.Disconnect(soon()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Disconnect(soon()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "session.destroyed", patience, func() bool { return sess.count("session.destroyed") == 1 })
	flushHooks(t, n)

	created := sess.ofType("session.created")
	if len(created) != 1 || created[0]["channel_id"] != "room" || created[0]["session_id"] != oa.SessionID {
		t.Fatalf("session.created: %v", created)
	}
	if ob.SessionID != oa.SessionID {
		t.Fatalf("two connections of one session got session ids %s and %s", oa.SessionID, ob.SessionID)
	}
	destroyed := sess.ofType("session.destroyed")[0]
	conns, _ := destroyed["connections"].([]any)
	if len(conns) != 2 || destroyed["total_connections"] != 2.0 || destroyed["max_connections"] != 2.0 {
		t.Fatalf("session.destroyed: %v", destroyed)
	}
	byConn := map[string]map[string]any{}
	for _, e := range ev.ofType("connection.created") {
		byConn[e["connection_id"].(string)] = e
		if e["channel_id"] != "room" || e["session_id"] != oa.SessionID || e["label"] != "Hayate" {
			t.Errorf("connection.created fields: %v", e)
		}
	}
	ca := byConn[oa.ConnectionID]
	if ca == nil || ca["role"] != "sendrecv" || ca["data"].(map[string]any)["channel_connections"] != 1.0 {
		t.Fatalf("A's connection.created: %v", ca)
	}
	cb := byConn[ob.ConnectionID]
	if cb == nil || cb["data"].(map[string]any)["channel_connections"] != 2.0 || cb["data"].(map[string]any)["channel_recvonly_connections"] != 1.0 {
		t.Fatalf("B's connection.created: %v", cb)
	}
	ds := ev.ofType("connection.destroyed")
	if len(ds) != 2 {
		t.Fatalf("connection.destroyed: %v", ds)
	}
	for _, d := range ds {
		if d["data"].(map[string]any)["reason"] != "TYPE-DISCONNECT" || d["data"].(map[string]any)["type_disconnect_reason"] != "NO-ERROR" {
			t.Errorf("connection.destroyed data: %v", d["data"])
		}
	}

	// A refused connect produces connection.failed with the close reason.
	setMode(t, n, "block_new_connection")
	c := dial(t, n)
	_, err := c.Connect(connectMsg("room", "sendonly"), soon())
	expectClosed(t, err, 4503, "BLOCKED-NEW-CONNECTION")
	waitFor(t, "connection.failed", patience, func() bool { return ev.count("connection.failed") == 1 })
	f := ev.ofType("connection.failed")[0]
	if f["channel_id"] != "room" || f["data"].(map[string]any)["message"] != "BLOCKED-NEW-CONNECTION" || !ids.Valid(f["connection_id"].(string)) {
		t.Fatalf("connection.failed: %v", f)
	}
}

func TestAuthWebhook(t *testing.T) {
	type authCase struct {
		name    string
		respond func(w http.ResponseWriter, body map[string]any)
		code    int
		reason  string
	}
	cases := []authCase{
		{"denied", func(w http.ResponseWriter, _ map[string]any) {
			w.Write([]byte(`{"allowed":false,"reason":"TOKEN-EXPIRED"}`))
		}, 4401, "TOKEN-EXPIRED"},
		{"denied without reason", func(w http.ResponseWriter, _ map[string]any) {
			w.Write([]byte(`{"allowed":false}`))
		}, 4502, "INVALID-AUTH-WEBHOOK-RESPONSE-JSON"},
		{"non-2xx", func(w http.ResponseWriter, _ map[string]any) {
			w.WriteHeader(http.StatusInternalServerError)
			w.Write([]byte(`{"allowed":true}`))
		}, 4502, "AUTH-WEBHOOK-BAD-STATUS"},
		{"bad JSON", func(w http.ResponseWriter, _ map[string]any) {
			w.Write([]byte(`allowed`))
		}, 4502, "INVALID-AUTH-WEBHOOK-RESPONSE-JSON"},
		{"no allowed field", func(w http.ResponseWriter, _ map[string]any) {
			w.Write([]byte(`{"reason":"x"}`))
		}, 4502, "INVALID-AUTH-WEBHOOK-RESPONSE-JSON"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newHookReceiver(t)
			r.respond = c.respond
			n := startNode(t, func(cfg *config.Config) {
				cfg.AuthWebhookURL = r.url()
			})
			cl := dial(t, n)
			_, err := cl.Connect(connectMsg("ch", "sendrecv"), soon())
			expectClosed(t, err, c.code, c.reason)
			// Signaling is otherwise unaffected.
			if n.hub.Connections() != 0 {
				t.Fatal("refused connection left behind")
			}
		})
	}
	t.Run("timeout", func(t *testing.T) {
		// The receiver answers only when the test ends: the refusal can
		// only come from webhook_response_timeout, which is short here
		// only (elsewhere a slow answer on a loaded machine would time
		// out too).
		r := hangingAuth(t, "ch")
		n := startNode(t, func(cfg *config.Config) {
			cfg.AuthWebhookURL = r.url()
			cfg.WebhookResponseTimeout = 300 * time.Millisecond
		})
		_, err := dial(t, n).Connect(connectMsg("ch", "sendrecv"), soon())
		expectClosed(t, err, 4502, "AUTH-WEBHOOK-TIMEOUT")
	})
	t.Run("unreachable", func(t *testing.T) {
		url := "http://" + refusedAddr(t).String() + "/auth"
		n := startNode(t, func(cfg *config.Config) { cfg.AuthWebhookURL = url })
		_, err := dial(t, n).Connect(connectMsg("ch", "sendrecv"), soon())
		expectClosed(t, err, 4502, "AUTH-WEBHOOK-UNREACHABLE")
		_, stats, _ := apiCall(t, n, "Sora_20171010.GetStatsReport", "")
		if stats["total_failed_auth_webhook"] != 1.0 || stats["refused_connections"].(map[string]any)["AUTH-WEBHOOK-FAILED"] != 1.0 {
			t.Fatalf("stats: %v", stats)
		}
	})
	t.Run("allowed with payouts", func(t *testing.T) {
		r := newHookReceiver(t)
		r.respond = func(w http.ResponseWriter, body map[string]any) {
			w.Write([]byte(`{"allowed":true,"client_id":"cid-from-auth","bundle_id":"bid-from-auth","metadata":{"role":"host"},"event_metadata":{"e":1}}`))
		}
		ev := newHookReceiver(t)
		n := startNode(t, func(cfg *config.Config) { cfg.AuthWebhookURL = r.url(); cfg.EventWebhookURL = ev.url() })
		cl := dial(t, n)
		msg := connectMsg("auth-ch", "sendonly")
		msg["metadata"] = map[string]any{"access_token": "t0k"}
		msg["client_id"] = "cid-from-connect"
		o, err := cl.Connect(msg, soon())
		if err != nil {
			t.Fatal(err)
		}
		if o.ClientID != "cid-from-auth" || o.BundleID != "bid-from-auth" || string(o.Metadata) != `{"role":"host"}` {
			t.Fatalf("payouts not applied: %+v metadata %s", o, o.Metadata)
		}
		got := r.all()
		if len(got) != 1 {
			t.Fatalf("auth webhook called %d times", len(got))
		}
		req := got[0]
		if req["channel_id"] != "auth-ch" || req["role"] != "sendonly" || req["connection_id"] != o.ConnectionID ||
			req["client_id"] != "cid-from-connect" || req["metadata"].(map[string]any)["access_token"] != "t0k" {
			t.Fatalf("auth request: %v", req)
		}
		if h := r.hdrs[0].Get("Sora-Connection-Id"); h != o.ConnectionID {
			t.Fatalf("sora-connection-id header %q, want %q", h, o.ConnectionID)
		}
		answer(t, cl, o)
		waitFor(t, "connection.created", patience, func() bool { return ev.count("connection.created") == 1 })
		if em := ev.ofType("connection.created")[0]["event_metadata"]; em.(map[string]any)["e"] != 1.0 {
			t.Fatalf("event_metadata: %v", em)
		}
	})
	t.Run("mode is checked before auth", func(t *testing.T) {
		var calls atomic.Int32
		r := newHookReceiver(t)
		r.respond = func(w http.ResponseWriter, _ map[string]any) { calls.Add(1); w.Write([]byte(`{"allowed":true}`)) }
		n := startNode(t, func(cfg *config.Config) { cfg.AuthWebhookURL = r.url() })
		setMode(t, n, "block_new_connection")
		_, err := dial(t, n).Connect(connectMsg("ch", "sendrecv"), soon())
		expectClosed(t, err, 4503, "BLOCKED-NEW-CONNECTION")
		setMode(t, n, "block_new_session")
		_, err = dial(t, n).Connect(connectMsg("idle", "sendrecv"), soon())
		expectClosed(t, err, 4503, "BLOCKED-NEW-SESSION")
		if calls.Load() != 0 {
			t.Fatalf("auth webhook called %d times for blocked connects", calls.Load())
		}
	})
}

// TestEventWebhookReceiverDown: a dead event receiver never stalls signaling.
func TestEventWebhookReceiverDown(t *testing.T) {
	url := "http://" + refusedAddr(t).String() + "/"
	n := startNode(t, func(c *config.Config) {
		c.EventWebhookURL, c.SessionWebhookURL = url, url
		c.WebhookQueueSize, c.WebhookWorkers = 2, 1
	})
	for range 10 {
		c, _ := join(t, n, "ch", "sendrecv")
		if _, err := c.Disconnect(soon()); err != nil {
			t.Fatal(err)
		}
	}
	_, stats, raw := apiCall(t, n, "Sora_20171010.GetStatsReport", "")
	if stats["total_connection_created"] != 10.0 {
		t.Fatalf("stats: %s", raw)
	}
	waitFor(t, "failures counted", patience, func() bool {
		_, s, _ := apiCall(t, n, "Sora_20171010.GetStatsReport", "")
		ev := s["total_failed_event_webhook"].(float64) + s["total_ignored_event_webhook"].(float64)
		return ev == 20 // 10 created + 10 destroyed, each failed or dropped
	})
	if !strings.Contains(string(raw), "total_ignored_event_webhook") {
		t.Fatal("stats lack ignored counter")
	}
}
