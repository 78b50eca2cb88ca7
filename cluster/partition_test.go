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

	"github.com/hayate-sfu/hayate/internal/poll"
	"github.com/hayate-sfu/hayate/mode"
)

// The partition suite of docs/spec/cluster.md §3.7: three nodes, nine channels spread over
// them; one node is cut off while the others keep receiving connects for its
// channels (redirects while it still owns them, take-over after it is
// expired); then the network heals. Every node's exact serving history must
// show no two intervals of one channel overlapping.

// Each runs over plain loopback and over mutual TLS.

func TestPartitionFollower(t *testing.T) {
	t.Parallel()
	forTransports(t, func(t *testing.T, tls bool) { runPartition(t, partition{tls: tls}) })
}

func TestPartitionLeader(t *testing.T) {
	t.Parallel()
	forTransports(t, func(t *testing.T, tls bool) { runPartition(t, partition{leader: true, tls: tls}) })
}

// TestPartitionApplyDelay runs the leader case with a 2 ms delay inside
// every FSM.Apply, which made the prototype's AppliedIndex bug fail 20 of 20.
func TestPartitionApplyDelay(t *testing.T) {
	t.Parallel()
	forTransports(t, func(t *testing.T, tls bool) {
		runPartition(t, partition{leader: true, applyDelay: 2 * time.Millisecond, tls: tls})
	})
}

// TestPartitionSlowClock is docs/spec/cluster.md §3.7's slow-clock test. The victim's clock
// runs 2 % slow from just before the cut: grace covers that, no overlap.
// Then, as a control that the history check can fail, a clock running at
// a tenth of real speed: the victim believes in its lease for ten times the
// TTL, far longer than TTL + grace plus the time a loaded machine takes to
// move the channels (a quarter speed was too little margin: under load the
// move once came after the victim's lease ended), and the check must see
// double serving.
func TestPartitionSlowClock(t *testing.T) {
	t.Parallel()
	forTransports(t, func(t *testing.T, tls bool) { runPartition(t, partition{victimClock: 0.98, tls: tls}) })
	t.Run("90%-slow-must-overlap", func(t *testing.T) {
		// The control shows something only when the cluster moved the
		// channels while the victim still believed in its lease; a loaded
		// machine may take longer than that to move them (seen once at a
		// quarter speed), and then the run is asked again.
		for attempt := 1; ; attempt++ {
			conclusive := false
			t.Run(fmt.Sprintf("attempt-%d", attempt), func(t *testing.T) {
				runPartition(t, partition{victimClock: 0.1, wantOverlap: true, conclusive: &conclusive})
			})
			if conclusive {
				return
			}
			if attempt == 5 {
				t.Fatal("in 5 attempts the channels never moved before the victim's slowed lease ended")
			}
		}
	})
}

// movePatience bounds the waits for what a cut sets moving: a lease lapse,
// an election, expiries, new claims, a heal. At load 24 on 2 vCPUs a move
// took 17 s and once over 30 s; the waits cost nothing when it is quick.
const movePatience = 2 * poll.Patience

// partition is one scenario of the suite.
type partition struct {
	// mem runs on the in-memory network (raft.InmemTransport, net.Pipe RPC),
	// for synctest bubbles.
	mem bool
	// tls gives every node credentials: mutual TLS on raft and the RPC.
	tls bool
	// leader cuts the raft leader off, else a follower.
	leader     bool
	applyDelay time.Duration
	// victimClock, if not 0, is the rate of the victim's clock from just
	// before the cut; wantOverlap expects the check to find double serving.
	victimClock float64
	wantOverlap bool
	// conclusive, with wantOverlap, is set when the channels moved before
	// the victim's lease ended, so that an overlap had to be seen.
	conclusive *bool
}

func runPartition(t *testing.T, p partition) {
	mem, victimIsLeader, applyDelay := p.mem, p.leader, p.applyDelay
	tc := newTestCluster(t, mem)
	if p.tls {
		tc.pki = newTestPKI(t)
	}
	nodes := tc.startN(3, fastTimings, func(cfg *Config) { cfg.hooks.applyDelay = applyDelay })

	asks := map[string]*testNode{}
	for i := range 9 {
		asks[fmt.Sprintf("ch-%d", i)] = nodes[i%3] // equal loads: placed on the node asked
	}
	channels, first := place(t, asks)

	leader := tc.leader(nodes)
	victim := leader
	if !victimIsLeader {
		victim = nodes[(slices.Index(nodes, leader)+1)%3]
	}
	var healthy []*testNode
	for _, n := range nodes {
		if n != victim {
			healthy = append(healthy, n)
		}
	}
	mine := channels[victim.name]
	if len(mine) == 0 {
		t.Fatalf("victim %s owns no channel: %v", victim.name, channels)
	}
	// The victim's reported modes up to now, once they end in normal:
	// OnHealthMode reports through an event queue, so the report of the
	// normal that startN waited for (or of a flap's end, on a loaded
	// machine) may still be on its way; counted before it arrived, it
	// would pass for the first mode after the cut.
	var modesBefore int
	waitFor(t, movePatience, victim.name+" reported normal before the cut", func() bool {
		ms := victim.modeLog()
		modesBefore = len(ms)
		return modesBefore > 0 && ms[modesBefore-1] == mode.Normal
	})

	// Load: healthy nodes keep routing the victim's channels; the victim
	// keeps routing its own.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var served, redirected, unavailable atomic.Int64
	load := func(n *testNode) {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, ch := range mine {
				ctx, cancel := context.WithTimeout(context.Background(), fastTTL)
				d, err := n.Route(ctx, ch)
				cancel()
				switch {
				case err == nil && d.Serve:
					served.Add(1)
				case err == nil:
					redirected.Add(1)
				case errors.Is(err, ErrUnavailable) || errors.Is(err, ErrClosed) || errors.Is(err, ErrNoEligibleNode):
					unavailable.Add(1)
				default:
					t.Errorf("%s Route(%s): %v", n.name, ch, err)
				}
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}
	for _, n := range nodes {
		wg.Go(func() { load(n) })
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()

	if p.victimClock != 0 {
		tc.clock(victim.name).setRate(p.victimClock)
	}
	cutAt := time.Now()
	tc.net.cut(victim.name)

	// The victim fences itself: all its channels reported,
	// block_new_connection. A channel whose lease already lapsed just
	// before the cut (a loaded machine starves heartbeats) was fenced then
	// and is not served now; what counts is that none is served.
	waitFor(t, movePatience, victim.name+" fenced", func() bool {
		f := victim.fencedSince(cutAt)
		for _, ch := range mine {
			if !slices.Contains(f, ch) && victim.Serving(ch) {
				return false
			}
		}
		return victim.HealthMode() == mode.BlockNewConnection
	})
	leaseLost := tc.hist.lastEnd(victim.name, mine).Sub(cutAt)
	// How long after the cut the victim served is logged, not bounded: the
	// history stamps a decision after it is made, and a loaded machine
	// delays that stamp (1.002 s against a 1 s TTL once). Serving past the
	// lease would show as an overlap, which is checked below.
	for _, ch := range mine {
		if victim.Serving(ch) {
			t.Errorf("victim still Serving(%s) after its lease lapsed", ch)
		}
	}

	// Every channel of the victim moves to a healthy node.
	waitFor(t, movePatience, "victim's channels moved", func() bool {
		for _, ch := range mine {
			ok := false
			for _, h := range healthy {
				ok = ok || h.Serving(ch)
			}
			if !ok {
				return false
			}
		}
		return true
	})
	var moved time.Duration
	for _, s := range tc.hist.firstStartAfter(cutAt, victim.name, mine) {
		moved = max(moved, s.Sub(cutAt))
	}

	healAt := time.Now()
	tc.net.heal(victim.name)
	waitFor(t, movePatience, victim.name+" normal after heal", func() bool {
		ms := victim.modeLog() // what OnHealthMode reported, not just the current mode
		return ms[len(ms)-1] == mode.Normal
	})
	healed := time.Since(healAt)
	close(stop)
	wg.Wait()

	// The victim lost its old claims and knows it. (On a loaded machine a
	// healthy owner may lose its lease too and the victim may claim a
	// channel again after the heal, but never under the old claim.)
	stale := func(ch string) bool {
		for _, st := range victim.Channels() {
			if st.ChannelID == ch {
				return st.Owner == victim.name && st.ClaimIndex == first[ch].ClaimIndex
			}
		}
		return false
	}
	waitFor(t, movePatience, "victim's table caught up", func() bool {
		for _, ch := range mine {
			if stale(ch) {
				return false
			}
		}
		return true
	})
	for _, ch := range mine {
		waitFor(t, movePatience, "victim decides "+ch, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			d, err := victim.Route(ctx, ch)
			if err == nil && d.Serve && d.ClaimIndex == first[ch].ClaimIndex {
				t.Fatalf("victim Route(%s) after heal serves the old claim: %+v", ch, d)
			}
			return err == nil
		})
	}
	// Blocked by the cut, block_new_connection once fenced, normal again
	// after the heal (a loaded machine may let the lease lapse again
	// later, so normal need not be the last mode). Modes are reported on
	// change only, and the last one before the cut was normal.
	ms := victim.modeLog()[modesBefore:]
	fenced := slices.Index(ms, mode.BlockNewConnection)
	if len(ms) < 2 || ms[0] == mode.Normal || fenced < 0 || !slices.Contains(ms[fenced:], mode.Normal) {
		t.Errorf("victim health modes during the test: %s", modesString(ms))
	}

	overlaps := tc.hist.overlaps()
	role := "follower"
	if victimIsLeader {
		role = "leader"
	}
	if applyDelay > 0 {
		role += fmt.Sprintf("+apply-delay-%v", applyDelay)
	}
	if mem {
		role += "+synctest"
	}
	if p.tls {
		role += "+tls"
	}
	if p.victimClock != 0 {
		role += fmt.Sprintf("+victim-clock-%.2f", p.victimClock)
	}
	t.Logf("PARTITION %s lease_lost_ms=%d moved_ms=%d heal_ms=%d intervals=%d routes_served=%d redirected=%d unavailable=%d overlaps=%d modes=%s",
		role, leaseLost.Milliseconds(), moved.Milliseconds(), healed.Milliseconds(), tc.hist.intervals(),
		served.Load(), redirected.Load(), unavailable.Load(), len(overlaps), modesString(ms))
	if p.wantOverlap {
		if moved >= leaseLost {
			t.Logf("control inconclusive: the channels moved %v after the cut, the victim's lease ended %v after it", moved, leaseLost)
			return
		}
		*p.conclusive = true
		if len(overlaps) == 0 {
			t.Errorf("a victim clock at %.2f speed went unnoticed: the history check is blind", p.victimClock)
		}
		return
	}
	for _, o := range overlaps {
		t.Errorf("double serving: %s", o)
	}
}
