//go:build amd64 && !amd64.v3

package bwe

import (
	"bytes"
	"flag"
	"fmt"
	"hash"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/cpu"

	"github.com/hayate-sfu/hayate/rtpcore/twcc"
)

var update = flag.Bool("update", false, "rewrite testdata/estimator.trace from the current code")

// tracer writes what the estimator shows after each feedback, floats by
// their bits so that any change to its arithmetic shows: every
// traceBlock feedbacks, a hash of their lines and the last line.
type tracer struct {
	w    *bytes.Buffer
	h    hash.Hash64
	n    int
	last []byte
}

const traceBlock = 25

func newTracer(w *bytes.Buffer, name string) *tracer {
	fmt.Fprintf(w, "# %s\n", name)
	return &tracer{w: w, h: fnv.New64a()}
}

func (tr *tracer) add(e *Estimator, now int64) {
	tr.last = fmt.Appendf(tr.last[:0], "%d %d %d %d %x %x %x %x %x %t %t", now, e.Estimate(), e.Usage(), e.Acked(now),
		math.Float64bits(e.Loss()), math.Float64bits(e.estimate), math.Float64bits(e.lossBound),
		math.Float64bits(e.trend), math.Float64bits(e.threshold), e.Probing(), e.Congested(now, 1_000_000))
	tr.h.Write(tr.last)
	tr.n++
	if tr.n%traceBlock == 0 {
		tr.flush()
	}
}

func (tr *tracer) flush() {
	fmt.Fprintf(tr.w, "%d %016x %s\n", tr.n, tr.h.Sum64(), tr.last)
	tr.h.Reset()
}

func (tr *tracer) end() {
	if tr.n%traceBlock != 0 {
		tr.flush()
	}
}

// simTrace runs the simulations of sim_test.go for fixed times, tracing
// every feedback.
func simTrace(t *testing.T, w *bytes.Buffer, name string, l *link, phases ...func(*sim)) {
	tr := newTracer(w, name)
	s := newSim(t, l)
	s.fbTrace = func(now int64) { tr.add(s.e, now) }
	for _, p := range phases {
		p(s)
	}
	tr.end()
}

// randomTrace drives an estimator with irregular traffic: gaps of 0 to 6
// ms, sizes of 100 to 1200 bytes, a queue that builds and drains (overuse,
// underuse), reordering, phases of loss, feedback 20 ms to 1.5 s apart
// (rate control's increase over less and more than half a second), probes
// with their padding.
func randomTrace(t *testing.T, w *bytes.Buffer, seed uint64) {
	tr := newTracer(w, fmt.Sprintf("random %d", seed))
	defer tr.end()
	rnd := rand.New(rand.NewPCG(seed, seed+1))
	e := New(Config{Initial: 800_000})
	var rec twcc.Recorder
	type flight struct {
		seq uint16
		arr int64
	}
	var inFlight []flight
	now, seq := int64(1_000_000), uint16(60_000) // the sequence wraps
	queue, slope, loss := 0.0, 0.0, 0.0
	nextFb := now + 100_000
	send := func(size int) {
		seq++
		e.Sent(seq, now, size)
		if rnd.Float64() < loss {
			return
		}
		queue = math.Max(0, math.Min(300_000, queue+slope*float64(size)+rnd.NormFloat64()*300))
		inFlight = append(inFlight, flight{seq, now + 20_000 + int64(queue) + rnd.Int64N(2_000)})
	}
	for now < 120_000_000 {
		if rnd.IntN(2000) == 0 { // a new phase
			slope = []float64{0, 0, 2, -2, 8}[rnd.IntN(5)]
			loss = []float64{0, 0, 0.03, 0.2}[rnd.IntN(4)]
		}
		now += rnd.Int64N(6_000)
		send(100 + rnd.IntN(1101))
		if rnd.IntN(500) == 0 {
			e.StartProbe(now, 2*e.Estimate())
		}
		if n, size := e.Padding(now); n > 0 {
			for range n {
				send(size)
			}
		}
		if now < nextFb {
			continue
		}
		k := 0
		for _, f := range inFlight {
			if f.arr <= now {
				rec.Record(f.seq, f.arr)
				continue
			}
			inFlight[k] = f
			k++
		}
		inFlight = inFlight[:k]
		for rec.Pending() {
			pkt := rec.Build(nil, 1, 2)
			if len(pkt) == 0 {
				break
			}
			if err := e.Feedback(now, pkt[12:]); err != nil {
				t.Fatal(err)
			}
			tr.add(e, now)
		}
		nextFb = now + 20_000 + rnd.Int64N(1_480_000)
	}
}

// TestEstimatorTrace: the estimator's outputs after every feedback (the
// estimate, the usage, the acknowledged rate, the loss, the congestion
// signal, the probing state, and the delay-based estimate, the loss-based
// bound, the trend and the threshold to the bit) hash to those recorded in
// testdata/estimator.trace (by blocks of traceBlock feedbacks), over the simulations of sim_test.go and
// random traffic. Changes meant to make the estimator cheaper must keep
// them; a change of behaviour rewrites the file with -update.
//
// The trace holds floats to the bit: it is recorded where rtpcore runs
// (amd64), with math.Exp's FMA path, and without the compiler fusing
// multiply-adds (which it does on arm64 and from GOAMD64=v3).
func TestEstimatorTrace(t *testing.T) {
	if !cpu.X86.HasAVX || !cpu.X86.HasFMA {
		t.Skip("math.Exp rounds otherwise without FMA")
	}
	var w bytes.Buffer
	simTrace(t, &w, "climb", &link{capacity: 10_000_000, queue: 100_000, delay: 20_000, rnd: rand.New(rand.NewPCG(1, 2))},
		func(s *sim) { s.run(6_000_000) })
	cl := &link{capacity: 10_000_000, queue: 60_000, delay: 20_000, rnd: rand.New(rand.NewPCG(3, 4))}
	simTrace(t, &w, "cap", cl,
		func(s *sim) { s.run(8_000_000) },
		func(s *sim) { cl.capacity = 800_000; s.run(25_000_000) },
		func(s *sim) { cl.capacity = 10_000_000; s.run(15_000_000) })
	rl := &link{capacity: 10_000_000, queue: 100_000, delay: 20_000, rnd: rand.New(rand.NewPCG(5, 6))}
	simTrace(t, &w, "random loss", rl,
		func(s *sim) { s.run(8_000_000) },
		func(s *sim) { rl.loss = 0.05; s.run(20_000_000) })
	hl := &link{capacity: 10_000_000, queue: 100_000, delay: 20_000, rnd: rand.New(rand.NewPCG(7, 8))}
	simTrace(t, &w, "high loss", hl,
		func(s *sim) { s.run(8_000_000) },
		func(s *sim) { hl.loss = 0.3; s.run(5_000_000) })
	for seed := range uint64(3) {
		randomTrace(t, &w, seed)
	}
	const file = "testdata/estimator.trace"
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, w.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	got, wl := strings.Split(w.String(), "\n"), strings.Split(string(want), "\n")
	for i := range min(len(got), len(wl)) {
		if got[i] != wl[i] {
			t.Fatalf("line %d:\n got %s\nwant %s", i+1, got[i], wl[i])
		}
	}
	if len(got) != len(wl) {
		t.Fatalf("%d lines, want %d", len(got), len(wl))
	}
}
