package rtpcore

import (
	"io"
	"log/slog"
	"testing"
	"time"
)

// stallRun drives a stallLog with made-up wall times: a janitor ticking
// every tick from t0, and one receive loop whose beats the test sets.
type stallRun struct {
	l    stallLog
	now  time.Time
	tick time.Duration
	beat time.Time
}

func newStallRun() *stallRun {
	t0 := time.Unix(1_000_000, 0)
	r := &stallRun{now: t0, tick: 250 * time.Millisecond, beat: t0}
	r.l.start(t0)
	return r
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// pass advances the wall clock by d without the janitor waking, the loop
// beating along unless stuck.
func (r *stallRun) pass(d time.Duration, loopStuck bool) {
	r.now = r.now.Add(d)
	if !loopStuck {
		r.beat = r.now
	}
}

// wake advances the wall clock by d and lets the janitor observe.
func (r *stallRun) wake(d time.Duration, loopStuck bool) {
	r.pass(d, loopStuck)
	r.l.observe(r.now, r.tick, []int64{r.beat.UnixNano()}, quiet)
}

// silence is how long a peer last heard at wall time heard has been
// silent now, in listening time.
func (r *stallRun) silence(heard time.Time) time.Duration {
	return r.l.silence(heard.UnixNano(), r.now.UnixNano())
}

func TestStallLogCountsOrdinaryLateness(t *testing.T) {
	r := newStallRun()
	heard := r.now
	for range 40 {
		r.wake(r.tick+100*time.Millisecond, false) // ordinary lateness
	}
	if got, want := r.silence(heard), 40*(r.tick+100*time.Millisecond); got != want {
		t.Fatalf("silence %v, want %v: ordinary lateness must not be deducted", got, want)
	}
	if r.l.stalls.Load() != 0 {
		t.Fatalf("%d stalls counted", r.l.stalls.Load())
	}
}

// A node stopped for 3 s (SIGSTOP): the janitor wakes 3 s late, the
// receive loop has not beaten either. A peer heard just before the stop is
// not silent for 3 s.
func TestStallLogDeductsAStoppedNode(t *testing.T) {
	r := newStallRun()
	r.wake(r.tick, false)
	heard := r.now
	r.wake(3*time.Second+r.tick, true)
	if got := r.silence(heard); got > r.tick {
		t.Fatalf("silence %v after a 3 s stop, want at most one tick (%v)", got, r.tick)
	}
	if r.l.stalls.Load() != 1 {
		t.Fatalf("stalls %d, want 1", r.l.stalls.Load())
	}
	if l := time.Duration(r.l.longest.Load()); l < 3*time.Second {
		t.Fatalf("longest stall %v, want about 3 s", l)
	}
	// The node is well again: time counts again, the stall ends.
	r.wake(r.tick, false)
	r.wake(r.tick, false)
	if got := r.silence(heard); got < 2*r.tick || got > 3*r.tick {
		t.Fatalf("silence %v two ticks after the stop", got)
	}
	if r.l.stalled || r.l.stalls.Load() != 1 {
		t.Fatal("the stall did not end")
	}
}

// A peer heard after a stall (its packets read when the node came back,
// before the janitor noticed the stall) and silent since is judged on its
// own silence: the stall is not deducted from it.
func TestStallLogDoesNotDeductAStallBeforeThePeerWasHeard(t *testing.T) {
	r := newStallRun()
	r.wake(r.tick, false)
	r.pass(3*time.Second, true) // the node is stopped
	r.pass(time.Millisecond, false)
	heard := r.now // the loop reads the backlog first
	r.wake(time.Millisecond, false)
	for range 4 {
		r.wake(r.tick, false)
	}
	// At most the moment between the node coming back and the janitor
	// noticing the stall (here 1 ms) is deducted, never the 3 s.
	if got, want := r.silence(heard), time.Millisecond+4*r.tick; got < 4*r.tick || got > want {
		t.Fatalf("silence %v, want about %v (the stall before it is none of this peer's)", got, want)
	}
}

// A receive loop stuck while the janitor runs on time: the node is not
// listening, so silence does not grow until the loop comes back.
func TestStallLogStandsStillWhileALoopIsStuck(t *testing.T) {
	r := newStallRun()
	heard := r.now
	for range 20 { // 5 s of janitor ticks, the loop away all along
		r.wake(r.tick, true)
	}
	// The loop's own receive deadline plus the threshold count as
	// listening; the rest does not.
	if got := r.silence(heard); got > recvWait+stallThreshold+r.tick {
		t.Fatalf("silence %v while the loop was stuck for 5 s", got)
	}
	if r.l.stalls.Load() != 1 {
		t.Fatalf("stalls %d, want 1 (one long stall)", r.l.stalls.Load())
	}
	r.wake(r.tick, false)
	before := r.silence(heard)
	r.wake(r.tick, false)
	if got := r.silence(heard) - before; got != r.tick {
		t.Fatalf("silence grew %v in a tick after the loop came back", got)
	}
}

// A janitor late on every wake (a starved machine) still fails dead
// peers: only the lateness is deducted, each tick's own length counts.
func TestStallLogUnderSustainedLateness(t *testing.T) {
	r := newStallRun()
	heard := r.now
	for range 400 {
		r.wake(r.tick+time.Second, false)
	}
	if got := r.silence(heard); got < 300*r.tick {
		t.Fatalf("silence %v after 400 late ticks, want at least %v", got, 300*r.tick)
	}
	if len(r.l.ivs) > maxStalls {
		t.Fatalf("%d stall intervals kept, at most %d", len(r.l.ivs), maxStalls)
	}
}
