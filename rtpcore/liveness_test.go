package rtpcore

import (
	"io"
	"log/slog"
	"testing"
	"time"
)

// clockRun drives a liveClock with made-up wall times: a janitor ticking
// every tick from t0, and one receive loop whose beats the test sets.
type clockRun struct {
	c    liveClock
	now  time.Time
	tick time.Duration
	beat time.Time
}

func newClockRun() *clockRun {
	t0 := time.Unix(1_000_000, 0)
	r := &clockRun{now: t0, tick: 250 * time.Millisecond, beat: t0}
	r.c.start(t0)
	return r
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// wake advances the wall clock by d, with the loop beating along unless
// stuck, and lets the janitor observe.
func (r *clockRun) wake(d time.Duration, loopStuck bool) {
	r.now = r.now.Add(d)
	if !loopStuck {
		r.beat = r.now
	}
	r.c.observe(r.now, r.tick, []int64{r.beat.UnixNano()}, quiet)
}

// silence is how long a peer last heard at wall time `heard` has been
// silent on the liveness clock now.
func (r *clockRun) silence(heard int64) time.Duration {
	return time.Duration(r.c.at(r.now.UnixNano()) - heard)
}

func TestLiveClockRunsWithTheWallWhenTheNodeIsWell(t *testing.T) {
	r := newClockRun()
	heard := r.c.at(r.now.UnixNano())
	for range 40 {
		r.wake(r.tick+100*time.Millisecond, false) // ordinary lateness
	}
	if got, want := r.silence(heard), 40*(r.tick+100*time.Millisecond); got != want {
		t.Fatalf("silence %v, want %v: ordinary lateness must not be credited", got, want)
	}
	if r.c.stalls.Load() != 0 {
		t.Fatalf("%d stalls counted", r.c.stalls.Load())
	}
}

// A node stopped for 3 s (SIGSTOP): the janitor wakes 3 s late, the
// receive loop has not beaten either. The gap is credited: a peer heard
// just before the stop is not silent for 3 s.
func TestLiveClockCreditsAStoppedNode(t *testing.T) {
	r := newClockRun()
	r.wake(r.tick, false)
	heard := r.c.at(r.now.UnixNano())
	r.wake(3*time.Second+r.tick, true)
	if got := r.silence(heard); got > r.tick {
		t.Fatalf("silence %v after a 3 s stop, want at most one tick (%v)", got, r.tick)
	}
	if r.c.stalls.Load() != 1 {
		t.Fatalf("stalls %d, want 1", r.c.stalls.Load())
	}
	if l := time.Duration(r.c.longest.Load()); l < 3*time.Second {
		t.Fatalf("longest stall %v, want about 3 s", l)
	}
	// The node is well again: time counts again, the stall ends.
	r.wake(r.tick, false)
	r.wake(r.tick, false)
	if got := r.silence(heard); got < 2*r.tick || got > 3*r.tick {
		t.Fatalf("silence %v two ticks after the stop", got)
	}
	if !(r.c.stalled == false && r.c.stalls.Load() == 1) {
		t.Fatal("the stall did not end")
	}
}

// A receive loop stuck while the janitor runs on time: the node is not
// listening, so the clock stands still until the loop comes back.
func TestLiveClockStandsStillWhileALoopIsStuck(t *testing.T) {
	r := newClockRun()
	heard := r.c.at(r.now.UnixNano())
	for range 20 { // 5 s of janitor ticks, the loop away all along
		r.wake(r.tick, true)
	}
	// The loop's own receive deadline plus the threshold count as
	// listening; the rest does not.
	if got := r.silence(heard); got > recvWait+stallThreshold+r.tick {
		t.Fatalf("silence %v while the loop was stuck for 5 s", got)
	}
	if r.c.stalls.Load() != 1 {
		t.Fatalf("stalls %d, want 1 (one long stall)", r.c.stalls.Load())
	}
	r.wake(r.tick, false)
	before := r.silence(heard)
	r.wake(r.tick, false)
	if got := r.silence(heard) - before; got != r.tick {
		t.Fatalf("the clock advanced %v in a tick after the loop came back", got)
	}
}

// A janitor late on every wake (a starved machine) still fails dead
// peers: only the lateness is credited, each tick's own length counts.
func TestLiveClockAdvancesUnderSustainedLateness(t *testing.T) {
	r := newClockRun()
	heard := r.c.at(r.now.UnixNano())
	for range 40 {
		r.wake(r.tick+time.Second, false)
	}
	if got := r.silence(heard); got < 40*r.tick {
		t.Fatalf("silence %v after 40 late ticks, want at least %v", got, 40*r.tick)
	}
}
