package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/hayate-sfu/hayate/internal/poll"
	"github.com/hayate-sfu/hayate/mode"
)

// watchdog is the deadline of a context a whole test shares: only a guard
// against a hang, since a loaded machine may take minutes over a test whose
// every wait has its own deadline (poll.Patience).
const watchdog = 5 * time.Minute

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// TestLeastLoadedPlacement: loads carried by heartbeats steer new channels
// to the node with the lowest connections / maximum, whoever is asked.
func TestLeastLoadedPlacement(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, false)
	nodes := tc.startN(3, func(cfg *Config) { cfg.MaxConnections = 100 })
	a, b, c := nodes[0], nodes[1], nodes[2]
	a.SetLoad(10)
	c.SetLoad(5)
	waitFor(t, poll.Patience, "loads in every table", func() bool {
		for _, n := range nodes {
			for _, st := range n.Nodes() {
				want := map[string]int{"a": 10, "b": 0, "c": 5}[st.Name]
				if st.Connections != want || st.MaxConnections != 100 {
					return false
				}
			}
		}
		return true
	})
	for i, n := range nodes {
		d := route(t, n, fmt.Sprintf("load-%d", i))
		if d.Owner != "b" || d.Serve != (n == b) {
			t.Fatalf("asked %s: %+v, want owner b", n.name, d)
		}
	}
	// Equal loads: the node asked takes the channel.
	b.SetLoad(10)
	c.SetLoad(10)
	waitFor(t, poll.Patience, "equal loads", func() bool {
		for _, st := range a.Nodes() {
			if st.Connections != 10 {
				return false
			}
		}
		return true
	})
	for i, n := range nodes {
		// routeHere: a lease lapsing for a moment on a loaded machine
		// sends one channel elsewhere, the next one comes here.
		routeHere(t, n, fmt.Sprintf("tie-%d", i))
	}
}

// TestClaimRace: two nodes claim the same new channels at the same moment;
// the log orders the claims and each channel gets exactly one owner.
func TestClaimRace(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, false)
	nodes := tc.startN(3)
	a, b := nodes[0], nodes[1]
	for i := range 30 {
		ch := fmt.Sprintf("race-%d", i)
		var da, db Decision
		var wg sync.WaitGroup
		start := make(chan struct{})
		wg.Go(func() { <-start; da = route(t, a, ch) })
		wg.Go(func() { <-start; db = route(t, b, ch) })
		close(start)
		wg.Wait()
		if da.Owner != db.Owner || da.ClaimIndex != db.ClaimIndex || da.Serve == db.Serve {
			t.Fatalf("%s: a got %+v, b got %+v", ch, da, db)
		}
		// The tables agree with the decisions (whether a node serves now
		// also depends on its lease, which a loaded machine may let lapse).
		oa, _ := a.Owner(ch)
		ob, _ := b.Owner(ch)
		if da.Serve != (oa == a.name) || db.Serve != (ob == b.name) {
			t.Fatalf("%s: the tables (%q, %q) disagree with the decisions", ch, oa, ob)
		}
	}
	if o := tc.hist.overlaps(); len(o) > 0 {
		t.Fatalf("overlaps: %v", o)
	}
}

// TestRestartNewIncarnation: a regular node that dies and comes back from its
// DataDir registers a new incarnation, which drops the channels of the old
// one at once (grace is set far too long for an Expire to do it).
func TestRestartNewIncarnation(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, false)
	nodes := tc.startN(3, func(cfg *Config) { cfg.Grace = time.Minute })
	c := nodes[2]
	old := make([]string, 3)
	for i := range old {
		old[i] = routeHere(t, c, fmt.Sprintf("old-%d", i))
	}
	oldEpoch := c.Epoch()
	cfg := c.cfg
	cfg.hooks.crash = true
	c.cfg.hooks.crash = true
	c.Close()
	// Same name, data dir and addresses: a restarted process.
	cfg.hooks.crash = false
	cfg.RaftListen, cfg.RPCListen = c.RaftAddr(), c.RPCAddr()
	var c2 *testNode
	waitFor(t, poll.Patience, "restart on the same ports", func() bool {
		cl, err := Start(context.Background(), cfg)
		if err != nil {
			return false // the old listener may linger a moment
		}
		c2 = &testNode{Cluster: cl, name: "c"}
		tc.mu.Lock()
		tc.nodes["c"] = c2
		tc.mu.Unlock()
		return true
	})
	if c2.Epoch() == oldEpoch {
		t.Fatal("restart kept the epoch")
	}
	if err := c2.Join(ctxT(t, poll.Patience), nodes[0].RPCAddr()); err != nil {
		t.Fatalf("rejoin (already a member): %v", err)
	}
	waitFor(t, poll.Patience, "old channels dropped everywhere", func() bool {
		for _, n := range []*testNode{nodes[0], nodes[1], c2} {
			for i := range 3 {
				if _, ok := n.Owner(old[i]); ok {
					return false
				}
			}
		}
		return true
	})
	tc.waitHealth(c2, mode.Normal, poll.Patience)
	waitFor(t, poll.Patience, "restarted c listed normal with its new epoch", func() bool {
		for _, st := range nodes[0].Nodes() {
			if st.Name == "c" {
				return st.Epoch == c2.Epoch() && st.Connected && st.Mode == mode.Normal
			}
		}
		return false
	})
	if d := route(t, c2, old[0]); !d.Serve {
		t.Fatalf("restarted node cannot take a channel: %+v", d)
	}
	if o := tc.hist.overlaps(); len(o) > 0 {
		t.Fatalf("overlaps: %v", o)
	}
}

// TestTemporaryNode: a temporary node joins as a raft non-voter with
// in-memory stores, takes channels, and on Close removes itself: from the
// table, from the raft configuration, with its channels.
func TestTemporaryNode(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, false)
	nodes := tc.startN(3)
	cfg := tc.config("tmp")
	cfg.Temporary = true
	cfg.DataDir = ""
	tmp := tc.start(cfg)
	ctx := ctxT(t, watchdog)
	if err := tmp.InitCluster(ctx, nil); !errors.Is(err, ErrTemporaryNode) {
		t.Fatalf("InitCluster on a temporary node: %v", err)
	}
	if err := tmp.Join(ctx, nodes[1].RPCAddr()); err != nil { // b may not be the leader: forwarded
		t.Fatal(err)
	}
	tc.waitHealth(tmp, mode.Normal, poll.Patience)
	conf := nodes[0].raft.GetConfiguration()
	if err := conf.Error(); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range conf.Configuration().Servers {
		if s.ID == "tmp" {
			found = s.Suffrage == raft.Nonvoter
		}
	}
	if !found {
		t.Fatalf("tmp is not a non-voter: %+v", conf.Configuration().Servers)
	}
	waitFor(t, poll.Patience, "tmp listed as a connected temporary node", func() bool {
		for _, st := range nodes[0].Nodes() {
			if st.Name == "tmp" {
				return st.Temporary && st.Connected && st.Mode == mode.Normal
			}
		}
		return false
	})
	onTmp := routeHere(t, tmp, "on-tmp")
	if d := route(t, nodes[0], onTmp); d.Owner != "tmp" || d.RedirectURL != "ws://tmp.test/signaling" {
		t.Fatalf("redirect to tmp: %+v", d)
	}
	if err := tmp.Close(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, poll.Patience, "tmp gone from every table and the configuration", func() bool {
		for _, n := range nodes {
			if _, ok := n.Owner(onTmp); ok {
				return false
			}
			for _, st := range n.Nodes() {
				if st.Name == "tmp" {
					return false
				}
			}
		}
		ok, err := nodes[0].isMember("tmp")
		return err == nil && !ok
	})
}

// TestPurge: a live node cannot be purged; a dead one is removed from the
// table and the raft configuration, with its channels. The answer to the
// purge that removes it is lost once (a hook on every node), as when the
// leader loses its leadership after the removal was committed: Purge asks
// again and must report success, not ErrUnknownNode (which a loaded
// machine once produced: "unknown node: d").
func TestPurge(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, false)
	var lost atomic.Bool
	nodes := tc.startN(3, func(cfg *Config) {
		cfg.hooks.purged = func(name string) error {
			if name == "d" && lost.CompareAndSwap(false, true) {
				return fmt.Errorf("%w: test: the answer to the first purge of d is lost", ErrNoLeader)
			}
			return nil
		}
	})
	cfg := tc.config("d")
	d := tc.start(cfg)
	ctx := ctxT(t, watchdog)
	if err := d.Join(ctx, nodes[0].RPCAddr()); err != nil {
		t.Fatal(err)
	}
	tc.waitHealth(d, mode.Normal, poll.Patience)
	waitFor(t, poll.Patience, "d eligible", func() bool {
		for _, st := range nodes[0].Nodes() {
			if st.Name == "d" {
				return st.Mode == mode.Normal
			}
		}
		return false
	})
	onD := routeHere(t, d, "on-d")
	if err := nodes[1].Purge(ctx, "d"); !errors.Is(err, ErrNodeAlive) {
		t.Fatalf("Purge of a live node: %v", err)
	}
	if err := nodes[1].Purge(ctx, "nobody"); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("Purge of an unknown node: %v", err)
	}
	if err := nodes[1].Purge(ctx, "b"); !errors.Is(err, ErrSelf) {
		t.Fatalf("Purge of itself: %v", err)
	}
	d.cfg.hooks.crash = true
	d.Close()
	waitFor(t, poll.Patience, "d reported disconnected", func() bool {
		for _, st := range nodes[0].Nodes() {
			if st.Name == "d" {
				return !st.Connected
			}
		}
		return false
	})
	waitFor(t, poll.Patience, "purge accepted", func() bool {
		err := nodes[1].Purge(ctx, "d")
		if err != nil && !errors.Is(err, ErrNodeAlive) {
			t.Fatalf("Purge: %v", err)
		}
		return err == nil
	})
	if !lost.Load() {
		t.Fatal("the purge's answer was never lost: the retry was not exercised")
	}
	waitFor(t, poll.Patience, "d gone", func() bool {
		for _, n := range nodes {
			if slices.ContainsFunc(n.Nodes(), func(st NodeStatus) bool { return st.Name == "d" }) {
				return false
			}
			if _, ok := n.Owner(onD); ok {
				return false
			}
		}
		ok, err := nodes[0].isMember("d")
		return err == nil && !ok
	})
}

// TestInitClusterTwice: a second InitCluster is refused, also when the list
// mixes a fresh node with initialised ones (and the fresh node stays fresh).
func TestInitClusterTwice(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, false)
	nodes := tc.startN(3)
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.RPCAddr())
	}
	ctx := ctxT(t, watchdog)
	if err := nodes[2].InitCluster(ctx, addrs); !errors.Is(err, ErrAlreadyInitialised) {
		t.Fatalf("second InitCluster: %v", err)
	}
	fresh := tc.start(tc.config("e"))
	if err := fresh.InitCluster(ctx, []string{"e", nodes[0].RPCAddr()}); !errors.Is(err, ErrAlreadyInitialised) {
		t.Fatalf("InitCluster with an initialised node: %v", err)
	}
	if fresh.initialised() {
		t.Fatal("the fresh node was bootstrapped anyway")
	}
	if err := fresh.InitCluster(ctx, []string{"x@" + nodes[0].RPCAddr()}); !errors.Is(err, ErrNameMismatch) {
		t.Fatalf("InitCluster with a wrong name: %v", err)
	}
	if err := fresh.InitCluster(ctx, []string{"nohost"}); !errors.Is(err, ErrUnknownNode) {
		t.Fatalf("InitCluster with an unresolvable name: %v", err)
	}
	if err := nodes[0].Join(ctx, nodes[1].RPCAddr()); err != nil {
		t.Fatalf("Join of a member: %v", err)
	}
	if err := fresh.Join(ctx, fresh.RPCAddr()); !errors.Is(err, ErrSelf) {
		t.Fatalf("Join through itself: %v", err)
	}
	// Names resolve through Peers and through the table.
	cfg := tc.config("f")
	cfg.Peers = map[string]string{"a": nodes[0].RPCAddr()}
	f := tc.start(cfg)
	if err := f.Join(ctx, "a"); err != nil {
		t.Fatalf("Join by peer name: %v", err)
	}
	if addr, byName, err := f.resolve("b"); err != nil || !byName || addr != nodes[1].RPCAddr() {
		t.Fatalf("resolve(b) from the table = %q %v %v", addr, byName, err)
	}
}

// TestLeaseTimerFencesIdleOwner is docs/spec/cluster.md §3.4's lease-check timer: an owner cut
// off with no traffic at all still fences itself when its lease ends.
func TestLeaseTimerFencesIdleOwner(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, false)
	nodes := tc.startN(3)
	c := nodes[2]
	idle := routeHere(t, c, "idle")
	cutAt := time.Now()
	tc.net.cut(c.name)
	waitFor(t, poll.Patience, "idle owner fenced", func() bool {
		f, _ := c.fencedChannels()
		return slices.Contains(f, idle)
	})
	_, at := c.fencedChannels()
	if c.Serving(idle) || c.HealthMode() != mode.BlockNewConnection {
		t.Fatalf("after fencing: serving %v, health %v", c.Serving(idle), c.HealthMode())
	}
	if end := tc.hist.lastEnd(c.name, []string{idle}); end.Sub(cutAt) > testTTL {
		t.Fatalf("served %v after the cut", end.Sub(cutAt))
	}
	t.Logf("fenced %v after the cut (lease ended %v after)", at.Sub(cutAt), tc.hist.lastEnd(c.name, []string{idle}).Sub(cutAt))
}

// TestReleaseAndLinger: Release gives a channel up after the linger unless a
// Route serves it again first.
func TestReleaseAndLinger(t *testing.T) {
	t.Parallel()
	// A linger long enough that the Route below comes within it on a
	// loaded machine, and a lease that a loaded machine does not let lapse
	// (a lapse fences, which this test tells from a release).
	const linger = 2 * time.Second
	tc := newTestCluster(t, false)
	nodes := tc.startN(3, func(cfg *Config) {
		cfg.ReleaseLinger = linger
		// 10 s: a 3 s lease lapsed once with the machine at load 24.
		cfg.Heartbeat, cfg.LeaseTTL = 100*time.Millisecond, 10*time.Second
	})
	a, b := nodes[0], nodes[1]
	route(t, a, "r")
	a.Release("r")
	if d := route(t, a, "r"); !d.Serve { // within the linger: cancels the release
		t.Fatalf("%+v", d)
	}
	// The cancelled release never happens: watched for longer than the
	// linger, when it would have.
	deadline := time.Now().Add(linger + linger/2)
	for time.Now().Before(deadline) {
		// Whether a serves "r" also depends on its lease, which a loaded
		// machine may let lapse for a moment: the release itself is what
		// must not start.
		a.mu.Lock()
		_, releasing := a.releasing["r"]
		lingering := a.lingering["r"] != nil
		a.mu.Unlock()
		if releasing || lingering {
			t.Fatal("release went through although a Route cancelled it")
		}
		time.Sleep(5 * time.Millisecond)
	}
	a.Release("r")
	waitFor(t, poll.Patience, "release applied everywhere", func() bool {
		for _, n := range nodes {
			if _, ok := n.Owner("r"); ok {
				return false
			}
		}
		return true
	})
	if f, _ := a.fencedChannels(); len(f) != 0 {
		t.Fatalf("a release was reported as a fence: %v", f)
	}
	if d := route(t, b, "r"); !d.Serve {
		t.Fatalf("after release, b: %+v", d)
	}
	if o := tc.hist.overlaps(); len(o) > 0 {
		t.Fatalf("overlaps: %v", o)
	}
	b.Release("x-not-mine") // no-op
	chans := b.Channels()
	if len(chans) != 1 || chans[0].ChannelID != "r" || chans[0].Owner != "b" || chans[0].ClaimIndex == 0 {
		t.Fatalf("Channels() = %+v", chans)
	}
}

// TestSnapshotInstall: a node that joins after the log was compacted gets
// the table through a snapshot (FSM.Restore) and routes from it.
//
// Every voter snapshots (and so compacts its log), and leadership moves
// before the join: on a loaded machine it may move by itself, and a new
// leader that had not compacted its log would send the joiner the log
// instead of a snapshot (seen once, term 6 by then).
func TestSnapshotInstall(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, false)
	small := func(cfg *Config) {
		cfg.hooks.raftConfig = func(rc *raft.Config) { rc.TrailingLogs, rc.SnapshotThreshold = 4, 16 }
	}
	nodes := tc.startN(3, small)
	for i := range 5 {
		route(t, nodes[i%3], fmt.Sprintf("snap-%d", i))
	}
	for _, n := range nodes {
		if err := n.raft.Snapshot().Error(); err != nil {
			t.Fatalf("snapshot of %s: %v", n.name, err)
		}
	}
	leader := tc.leader(nodes)
	if err := leader.raft.LeadershipTransfer().Error(); err != nil {
		// A loaded machine may time the transfer out; the join must get
		// a snapshot from whichever node leads.
		t.Logf("leadership transfer: %v", err)
	}
	leader = tc.leader(nodes)
	cfg := tc.config("tmp")
	cfg.Temporary, cfg.DataDir = true, ""
	small(&cfg)
	tmp := tc.start(cfg)
	if err := tmp.Join(ctxT(t, poll.Patience), leader.RPCAddr()); err != nil {
		t.Fatal(err)
	}
	tc.waitHealth(tmp, mode.Normal, poll.Patience)
	for i := range 5 {
		ch := fmt.Sprintf("snap-%d", i)
		want := nodes[i%3].name
		if o, _ := tmp.Owner(ch); o != want {
			t.Fatalf("after snapshot install, owner of %s = %q, want %q", ch, o, want)
		}
		if d := route(t, tmp, ch); d.Owner != want || d.Serve {
			t.Fatalf("tmp Route(%s) = %+v", ch, d)
		}
	}
	if st := tmp.raft.Stats(); st["last_snapshot_index"] == "0" {
		t.Fatalf("tmp did not install a snapshot: %v", st)
	}
}

// TestFullRestartFromDisk: every regular node dies; they come back from
// their DataDirs (one restores a snapshot), re-form the cluster with no
// InitCluster, register new incarnations and drop every old channel.
func TestFullRestartFromDisk(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, false)
	nodes := tc.startN(3, func(cfg *Config) { cfg.hooks.crash = true })
	for i := range 6 {
		route(t, nodes[i%3], fmt.Sprintf("disk-%d", i))
	}
	if err := nodes[0].raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	var cfgs []Config
	var wg sync.WaitGroup
	for _, n := range nodes {
		cfg := n.cfg
		cfg.RaftListen, cfg.RPCListen = n.RaftAddr(), n.RPCAddr()
		cfgs = append(cfgs, cfg)
		wg.Go(func() { _ = n.Close() })
	}
	wg.Wait()
	var again []*testNode
	for _, cfg := range cfgs {
		var n *testNode
		waitFor(t, poll.Patience, "restart "+cfg.NodeName, func() bool {
			c, err := Start(context.Background(), cfg)
			if err != nil {
				return false
			}
			n = &testNode{Cluster: c, name: cfg.NodeName}
			return true
		})
		tc.mu.Lock()
		tc.nodes[cfg.NodeName] = n
		tc.mu.Unlock()
		again = append(again, n)
	}
	tc.waitAllNormal(again)
	waitFor(t, poll.Patience, "old channels gone", func() bool {
		for _, n := range again {
			if len(n.Channels()) != 0 {
				return false
			}
		}
		return true
	})
	if d := route(t, again[1], "disk-0"); !d.Serve {
		t.Fatalf("%+v", d)
	}
	if o := tc.hist.overlaps(); len(o) > 0 {
		t.Fatalf("overlaps: %v", o)
	}
}

// TestBootstrapRace: InitCluster bootstraps the listed nodes one after the
// other, so the first ones may elect a leader that gives a later one the
// configuration before its own bootstrap call arrives. That call must
// succeed (it is the same cluster), while a bootstrap with another
// configuration is still refused.
func TestBootstrapRace(t *testing.T) {
	t.Parallel()
	tc := newTestCluster(t, false)
	var nodes []*testNode
	req := bootstrapReq{}
	for _, name := range []string{"a", "b", "c"} {
		n := tc.start(tc.config(name))
		nodes = append(nodes, n)
		req.Servers = append(req.Servers, bootstrapServer{Name: name, RaftAddr: n.RaftAddr()})
	}
	for _, n := range nodes[:2] {
		if err := n.bootstrapLocal(t.Context(), &req); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, poll.Patience, "c configured by the leader of a and b", nodes[2].initialised)
	if err := nodes[2].bootstrapLocal(t.Context(), &req); err != nil {
		t.Fatalf("late bootstrap with the same configuration: %v", err)
	}
	other := bootstrapReq{Servers: []bootstrapServer{req.Servers[0], req.Servers[2]}}
	if err := nodes[2].bootstrapLocal(t.Context(), &other); !errors.Is(err, ErrAlreadyInitialised) {
		t.Fatalf("bootstrap with another configuration: %v, want ErrAlreadyInitialised", err)
	}
	tc.waitAllNormal(nodes)
}
