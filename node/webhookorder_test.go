package node

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hayate-sfu/hayate/config"
)

// slowReceiver is a webhook receiver that answers each webhook after a
// random delay of 0 to 200 ms; bodies are recorded as they arrive.
func slowReceiver(t *testing.T) *hookReceiver {
	r := newHookReceiver(t)
	r.respond = func(w http.ResponseWriter, _ map[string]any) {
		time.Sleep(time.Duration(rand.IntN(200)) * time.Millisecond) // the receiver's own slowness
		w.WriteHeader(http.StatusOK)
	}
	return r
}

// TestWebhooksInOrder: 1,000 short sessions (250 channels, four sessions
// each, one after another) of one connection each, with receivers that
// answer after random delays and 32 senders per queue: every channel's
// session webhooks arrive as created, destroyed, created, destroyed... of
// the right sessions, and every connection's event webhooks as created,
// then destroyed. Nothing is lost.
func TestWebhooksInOrder(t *testing.T) {
	const channels, rounds = 250, 4
	sess, ev := slowReceiver(t), slowReceiver(t)
	n := startNode(t, func(c *config.Config) {
		c.SessionWebhookURL, c.EventWebhookURL = sess.url(), ev.url()
		c.WebhookWorkers, c.WebhookQueueSize = 32, 4096
		// The test is about order and loss, not about the timeout: a
		// receiver in this process answers late whenever the process
		// stalls (4.3 s once under the stress run), which the default 5 s
		// must not count as a failed delivery.
		c.WebhookResponseTimeout = patience
		c.SignalingNotify = false
	})
	var wg sync.WaitGroup
	work := make(chan int)
	for range 16 {
		wg.Go(func() {
			for ch := range work {
				for range rounds {
					c, _ := join(t, n, fmt.Sprintf("ordered-%d", ch), "sendrecv")
					if cl, err := c.Disconnect(soon()); err != nil || cl.Code != 1000 {
						t.Errorf("disconnect: %v %v", cl, err)
						return
					}
					// The session ends once the node has seen the close.
					waitFor(t, "the session to end", patience, func() bool {
						return len(n.hub.ListConnections(fmt.Sprintf("ordered-%d", ch))) == 0
					})
				}
			}
		})
	}
	for ch := range channels {
		work <- ch
	}
	close(work)
	wg.Wait()
	const sessions = channels * rounds
	waitFor(t, "every webhook delivered", patience, func() bool {
		return len(sess.all()) == 2*sessions && len(ev.all()) == 2*sessions
	})

	// Session webhooks: per channel, created/destroyed alternate, each
	// destroyed naming the session its created opened.
	perChannel := map[string][]map[string]any{}
	for _, m := range sess.all() {
		perChannel[m["channel_id"].(string)] = append(perChannel[m["channel_id"].(string)], m)
	}
	for ch, list := range perChannel {
		for i, m := range list {
			want := []string{"session.created", "session.destroyed"}[i%2]
			if m["type"] != want || i%2 == 1 && m["session_id"] != list[i-1]["session_id"] {
				t.Fatalf("%s: webhook %d is %s of %s, want %s of the session opened before: %v", ch, i, m["type"], m["session_id"], want, types(list))
			}
		}
	}
	// Event webhooks: per connection, created then destroyed.
	perConn := map[string][]string{}
	for _, m := range ev.all() {
		id := m["connection_id"].(string)
		perConn[id] = append(perConn[id], m["type"].(string))
	}
	if len(perConn) != sessions {
		t.Fatalf("event webhooks of %d connections, want %d", len(perConn), sessions)
	}
	for id, list := range perConn {
		if !slices.Equal(list, []string{"connection.created", "connection.destroyed"}) {
			t.Fatalf("connection %s: %v", id, list)
		}
	}
	for _, q := range []string{"session", "event"} {
		_, st, _ := apiCall(t, n, "Sora_20171010.GetStatsReport", "")
		if st["total_failed_"+q+"_webhook"] != 0.0 || st["total_ignored_"+q+"_webhook"] != 0.0 {
			t.Fatalf("%s webhooks failed %v, ignored %v", q, st["total_failed_"+q+"_webhook"], st["total_ignored_"+q+"_webhook"])
		}
	}
}

func types(list []map[string]any) []any {
	var out []any
	for _, m := range list {
		out = append(out, m["type"])
	}
	return out
}

// TestClusterVanishedDrill is the operator's drill on three nodes with
// session webhooks and session.vanished on: a publisher lives on node A;
// the operator sets A to block_new_session; a viewer still joins the live
// channel there; a new channel lands on another node; the live channel
// empties; SIGTERM stops A. The application server receives exactly one
// session.vanished in all, from A, after the live channel's
// session.destroyed; joining the cluster sends none.
func TestClusterVanishedDrill(t *testing.T) {
	hooks := newHookReceiver(t)
	nodes := startCluster(t, 3, func(c *config.Config) {
		c.SessionWebhookURL = hooks.url()
		c.IgnoreSessionVanishedWebhook = false
		c.NodeName = c.ClusterNodeName // n1, n2, n3 in webhooks' node_name
	})
	pub, a := joinOwner(t, nodes, "live")
	setMode(t, a, "block_new_session")
	// Placement reads the replicated mode: wait until every node has it,
	// or a new channel may still be placed on a and refused there.
	for _, n := range nodes {
		waitFor(t, "a's block_new_session replicated", patience, func() bool {
			_, _, raw := apiCall(t, n, "Sora_20211215.ListClusterNodes", "")
			var list []map[string]any
			json.Unmarshal(raw, &list)
			for _, st := range list {
				if st["cluster_node_name"] == a.cfg.ClusterNodeName {
					return st["mode"] == "block_new_session"
				}
			}
			return false
		})
	}
	viewer, _ := join(t, a, "live", "recvonly")
	// A new channel asked of A goes elsewhere: A takes no new session.
	fresh, b := joinOwner(t, []*Node{a, nodes[0], nodes[1], nodes[2]}, "fresh")
	if b == a {
		t.Fatal("a new channel landed on the node in block_new_session")
	}
	if _, err := fresh.Disconnect(soon()); err != nil {
		t.Fatal(err)
	}
	if _, err := viewer.Disconnect(soon()); err != nil {
		t.Fatal(err)
	}
	if _, err := pub.Disconnect(soon()); err != nil {
		t.Fatal(err)
	}
	// SIGTERM: the drain, then the stop.
	if !a.Drain(t.Context(), patience) {
		t.Fatal("the node did not drain")
	}
	a.Close(t.Context())
	for _, n := range nodes {
		if n != a {
			flushHooks(t, n)
		}
	}
	var order []string
	vanished, liveDestroyed := -1, -1
	for i, m := range hooks.all() {
		order = append(order, fmt.Sprint(m["type"], " ", m["node_name"], " ", m["channel_id"]))
		switch {
		case m["type"] == "session.vanished":
			if vanished >= 0 {
				t.Fatalf("a second session.vanished: %v", order)
			}
			vanished = i
			if m["node_name"] != a.cl.c.Name() {
				t.Fatalf("session.vanished from %v, want %s: %v", m["node_name"], a.cl.c.Name(), order)
			}
		case m["type"] == "session.destroyed" && m["channel_id"] == "live":
			liveDestroyed = i
		}
	}
	if vanished < 0 || vanished < liveDestroyed {
		t.Fatalf("session.vanished at %d, the live channel's session.destroyed at %d: %v", vanished, liveDestroyed, order)
	}
	t.Logf("session webhooks in arrival order: %v", order)
}
