package node

import (
	"testing"
	"time"

	"github.com/hayate-sfu/hayate/config"
)

// withIdle sends session webhooks (session.vanished too) to r and keeps a
// session d after its last connection.
func withIdle(r *hookReceiver, d time.Duration) func(*config.Config) {
	return func(c *config.Config) {
		c.SessionWebhookURL = r.url()
		c.IgnoreSessionVanishedWebhook = false
		c.SessionIdleTimeout = d
	}
}

// sessionHooks lists the types of the session webhooks r received, in order.
func sessionHooks(r *hookReceiver) []any {
	var out []any
	for _, b := range r.all() {
		out = append(out, b["type"])
	}
	return out
}

// leaveAll disconnects c and waits until the node has no connection.
func leaveAll(t *testing.T, n *Node, disconnect func(time.Time) error) {
	t.Helper()
	if err := disconnect(soon()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the last connection to leave", patience, func() bool { return n.hub.Connections() == 0 })
}

// TestSessionIdleTimeout: with session_idle_timeout a session outlives its
// last connection for that long. Within the window the session is live (no
// session.destroyed, no session.vanished, GetSession shows it) and a
// reconnect under block_new_session joins it; after the window
// session.destroyed comes, a connect under block_new_session is refused and
// session.vanished fires once, after session.destroyed. Under
// block_new_connection, where nobody could join, no session is kept.
func TestSessionIdleTimeout(t *testing.T) {
	t.Run("a reconnect within the window joins the session under block_new_session", func(t *testing.T) {
		r := newHookReceiver(t)
		// A window far longer than the test: the reconnect is surely in it.
		n := startNode(t, withIdle(r, time.Hour))
		a, oa := join(t, n, "ch", "sendrecv")
		setMode(t, n, "block_new_session")
		leaveAll(t, n, func(d time.Time) error { _, err := a.Disconnect(d); return err })
		flushHooks(t, n)
		if r.count("session.destroyed") != 0 || r.count("session.vanished") != 0 || n.hub.Sessions() != 1 {
			t.Fatalf("the session ended inside its idle window: hooks %v, sessions %d", sessionHooks(r), n.hub.Sessions())
		}
		if s := apiOK[soraSession](t, n, "Sora_20231220.GetSession", `{"channel_id":"ch"}`); s.SessionID != oa.SessionID {
			t.Fatalf("GetSession of the idle session: %+v", s)
		}
		b, ob := join(t, n, "ch", "sendrecv")
		if ob.SessionID != oa.SessionID {
			t.Fatalf("the reconnect got session %s, want %s", ob.SessionID, oa.SessionID)
		}
		// Idle again, TerminateSession ends it at once (and the drain with it).
		leaveAll(t, n, func(d time.Time) error { _, err := b.Disconnect(d); return err })
		if got := apiOK[soraTerminateSession](t, n, "Sora_20230628.TerminateSession", `{"channel_id":"ch"}`); got.SessionID != oa.SessionID {
			t.Fatalf("TerminateSession: %+v", got)
		}
		waitFor(t, "session.vanished", patience, func() bool { return r.count("session.vanished") == 1 })
		flushHooks(t, n)
		if got := sessionHooks(r); len(got) != 3 || got[0] != "session.created" || got[1] != "session.destroyed" || got[2] != "session.vanished" {
			t.Fatalf("session webhooks %v, want one session created, destroyed, then vanished", got)
		}
	})
	t.Run("after the window the session is gone and a connect under block_new_session is refused", func(t *testing.T) {
		r := newHookReceiver(t)
		const window = 300 * time.Millisecond
		n := startNode(t, withIdle(r, window))
		a, oa := join(t, n, "ch", "sendrecv")
		setMode(t, n, "block_new_session")
		left := time.Now()
		leaveAll(t, n, func(d time.Time) error { _, err := a.Disconnect(d); return err })
		waitFor(t, "session.vanished", patience, func() bool { return r.count("session.vanished") == 1 })
		if since := time.Since(left); since < window {
			t.Fatalf("session.vanished %v after the last connection left, inside the %v window", since, window)
		}
		_, err := dial(t, n).Connect(connectMsg("ch", "sendrecv"), soon())
		expectClosed(t, err, 4503, "BLOCKED-NEW-SESSION")
		flushHooks(t, n)
		if got := sessionHooks(r); len(got) != 3 || got[0] != "session.created" || got[1] != "session.destroyed" || got[2] != "session.vanished" {
			t.Fatalf("session webhooks %v, want created, destroyed, then vanished once", got)
		}
		d := r.ofType("session.destroyed")[0]
		destroyed, _ := time.Parse(time.RFC3339Nano, d["destroyed_timestamp"].(string))
		if d["session_id"] != oa.SessionID || destroyed.Sub(left) < window {
			t.Fatalf("session.destroyed %v: not the window's end (left at %v)", d, left)
		}
		// Back to normal, a connect opens a new session.
		setMode(t, n, "normal")
		if _, oc := join(t, n, "ch", "sendrecv"); oc.SessionID == oa.SessionID {
			t.Fatal("a session came back after its idle window")
		}
	})
	t.Run("no idle session under block_new_connection", func(t *testing.T) {
		r := newHookReceiver(t)
		n := startNode(t, withIdle(r, time.Hour))
		// Leaving into block_new_connection ends the session at once.
		a, _ := join(t, n, "a", "sendrecv")
		setMode(t, n, "block_new_connection")
		leaveAll(t, n, func(d time.Time) error { _, err := a.Disconnect(d); return err })
		waitFor(t, "session.destroyed and session.vanished at once", patience, func() bool {
			return r.count("session.destroyed") == 1 && r.count("session.vanished") == 1
		})
		// Entering block_new_connection ends an idle session at once.
		setMode(t, n, "normal")
		b, _ := join(t, n, "b", "sendrecv")
		leaveAll(t, n, func(d time.Time) error { _, err := b.Disconnect(d); return err })
		flushHooks(t, n)
		if r.count("session.destroyed") != 1 || n.hub.Sessions() != 1 {
			t.Fatalf("session b is not idle: hooks %v, sessions %d", sessionHooks(r), n.hub.Sessions())
		}
		setMode(t, n, "block_new_connection")
		waitFor(t, "session b destroyed and vanished", patience, func() bool {
			return r.count("session.destroyed") == 2 && r.count("session.vanished") == 2
		})
	})
}

// TestClusterKeepsIdleSession: an idle session keeps its channel placed on
// its node (another node redirects a connect for it there) until the
// session ends, which releases it.
func TestClusterKeepsIdleSession(t *testing.T) {
	nodes := startCluster(t, 2, func(c *config.Config) { c.SessionIdleTimeout = time.Hour })
	idle := func(channel string) *Node {
		t.Helper()
		c, owner := joinOwner(t, nodes, channel)
		leaveAll(t, owner, func(d time.Time) error { _, err := c.Disconnect(d); return err })
		return owner
	}
	owner := idle("room")
	// Control: another idle session, ended by TerminateSession, is released.
	// Once that release is in owner's table, a release of room at its
	// leave (earlier, with the same release linger) would be too.
	probe := idle("probe")
	apiOK[soraTerminateSession](t, probe, "Sora_20230628.TerminateSession", `{"channel_id":"probe"}`)
	waitFor(t, "probe released", patience, func() bool { _, ok := owner.cl.c.Owner("probe"); return !ok })
	if o, ok := owner.cl.c.Owner("room"); !ok || o != owner.cl.c.Name() {
		t.Fatalf("room's owner %q (%v) while its session is idle on %s", o, ok, owner.cl.c.Name())
	}
	other := nodes[0]
	if other == owner {
		other = nodes[1]
	}
	if msg, _ := connectRetry(t, other, "room", false); msg["type"] != "redirect" || msg["location"] != owner.signalingURL() {
		t.Fatalf("a connect for the idle session's channel on the other node: %v", msg)
	}
	// Ending the idle session releases the channel.
	apiOK[soraTerminateSession](t, owner, "Sora_20230628.TerminateSession", `{"channel_id":"room"}`)
	waitFor(t, "room released", patience, func() bool { _, ok := other.cl.c.Owner("room"); return !ok })
}
