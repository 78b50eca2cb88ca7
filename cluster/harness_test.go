package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hayate-sfu/hayate/internal/poll"
	"github.com/hayate-sfu/hayate/mode"
)

// Test timings: H = 100 ms (raft heartbeat and election timeouts 200 ms),
// TTL = 2 s, grace = 500 ms. Short enough for a quick suite; long enough
// that a loaded machine (the suite runs beside other suites under -race)
// does not let leases lapse or nodes fall out of placement between two
// steps of a test. (docs/spec/cluster.md §3.7 used 50 ms, 300 ms, 100 ms.)
const (
	testH     = 100 * time.Millisecond
	testTTL   = 2 * time.Second
	testGrace = 500 * time.Millisecond
)

// The partition suite's timings: it runs many cuts, so its leases are
// shorter than the other tests'; still long enough that a loaded machine
// rarely lets one lapse between the setup and the cut, and the suite
// tolerates the flaps that do happen (placement retried, fences counted
// from the cut, waits of poll.Patience): its checks are about overlaps,
// which flaps cannot cause. (docs/spec/cluster.md §3.7 used 50 ms, 300 ms, 100 ms.)
const (
	fastH     = 100 * time.Millisecond
	fastTTL   = time.Second
	fastGrace = 300 * time.Millisecond
)

func fastTimings(cfg *Config) { cfg.Heartbeat, cfg.LeaseTTL, cfg.Grace = fastH, fastTTL, fastGrace }

// history records exactly when each node served each channel (docs/spec/cluster.md §3.7
// item 8). All nodes run in one process, so all times come from one
// monotonic clock.
type history struct {
	mu   sync.Mutex
	open map[[2]string]time.Time // {node, channel} → start
	done []interval
}

type interval struct {
	node, channel string
	start, end    time.Time
}

func newHistory() *history { return &history{open: map[[2]string]time.Time{}} }

func (h *history) record(node, channel string, start bool, at time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := [2]string{node, channel}
	if start {
		if _, dup := h.open[k]; dup {
			panic(fmt.Sprintf("history: %s starts %s twice", node, channel))
		}
		h.open[k] = at
		return
	}
	s, ok := h.open[k]
	if !ok {
		panic(fmt.Sprintf("history: %s ends %s that it never started", node, channel))
	}
	delete(h.open, k)
	h.done = append(h.done, interval{node, channel, s, at})
}

// overlaps returns every pair of intervals of one channel that overlap;
// intervals still open count as open forever.
func (h *history) overlaps() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	forever := time.Now().Add(time.Hour)
	by := map[string][]interval{}
	for _, iv := range h.done {
		by[iv.channel] = append(by[iv.channel], iv)
	}
	for k, s := range h.open {
		by[k[1]] = append(by[k[1]], interval{k[0], k[1], s, forever})
	}
	var out []string
	for ch, ivs := range by {
		sort.Slice(ivs, func(i, j int) bool { return ivs[i].start.Before(ivs[j].start) })
		for i := range ivs {
			for j := i + 1; j < len(ivs) && ivs[j].start.Before(ivs[i].end); j++ {
				out = append(out, fmt.Sprintf("%s: %s [%v] and %s [%v] overlap by %v", ch,
					ivs[i].node, ivs[i].end.Sub(ivs[i].start), ivs[j].node, ivs[j].end.Sub(ivs[j].start), ivs[i].end.Sub(ivs[j].start)))
			}
		}
	}
	return out
}

// lastEnd returns the latest end of node's closed intervals on channels.
func (h *history) lastEnd(node string, channels []string) time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	var t time.Time
	for _, iv := range h.done {
		if iv.node == node && slices.Contains(channels, iv.channel) && iv.end.After(t) {
			t = iv.end
		}
	}
	return t
}

// firstStartAfter returns, per channel, the first start after t by a node
// other than node.
func (h *history) firstStartAfter(t time.Time, notNode string, channels []string) map[string]time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]time.Time{}
	consider := func(n, ch string, s time.Time) {
		if n == notNode || !slices.Contains(channels, ch) || s.Before(t) {
			return
		}
		if cur, ok := out[ch]; !ok || s.Before(cur) {
			out[ch] = s
		}
	}
	for _, iv := range h.done {
		consider(iv.node, iv.channel, iv.start)
	}
	for k, s := range h.open {
		consider(k[0], k[1], s)
	}
	return out
}

// intervals returns the number of recorded intervals (open and closed).
func (h *history) intervals() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.done) + len(h.open)
}

// testCluster runs nodes in one process on a testNet.
type testCluster struct {
	t      testing.TB
	net    *testNet
	hist   *history
	pki    *testPKI // credentials of every node when not nil
	mu     sync.Mutex
	nodes  map[string]*testNode
	clocks map[string]*skewClock
}

// skewClock is a node's clock whose rate can be changed once, without a
// jump; real maps its readings back to the process clock for the history.
type skewClock struct {
	mu                     sync.Mutex
	rate                   float64
	realAnchor, skewAnchor time.Time
}

func (k *skewClock) now() time.Time {
	r := time.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.skewLocked(r)
}

func (k *skewClock) skewLocked(r time.Time) time.Time {
	if k.realAnchor.IsZero() {
		return r
	}
	return k.skewAnchor.Add(time.Duration(float64(r.Sub(k.realAnchor)) * k.rate))
}

func (k *skewClock) setRate(rate float64) {
	r := time.Now()
	k.mu.Lock()
	defer k.mu.Unlock()
	k.skewAnchor, k.realAnchor, k.rate = k.skewLocked(r), r, rate
}

func (k *skewClock) real(s time.Time) time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.realAnchor.IsZero() || s.Before(k.skewAnchor) {
		return s
	}
	return k.realAnchor.Add(time.Duration(float64(s.Sub(k.skewAnchor)) / k.rate))
}

func (tc *testCluster) clock(name string) *skewClock {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	k := tc.clocks[name]
	if k == nil {
		k = &skewClock{}
		tc.clocks[name] = k
	}
	return k
}

// testNode is a Cluster plus what its callbacks reported.
type testNode struct {
	*Cluster
	name string

	mu      sync.Mutex
	modes   []mode.Mode
	modeAt  []time.Time
	fenced  []string
	fenceAt time.Time
	// fencedAt[i] is when fenced[i] was reported.
	fencedAt []time.Time
}

func newTestCluster(t testing.TB, mem bool) *testCluster {
	tc := &testCluster{t: t, net: newTestNet(mem), hist: newHistory(), nodes: map[string]*testNode{}, clocks: map[string]*skewClock{}}
	t.Cleanup(tc.closeAll)
	return tc
}

func testLogger(t testing.TB) *slog.Logger {
	if os.Getenv("HAYATE_CLUSTER_DEBUG") != "" { // debug log of every node to stderr
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// config returns a test config for a node; DataDir is a fresh temp dir.
func (tc *testCluster) config(name string) Config {
	cfg := Config{
		NodeName:     name,
		SignalingURL: "ws://" + name + ".test/signaling",
		APIURL:       "http://" + name + ".test/",
		DataDir:      tc.t.TempDir(),
		Heartbeat:    testH, LeaseTTL: testTTL, Grace: testGrace,
		Log: testLogger(tc.t).With("test_node", name),
	}
	cfg.hooks.listen = tc.net.listen(name)
	cfg.hooks.dial = tc.net.dial(name)
	clk := tc.clock(name)
	cfg.hooks.now = clk.now
	cfg.hooks.serve = func(node, ch string, start bool, at time.Time) { tc.hist.record(node, ch, start, clk.real(at)) }
	if tc.net.mem {
		cfg.hooks.transport = tc.net.inmemTransport(name)
		cfg.hooks.memStores = true
	}
	if tc.pki != nil {
		cfg.TLS = tc.pki.creds(name)
	}
	return cfg
}

// start starts a node with cfg (from config, possibly changed).
func (tc *testCluster) start(cfg Config) *testNode {
	tc.t.Helper()
	c, err := Start(context.Background(), cfg)
	if err != nil {
		tc.t.Fatalf("start %s: %v", cfg.NodeName, err)
	}
	n := &testNode{Cluster: c, name: cfg.NodeName}
	c.OnHealthMode(func(m mode.Mode) {
		n.mu.Lock()
		n.modes = append(n.modes, m)
		n.modeAt = append(n.modeAt, time.Now())
		n.mu.Unlock()
	})
	c.OnFenced(func(chs []string) {
		n.mu.Lock()
		n.fenced = append(n.fenced, chs...)
		now := time.Now()
		for range chs {
			n.fencedAt = append(n.fencedAt, now)
		}
		if n.fenceAt.IsZero() {
			n.fenceAt = now
		}
		n.mu.Unlock()
	})
	tc.mu.Lock()
	tc.nodes[cfg.NodeName] = n
	tc.mu.Unlock()
	return n
}

// startN starts n regular nodes named a, b, c... and forms a cluster;
// mutate, if not nil, adjusts each node's config first.
func (tc *testCluster) startN(n int, mutate ...func(*Config)) []*testNode {
	tc.t.Helper()
	var nodes []*testNode
	var addrs []string
	for i := range n {
		cfg := tc.config(string(rune('a' + i)))
		for _, m := range mutate {
			m(&cfg)
		}
		nd := tc.start(cfg)
		nodes = append(nodes, nd)
		addrs = append(addrs, nd.RPCAddr())
	}
	ctx, cancel := context.WithTimeout(context.Background(), poll.Patience)
	defer cancel()
	if err := nodes[0].InitCluster(ctx, addrs); err != nil {
		tc.t.Fatalf("InitCluster: %v", err)
	}
	tc.waitAllNormal(nodes)
	return nodes
}

// waitAllNormal waits until every node is healthy and every node's table
// shows every node normal and connected (so placement may pick any).
func (tc *testCluster) waitAllNormal(nodes []*testNode) {
	tc.t.Helper()
	n := len(nodes)
	for _, nd := range nodes {
		tc.waitHealth(nd, mode.Normal, poll.Patience)
	}
	waitFor(tc.t, poll.Patience, "all nodes normal in every table", func() bool {
		for _, a := range nodes {
			for _, st := range a.Nodes() {
				if st.Mode != mode.Normal || !st.Connected {
					return false
				}
			}
			if len(a.Nodes()) != n {
				return false
			}
		}
		return true
	})
}

func (tc *testCluster) closeAll() {
	tc.mu.Lock()
	nodes := slices.Collect(func(yield func(*testNode) bool) {
		for _, n := range tc.nodes {
			if !yield(n) {
				return
			}
		}
	})
	tc.mu.Unlock()
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Go(func() { _ = n.Close() })
	}
	wg.Wait()
}

func (tc *testCluster) waitHealth(n *testNode, m mode.Mode, d time.Duration) {
	tc.t.Helper()
	waitFor(tc.t, d, n.name+" health "+m.String(), func() bool { return n.HealthMode() == m })
}

func (n *testNode) modeLog() []mode.Mode {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.modes)
}

// fencedSince returns the channels reported fenced at or after t (a lease
// flap before a cut, on a loaded machine, fences too).
func (n *testNode) fencedSince(t time.Time) []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for i, ch := range n.fenced {
		if !n.fencedAt[i].Before(t) {
			out = append(out, ch)
		}
	}
	return out
}

func (n *testNode) fencedChannels() ([]string, time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Clone(n.fenced), n.fenceAt
}

// leader returns the node that is raft leader, waiting for one.
func (tc *testCluster) leader(nodes []*testNode) *testNode {
	tc.t.Helper()
	var l *testNode
	waitFor(tc.t, poll.Patience, "a leader", func() bool {
		for _, n := range nodes {
			if n.RaftStats().State == "leader" {
				l = n
				return true
			}
		}
		return false
	})
	return l
}

// waitFor polls cond until it holds or d passes (then the test fails).
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// routeHere routes new channels named prefix-0, prefix-1... through n until
// n itself is given one, and returns its name: a node that has just joined
// is placed on once the leader has its first heartbeat.
func routeHere(t testing.TB, n *testNode, prefix string) string {
	t.Helper()
	var ch string
	i := 0
	waitFor(t, poll.Patience, n.name+" given a new channel", func() bool {
		ch = fmt.Sprintf("%s-%d", prefix, i)
		i++
		return route(t, n, ch).Serve
	})
	return ch
}

// route routes ch through n and fails the test if no decision comes. A
// cluster that cannot place the channel for now (no node renewed its lease
// lately, no leader: a loaded machine starves heartbeats) is asked again
// until poll.Patience: the tests check decisions, not availability.
func route(t testing.TB, n *testNode, ch string) Decision {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), poll.Patience)
	defer cancel()
	for {
		d, err := n.Route(ctx, ch)
		switch {
		case err == nil:
			return d
		case ctx.Err() == nil && (errors.Is(err, ErrNoEligibleNode) || errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNoLeader)):
			time.Sleep(testH) // a heartbeat's time before asking again
			continue
		}
		t.Fatalf("%s Route(%s): %v", n.name, ch, err)
	}
}

func modesString(ms []mode.Mode) string {
	s := make([]string, len(ms))
	for i, m := range ms {
		s[i] = m.String()
	}
	return strings.Join(s, ",")
}

// place routes each channel through the node given for it until the
// cluster decides (retrying while a lease flaps on a loaded machine), and
// returns the channels per owner and the decision per channel.
func place(t testing.TB, asks map[string]*testNode) (map[string][]string, map[string]Decision) {
	t.Helper()
	owners := map[string][]string{}
	decided := map[string]Decision{}
	for ch, n := range asks {
		var d Decision
		waitFor(t, poll.Patience, "placing "+ch, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			var err error
			d, err = n.Route(ctx, ch)
			return err == nil
		})
		owners[d.Owner] = append(owners[d.Owner], ch)
		decided[ch] = d
	}
	for _, chs := range owners {
		slices.Sort(chs)
	}
	return owners, decided
}
