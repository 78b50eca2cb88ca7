package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hayate-sfu/hayate/internal/poll"
	"github.com/hayate-sfu/hayate/mode"
)

// TestFreshNodeHealth: a node that is not initialised is in
// block_new_connection and Route refuses; after InitCluster its health goes
// block_new_connection → normal only once it is registered and holds a lease.
//
// It runs in a synctest bubble (in-memory raft and RPC, fake time): on a
// real loaded machine a renewal applied late is a real late renewal, and
// the health that follows it (block_new_session, or block_new_connection
// after a lapse, then normal again) is right, but it is not what this test
// is about; in the bubble time only moves when every goroutine waits, so
// the modes reported are exactly the ones startup causes.
func TestFreshNodeHealth(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		bubble(t)
		freshNodeHealth(t)
	})
}

func freshNodeHealth(t *testing.T) {
	tc := newTestCluster(t, true)
	var nodes []*testNode
	var addrs []string
	for _, name := range []string{"a", "b", "c"} {
		n := tc.start(tc.config(name))
		nodes = append(nodes, n)
		addrs = append(addrs, n.RPCAddr())
	}
	for _, n := range nodes {
		if m := n.HealthMode(); m != mode.BlockNewConnection {
			t.Fatalf("%s: fresh health mode %v, want block_new_connection", n.name, m)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		_, err := n.Route(ctx, "x")
		cancel()
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("%s: Route before InitCluster: %v, want ErrUnavailable", n.name, err)
		}
		if st := n.RaftStats(); st["raft_state"] != "follower" || st["raft_term"] != uint64(0) {
			t.Fatalf("%s: raft stats before init: %v", n.name, st)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), watchdog)
	defer cancel()
	if err := nodes[1].InitCluster(ctx, addrs); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		waitFor(t, poll.Patience, n.name+" reported normal", func() bool {
			ms := n.modeLog()
			return len(ms) > 0 && ms[len(ms)-1] == mode.Normal
		})
		if ms := n.modeLog(); len(ms) != 2 || ms[0] != mode.BlockNewConnection {
			t.Errorf("%s: health modes %s, want block_new_connection,normal", n.name, modesString(ms))
		}
		// Normal implies registered with this incarnation and a lease.
		found := false
		for _, st := range n.Nodes() {
			if st.Name == n.name {
				found = st.Epoch == n.Epoch() && st.Connected
			}
		}
		if !found {
			t.Errorf("%s: normal but not registered/connected: %+v", n.name, n.Nodes())
		}
	}
	if st := nodes[0].RaftStats(); st["raft_term"].(uint64) == 0 || st["raft_commit_index"].(uint64) == 0 {
		t.Errorf("raft stats after init: %v", st)
	}
}

// TestBlockedNodeGetsNoNewChannel: a node whose operator mode is
// block_new_session or block_new_connection never receives a new channel,
// whichever node the connects arrive at; unblocked, it receives some again.
func TestBlockedNodeGetsNoNewChannel(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, false)
	nodes := tc.startN(3)
	blocked := nodes[2]
	ctx, cancel := context.WithTimeout(context.Background(), watchdog)
	defer cancel()

	waitModeEverywhere := func(m mode.Mode) {
		t.Helper()
		waitFor(t, poll.Patience, "every table shows "+blocked.name+" "+m.String(), func() bool {
			for _, n := range nodes {
				for _, st := range n.Nodes() {
					if st.Name == blocked.name && st.Mode != m {
						return false
					}
				}
			}
			return true
		})
	}
	for round, m := range []mode.Mode{mode.BlockNewSession, mode.BlockNewConnection} {
		if err := blocked.SetOperatorMode(ctx, m); err != nil {
			t.Fatal(err)
		}
		if got := blocked.OperatorMode(); got != m {
			t.Fatalf("OperatorMode = %v after SetOperatorMode(%v)", got, m)
		}
		waitModeEverywhere(m)
		for i := range 100 {
			ch := fmt.Sprintf("blocked-%d-%d", round, i)
			n := nodes[i%3]
			d := route(t, n, ch)
			if d.Owner == blocked.name || d.Serve && n == blocked {
				t.Fatalf("%s mode %v: new channel %s placed on it (asked %s): %+v", blocked.name, m, ch, n.name, d)
			}
		}
	}
	if err := blocked.SetOperatorMode(ctx, mode.Normal); err != nil {
		t.Fatal(err)
	}
	waitModeEverywhere(mode.Normal)
	got := 0
	for i := range 30 {
		ch := fmt.Sprintf("unblocked-%d", i)
		if d := route(t, nodes[i%3], ch); d.Owner == blocked.name {
			got++
		}
	}
	if got == 0 {
		t.Fatalf("%s unblocked but received none of 30 new channels", blocked.name)
	}
	if err := blocked.SetOperatorMode(ctx, mode.Mode(7)); !errors.Is(err, mode.ErrInvalid) {
		t.Fatalf("SetOperatorMode(invalid) = %v", err)
	}
}
