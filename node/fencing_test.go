package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/hayate-sfu/hayate/config"
	"github.com/hayate-sfu/hayate/internal/loadpeer"
	"github.com/hayate-sfu/hayate/internal/netns"
	"github.com/hayate-sfu/hayate/internal/sigclient"
	"github.com/hayate-sfu/hayate/signal"
)

// Fencing: a node cut off from the cluster must stop forwarding a
// channel's media before the node the channel moves to may serve it. The
// cluster's own tests prove that for authority (the lease intervals); the
// tests here measure it for media, on real nodes: from the old owner's
// lease end (its "stopped serving channel" log line) to the last packet
// its subscriber received, against the new owner's first moment of
// serving (its "serving channel" line). The owner is cut off with
// iptables, in a network namespace of the test's own, where each node's
// cluster traffic comes from its own loopback address.

// servingLog keeps the cluster's serving intervals from a node's log and
// passes warnings on to the test's log.
type servingLog struct {
	next  slog.Handler
	store *servingStore
}

type servingStore struct {
	mu          sync.Mutex
	from, until map[string][]int64 // channel -> unix ns of each start / end
	fenced      []int64            // unix ns of each fencing, once its media stopped
}

func newServingLog(t testing.TB) *slog.Logger {
	return slog.New(&servingLog{next: testLogger(t).Handler(),
		store: &servingStore{from: map[string][]int64{}, until: map[string][]int64{}}})
}

func (h *servingLog) Enabled(context.Context, slog.Level) bool { return true }

func (h *servingLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "cluster: serving channel" || r.Message == "cluster: stopped serving channel" {
		var ch string
		var from, until int64
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "channel_id":
				ch = a.Value.String()
			case "served_from_unix_ns":
				from = a.Value.Int64()
			case "served_until_unix_ns":
				until = a.Value.Int64()
			}
			return true
		})
		h.store.mu.Lock()
		if until == 0 {
			h.store.from[ch] = append(h.store.from[ch], from)
		} else {
			h.store.until[ch] = append(h.store.until[ch], until)
		}
		h.store.mu.Unlock()
	}
	if r.Message == "cluster fenced channels: media stopped, closing their connections" {
		h.store.mu.Lock()
		h.store.fenced = append(h.store.fenced, r.Time.UnixNano())
		h.store.mu.Unlock()
	}
	if r.Level >= slog.LevelWarn {
		return h.next.Handle(ctx, r)
	}
	return nil
}

// lastFenced is the time of the node's latest fencing, or 0.
func (s *servingStore) lastFenced() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.fenced) == 0 {
		return 0
	}
	return s.fenced[len(s.fenced)-1]
}

func (h *servingLog) WithAttrs(as []slog.Attr) slog.Handler {
	return &servingLog{next: h.next.WithAttrs(as), store: h.store}
}

func (h *servingLog) WithGroup(name string) slog.Handler {
	return &servingLog{next: h.next.WithGroup(name), store: h.store}
}

// started and ended return the channel's serving starts and ends so far.
func (s *servingStore) started(ch string) []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.from[ch])
}

func (s *servingStore) ended(ch string) []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.until[ch])
}

// fencingCluster is three nodes whose cluster traffic comes from
// 127.0.0.11, .12 and .13; signaling, API and media stay on 127.0.0.1.
type fencingCluster struct {
	nodes    []*Node
	logs     []*servingStore
	ips      []netip.Addr
	iptables string
	// hold, if not nil, holds every node's fencing of hold.channel back
	// until partition releases it.
	hold *fenceHold
}

// fenceHold keeps a channel's fencing from starting (signal.TestHooks'
// BeforeFence waits on it) until released.
type fenceHold struct {
	channel string
	ch      chan struct{}
	release func()
}

func newFenceHold(channel string) *fenceHold {
	h := &fenceHold{channel: channel, ch: make(chan struct{})}
	h.release = sync.OnceFunc(func() { close(h.ch) })
	return h
}

// iptablesPath finds iptables, also in /usr/sbin (not always in PATH).
func iptablesPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("iptables"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/iptables"); err == nil {
		return "/usr/sbin/iptables"
	}
	t.Fatal("iptables is needed to cut a node off (Debian's iptables package; make test installs it)")
	return ""
}

func startFencingCluster(t *testing.T, grace time.Duration, hold *fenceHold) *fencingCluster {
	t.Helper()
	fc := &fencingCluster{iptables: iptablesPath(t), hold: hold}
	var rpcs []string
	for i := range 3 {
		ip := netip.AddrFrom4([4]byte{127, 0, 0, byte(11 + i)})
		log := newServingLog(t)
		n := startNodeLog(t, log, func(c *config.Config) {
			clusterEdit(t, fmt.Sprintf("n%d", i+1))(c)
			c.ClusterAddress = ip
			c.ClusterHeartbeatInterval = 250 * time.Millisecond
			c.ClusterLeaseTTL = 2 * time.Second
			c.ClusterLeaseGrace = grace
			c.ICEConnectionStateFailedTimeout = patience
		})
		if hold != nil {
			n.hub.SetTestHooks(signal.TestHooks{BeforeFence: func(chs []string) {
				if slices.Contains(chs, hold.channel) {
					<-hold.ch
				}
			}})
			t.Cleanup(hold.release) // before the node's Close (cleanups run last first)
		}
		fc.nodes = append(fc.nodes, n)
		fc.logs = append(fc.logs, log.Handler().(*servingLog).store)
		fc.ips = append(fc.ips, ip)
		rpcs = append(rpcs, n.cl.c.RPCAddr())
	}
	body, _ := json.Marshal(map[string]any{"node_name_list": rpcs})
	if st, _, raw := apiCall(t, fc.nodes[0], "Sora_20221221.InitCluster", string(body)); st != 200 {
		t.Fatalf("InitCluster: %d %s", st, raw)
	}
	fc.waitSettled(t)
	return fc
}

// waitSettled waits until every node is in normal mode and every table
// shows every node with no connection: the node asked for a new channel
// then wins placement (equal loads, the node asked wins a tie).
func (fc *fencingCluster) waitSettled(t *testing.T) {
	t.Helper()
	waitFor(t, "the cluster settled: all normal, no load", patience, func() bool {
		for _, n := range fc.nodes {
			if n.Mode().String() != "normal" {
				return false
			}
			for _, st := range n.cl.c.Nodes() {
				if st.Connections != 0 || !st.Connected || st.Mode.String() != "normal" {
					return false
				}
			}
		}
		return true
	})
}

// cut drops every TCP packet from or to a node's cluster address (both
// ways: the node's outgoing cluster connections leave from it too).
func (fc *fencingCluster) cut(t *testing.T, i int, on bool) {
	t.Helper()
	op := "-I"
	if !on {
		op = "-D"
	}
	ip := fc.ips[i].String()
	for _, dir := range []string{"-s", "-d"} {
		if out, err := exec.Command(fc.iptables, op, "INPUT", "-p", "tcp", dir, ip, "-j", "DROP").CombinedOutput(); err != nil {
			t.Fatalf("iptables %s INPUT %s %s: %v\n%s", op, dir, ip, err, out)
		}
	}
}

// fenceRun is one partition of a channel's owner (unix ns): the owner's
// lease end, the moment its fencing had stopped the channel's media (its
// log line), the last packet its subscriber got, and the new owner's
// first serving moment.
type fenceRun struct {
	leaseEnd, fenced, lastPacket, newServing int64
}

// latency is the fencing latency: from the lease end to the media stopped.
func (r fenceRun) latency() time.Duration { return time.Duration(r.fenced - r.leaseEnd) }

// margin is how long before the new owner began to serve the old one
// forwarded its last packet; not positive is two nodes serving at once.
func (r fenceRun) margin() time.Duration { return time.Duration(r.newServing - r.lastPacket) }

// partition runs one fencing: node i owns channel ch and forwards a
// publisher's stream (a packet every 2 ms) to a subscriber; it is cut off
// from the others until it has fenced itself and another node serves ch,
// then healed.
func (fc *fencingCluster) partition(t *testing.T, i int, ch string) fenceRun {
	t.Helper()
	owner, other := fc.nodes[i], fc.nodes[(i+1)%3]
	var last atomic.Int64
	sub := dialPeerPlaced(t, owner, ch, "recvonly", func([]byte) { last.Store(time.Now().UnixNano()) })
	pub := dialPeerPlaced(t, owner, ch, "sendonly", nil)
	if o, _ := owner.cl.c.Owner(ch); o != owner.cl.c.Name() {
		t.Fatalf("%s owned by %q, not by the node asked (%s)", ch, o, owner.cl.c.Name())
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { sendEvery(pub, 2*time.Millisecond, stop) })
	defer func() { close(stop); wg.Wait() }()
	waitFor(t, "media at the subscriber", patience, func() bool { return last.Load() != 0 })

	fc.cut(t, i, true)
	healed := false
	defer func() {
		if !healed {
			fc.cut(t, i, false)
		}
	}()
	var leaseEnd int64
	waitFor(t, "the owner's serving interval to end", patience, func() bool {
		ends := fc.logs[i].ended(ch)
		if len(ends) > 0 {
			leaseEnd = ends[len(ends)-1]
		}
		return leaseEnd != 0
	})
	// The majority expires the owner after its lease and the grace; then a
	// connect to another node makes that node the channel's owner.
	waitFor(t, ch+" taken from the cut-off owner", patience, func() bool {
		o, ok := other.cl.c.Owner(ch)
		return !ok || o != owner.cl.c.Name()
	})
	c, j := fc.connectFollowing(t, (i+1)%3, i, ch)
	var newServing int64
	waitFor(t, "the new owner serving", patience, func() bool {
		if s := fc.logs[j].started(ch); len(s) > 0 {
			newServing = s[len(s)-1]
		}
		return newServing != 0
	})
	if fc.hold != nil {
		// Fencing held back: the old owner forwards on until its
		// subscriber has a packet stamped after the new owner began to
		// serve; then its fencing may go on.
		waitFor(t, "a packet from the old owner after the new owner began to serve", patience, func() bool {
			return last.Load() > newServing
		})
		fc.hold.release()
	}
	// The old owner's media has stopped once its subscriber is closed
	// (fencing closes the media first).
	cl, ok := sub.SignalingClosed(patience)
	if !ok || cl == nil || cl.Code != 1012 || cl.Reason != "CLUSTER-LEASE-LOST" {
		t.Fatalf("the cut-off owner's subscriber: closed %v (%v), want 1012 CLUSTER-LEASE-LOST", cl, ok)
	}
	r := fenceRun{leaseEnd: leaseEnd, fenced: fc.logs[i].lastFenced(), lastPacket: last.Load(), newServing: newServing}
	if r.fenced < r.leaseEnd {
		t.Fatalf("no fencing logged after the lease end")
	}

	fc.cut(t, i, false)
	healed = true
	c.Disconnect(soon())
	pub.Close()
	sub.Close()
	fc.waitSettled(t)
	return r
}

// connectFollowing connects a viewer of ch to node k, following a redirect
// and retrying while the cluster cannot place the channel (4503), and
// returns the client and the node that answered with an offer: the
// channel's new owner. On a loaded machine the node asked may itself be in
// a block mode for a moment (its own renewals late) and send the viewer to
// the third node, which then owns the channel. A redirect to the cut-off
// owner old would be two nodes serving the channel, and fails the test.
func (fc *fencingCluster) connectFollowing(t *testing.T, k, old int, ch string) (*sigclient.Client, int) {
	t.Helper()
	var c *sigclient.Client
	waitFor(t, "a viewer of "+ch+" admitted after the move", patience, func() bool {
		c = dial(t, fc.nodes[k])
		o, err := c.Connect(connectMsg(ch, "recvonly"), soon())
		var cl *sigclient.Closed
		switch {
		case errors.As(err, &cl) && cl.Code == 4503:
			return false
		case err != nil:
			t.Fatalf("connect to %s on %s after the move: %v", ch, fc.nodes[k].cl.c.Name(), err)
		case o.Type == "offer":
			return true
		case o.Type == "redirect":
			c.Close()
			for n, node := range fc.nodes {
				if node.signalingURL() == o.Location {
					if n == old {
						t.Fatalf("%s on %s redirected the viewer to the cut-off owner %s", ch, fc.nodes[k].cl.c.Name(), node.cl.c.Name())
					}
					t.Logf("%s on %s redirected the viewer to %s", ch, fc.nodes[k].cl.c.Name(), node.cl.c.Name())
					k = n
					return false
				}
			}
			t.Fatalf("redirected to %q, no node of the cluster", o.Location)
		default:
			t.Fatalf("connect to %s on %s after the move: %+v", ch, fc.nodes[k].cl.c.Name(), o)
		}
		return false
	})
	return c, k
}

// dialPeerPlaced is dialPeer to a cluster node, asked again while the
// cluster cannot place the channel for the moment (4503: a loaded machine
// let every node's lease renewal run late); the fencing is the subject.
func dialPeerPlaced(t *testing.T, n *Node, channel, role string, onRTP func([]byte)) *loadpeer.Peer {
	t.Helper()
	msg := connectMsg(channel, role)
	msg["video"] = map[string]any{"codec_type": "VP8"}
	var p *loadpeer.Peer
	waitFor(t, role+" admitted to "+channel, patience, func() bool {
		var err error
		p, err = loadpeer.Dial(context.Background(), loadpeer.Options{URL: n.signalingURL(), Connect: msg, OnRTP: onRTP})
		var cl *sigclient.Closed
		if errors.As(err, &cl) && cl.Code == 4503 {
			return false
		}
		if err != nil {
			t.Fatalf("loadpeer %s: %v", role, err)
		}
		return true
	})
	t.Cleanup(p.Close)
	return p
}

// sendEvery sends a VP8-typed RTP packet every d until stop.
func sendEvery(p *loadpeer.Peer, d time.Duration, stop <-chan struct{}) {
	tick := time.NewTicker(d)
	defer tick.Stop()
	ssrc := p.SSRCs["video"]
	for seq := uint16(1); ; seq++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		b, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: uint32(seq) * 180, SSRC: ssrc},
			Payload: make([]byte, 600)}).Marshal()
		_ = p.SendRTP(b)
	}
}

// TestFencingLatency: a channel's owner cut off from the cluster stops
// forwarding its media after its lease ends and before the channel's new
// owner may serve it: cluster_lease_grace covers the fencing latency.
// HAYATE_FENCING_RUNS sets the number of partitions (2 in make test; the
// figures in BENCHMARKS.md come from 60).
func TestFencingLatency(t *testing.T) {
	if !netns.Isolate(t) {
		return
	}
	runs := 2
	if v, err := strconv.Atoi(os.Getenv("HAYATE_FENCING_RUNS")); err == nil && v > 0 {
		runs = v
	}
	const grace = time.Second
	fc := startFencingCluster(t, grace, nil)
	var lat, margins []time.Duration
	for k := range runs {
		r := fc.partition(t, k%3, fmt.Sprintf("fence-%d", k))
		lat, margins = append(lat, r.latency()), append(margins, r.margin())
		t.Logf("run %d: after the lease end, media stopped %v, last packet %+v, new owner serving %v", k, r.latency(),
			time.Duration(r.lastPacket-r.leaseEnd), time.Duration(r.newServing-r.leaseEnd))
		if r.margin() <= 0 {
			t.Errorf("run %d: the old owner forwarded %v after the new owner began to serve (lease end +%v)", k, -r.margin(), r.latency())
		}
	}
	slices.Sort(lat)
	slices.Sort(margins)
	t.Logf("fencing latency (lease end to media stopped) over %d partitions: median %v, max %v; cluster_lease_grace %v; "+
		"margin to the new owner's first serving: min %v, median %v",
		runs, lat[len(lat)/2], lat[len(lat)-1], grace, margins[0], margins[len(margins)/2])
}

// TestFencingShorterGraceOverlaps: when fencing takes longer than
// cluster_lease_grace allows (here a 250 ms grace, and the old owner's
// fencing held back until the new owner serves the channel), the
// measurement above sees the old owner forward media after the new owner
// began to serve: the check can fail for the reason it names.
//
// The fencing is held by a gate, not delayed by a fixed time: how long
// after the lease end the new owner serves depends on the machine (an
// election, the new leader's TTL + grace, the majority's own renewals),
// and with a 3 s delay a loaded machine once took 5.5 s to move the
// channel, so that the delayed fencing still came first.
func TestFencingShorterGraceOverlaps(t *testing.T) {
	if !netns.Isolate(t) {
		return
	}
	fc := startFencingCluster(t, 250*time.Millisecond, newFenceHold("fence-slow"))
	// partition fails unless the old owner's subscriber gets a packet
	// stamped after the new owner's first serving moment: the overlap the
	// measurement must see (its margin is then negative).
	r := fc.partition(t, 0, "fence-slow")
	t.Logf("overlap as expected: the old owner forwarded %v after the new owner began to serve", -r.margin())
}
