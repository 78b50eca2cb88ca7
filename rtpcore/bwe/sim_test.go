package bwe

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/hayate-sfu/hayate/rtpcore/twcc"
)

// link is a simulated bottleneck: random loss, a FIFO queue bounded in
// bytes drained at the capacity, and a propagation delay.
type link struct {
	capacity  int64 // bps; 0: unlimited
	queue     int   // bytes
	delay     int64 // µs
	loss      float64
	rnd       *rand.Rand
	busyUntil int64
	queued    []qpkt
	offered   int
	dropped   int
}

type qpkt struct {
	seq    uint16
	size   int
	depart int64
}

// send puts a packet on the link at now; arrivals come out of deliver.
func (l *link) send(now int64, seq uint16, size int) {
	l.offered++
	if l.loss > 0 && l.rnd.Float64() < l.loss {
		l.dropped++
		return
	}
	if l.capacity == 0 {
		l.queued = append(l.queued, qpkt{seq, size, now})
		return
	}
	backlog := 0
	for _, q := range l.queued {
		if q.depart > now {
			backlog += q.size
		}
	}
	if backlog+size > l.queue {
		l.dropped++
		return
	}
	start := max(now, l.busyUntil)
	l.busyUntil = start + int64(size)*8*1_000_000/l.capacity
	l.queued = append(l.queued, qpkt{seq, size, l.busyUntil})
}

// deliver returns the packets that arrived by now.
func (l *link) deliver(now int64, fn func(seq uint16, at int64)) {
	k := 0
	for _, q := range l.queued {
		if q.depart+l.delay <= now {
			fn(q.seq, q.depart+l.delay)
			continue
		}
		l.queued[k] = q
		k++
	}
	l.queued = l.queued[:k]
}

// layers are a simulcast publisher's three streams (bps).
var layers = []int64{150_000, 500_000, 2_500_000}

// sim runs a sender choosing the best layer that fits its estimate, a
// link, and a receiver sending feedback every 100 ms.
type sim struct {
	t        *testing.T
	e        *Estimator
	l        *link
	rec      twcc.Recorder
	now      int64
	seq      uint16
	layer    int
	credit   float64
	feedback []fb
	lastFb   int64
	trace    func(now int64)
	// fbTrace, if set, runs after every feedback the estimator takes.
	fbTrace func(now int64)
}

type fb struct {
	at  int64
	pkt []byte
}

func newSim(t *testing.T, l *link) *sim {
	return &sim{t: t, e: New(Config{Initial: 300_000}), l: l}
}

// choose is the layer choice rtpcore makes: the best layer whose rate fits
// 90% of the estimate; probe towards the next one otherwise.
func (s *sim) choose() {
	est := s.e.Estimate()
	best := 0
	for i, r := range layers {
		if float64(r) <= 0.9*float64(est) {
			best = i
		}
	}
	s.layer = best
	if best < len(layers)-1 {
		s.e.StartProbe(s.now, layers[best+1]*5/4)
	}
}

func (s *sim) sendPacket(size int) {
	s.seq++
	s.e.Sent(s.seq, s.now, size)
	s.l.send(s.now, s.seq, size)
}

// run advances the simulation by d microseconds in 1 ms steps.
func (s *sim) run(d int64) {
	end := s.now + d
	for ; s.now < end; s.now += 1000 {
		// Media: the layer's rate in 1200-byte packets, sent per 33 ms
		// frame as a burst.
		if s.now%33_000 < 1000 {
			s.credit += float64(layers[s.layer]) / 8 * 0.033
			for s.credit >= 1200 {
				s.sendPacket(1200)
				s.credit -= 1200
			}
		}
		if n, size := s.e.Padding(s.now); n > 0 && s.now%5_000 < 1000 {
			for range n {
				s.sendPacket(size)
			}
		}
		s.l.deliver(s.now, func(seq uint16, at int64) { s.rec.Record(seq, at) })
		if s.now-s.lastFb >= 100_000 {
			s.lastFb = s.now
			if pkt := s.rec.Build(nil, 1, 2); len(pkt) > 0 {
				s.feedback = append(s.feedback, fb{s.now + s.l.delay, pkt})
			}
		}
		k := 0
		for _, f := range s.feedback {
			if f.at <= s.now {
				if err := s.e.Feedback(s.now, f.pkt[12:]); err != nil {
					s.t.Fatal(err)
				}
				if s.fbTrace != nil {
					s.fbTrace(s.now)
				}
				s.choose()
				continue
			}
			s.feedback[k] = f
			k++
		}
		s.feedback = s.feedback[:k]
		if s.trace != nil && s.now%100_000 == 0 {
			s.trace(s.now)
		}
	}
}

// TestEstimatorClimbsToCapacity: from a low start on a fast link, probing
// lifts the estimate to the top layer within a few seconds.
func TestEstimatorClimbsToCapacity(t *testing.T) {
	s := newSim(t, &link{capacity: 10_000_000, queue: 100_000, delay: 20_000, rnd: rand.New(rand.NewPCG(1, 2))})
	s.run(6_000_000)
	if s.layer != 2 {
		t.Fatalf("layer %d after 6 s, estimate %d", s.layer, s.e.Estimate())
	}
}

// TestEstimatorCapAndRecovery: a link capped below the top layer is found
// within seconds and the layer that fits is kept with little loss; when
// the cap lifts the top layer comes back.
func TestEstimatorCapAndRecovery(t *testing.T) {
	l := &link{capacity: 10_000_000, queue: 60_000, delay: 20_000, rnd: rand.New(rand.NewPCG(3, 4))}
	s := newSim(t, l)
	s.run(8_000_000)
	if s.layer != 2 {
		t.Fatalf("layer %d before the cap, estimate %d", s.layer, s.e.Estimate())
	}
	l.capacity = 800_000
	capAt := s.now
	for s.layer == 2 {
		s.run(100_000)
		if s.now-capAt > 5_000_000 {
			t.Fatalf("still on the top layer 5 s after the cap, estimate %d", s.e.Estimate())
		}
	}
	t.Logf("down after %d ms, estimate %d", (s.now-capAt)/1000, s.e.Estimate())
	s.run(2_000_000) // settle
	off, drop := l.offered, l.dropped
	s.run(20_000_000)
	if loss := float64(l.dropped-drop) / float64(l.offered-off); loss > 0.02 || s.layer != 1 {
		t.Fatalf("under the cap: loss %.3f, layer %d, estimate %d", loss, s.layer, s.e.Estimate())
	} else {
		t.Logf("under the cap: loss %.4f", loss)
	}
	l.capacity = 10_000_000
	liftAt := s.now
	for s.layer != 2 {
		s.run(100_000)
		if s.now-liftAt > 15_000_000 {
			t.Fatalf("not back on the top layer 15 s after the cap lifted, estimate %d", s.e.Estimate())
		}
	}
	t.Logf("up after %d ms", (s.now-liftAt)/1000)
}

// TestEstimatorRandomLoss: 5% random loss on a fast link is not
// congestion: the top layer stays.
func TestEstimatorRandomLoss(t *testing.T) {
	l := &link{capacity: 10_000_000, queue: 100_000, delay: 20_000, rnd: rand.New(rand.NewPCG(5, 6))}
	s := newSim(t, l)
	s.run(8_000_000)
	l.loss = 0.05
	low := 2
	for range 200 {
		s.run(100_000)
		low = min(low, s.layer)
	}
	if low != 2 {
		t.Fatalf("dropped to layer %d under 5%% random loss, estimate %d, loss %.3f", low, s.e.Estimate(), s.e.Loss())
	}
}

// TestEstimatorHighLoss: loss far above what the link can explain lowers
// the estimate (the loss-based bound).
func TestEstimatorHighLoss(t *testing.T) {
	l := &link{capacity: 10_000_000, queue: 100_000, delay: 20_000, rnd: rand.New(rand.NewPCG(7, 8))}
	s := newSim(t, l)
	s.run(8_000_000)
	before := s.e.Estimate()
	l.loss = 0.3
	s.run(5_000_000)
	if s.e.Estimate() > before*7/10 {
		t.Fatalf("estimate %d after 5 s of 30%% loss (before %d)", s.e.Estimate(), before)
	}
}

func TestEstimatorREMB(t *testing.T) {
	e := New(Config{})
	e.REMB(1, 700_000)
	if e.Estimate() != 700_000 {
		t.Fatalf("estimate %d", e.Estimate())
	}
}

func TestFeedbackAllocs(t *testing.T) {
	e := New(Config{})
	var rec twcc.Recorder
	buf := make([]byte, 0, 1500)
	seq := uint16(0)
	now := int64(0)
	if a := testing.AllocsPerRun(100, func() {
		for range 30 {
			seq++
			now += 3000
			e.Sent(seq, now, 1200)
			rec.Record(seq, now+20_000)
		}
		buf = rec.Build(buf[:0], 1, 2)
		_ = e.Feedback(now, buf[12:])
		e.Padding(now)
	}); a != 0 {
		t.Fatalf("%v allocations", a)
	}
}

// TestEstimatorProbeOvershootKeepsEstimate: under a cap, probes towards a
// layer the link cannot carry overshoot it and queue; the delay they cause
// fails the probe but does not count as congestion, so the estimate stays
// near the capacity instead of dipping after every probe.
func TestEstimatorProbeOvershootKeepsEstimate(t *testing.T) {
	l := &link{capacity: 10_000_000, queue: 60_000, delay: 20_000, rnd: rand.New(rand.NewPCG(3, 4))}
	s := newSim(t, l)
	s.run(8_000_000)
	l.capacity = 800_000
	s.run(5_000_000) // settle
	low, probing := int64(1<<62), 0
	s.trace = func(int64) {
		low = min(low, s.e.Estimate())
		if s.e.Probing() {
			probing++
		}
	}
	s.run(20_000_000)
	if probing == 0 {
		t.Fatal("no probe under the cap")
	}
	if low < l.capacity*85/100 {
		t.Fatalf("estimate fell to %d under a %d bit/s cap", low, l.capacity)
	}
	t.Logf("lowest estimate %d under a %d bit/s cap", low, l.capacity)
}

// BenchmarkEstimatorFeedback: the estimator's work per packet in steady
// state, as rtpcore's BenchmarkForwardCongestion gives it: a packet sent
// every gap (3 ms: a subscriber of one simulcast layer; 1 ms: of a plain
// track), 20 ms on the way with up to 1 ms of jitter, and transport
// feedback for every 64 ms of them, built with twcc.Recorder beforehand.
// An op is one feedback: Sent for each packet it reports, then Feedback.
//
//	go test -run '^$' -bench EstimatorFeedback -benchtime 2000x -count 3 ./rtpcore/bwe/
func BenchmarkEstimatorFeedback(b *testing.B) {
	for _, gap := range []int64{3000, 1000} {
		b.Run(fmt.Sprintf("gap=%dms", gap/1000), func(b *testing.B) { benchFeedback(b, gap) })
	}
}

func benchFeedback(b *testing.B, gap int64) {
	type send struct {
		seq  uint16
		at   int64
		size int
	}
	type feedback struct {
		sends []send
		now   int64
		fci   []byte
	}
	const ring = 1024
	rnd := rand.New(rand.NewPCG(1, 2))
	var rec twcc.Recorder
	fbs := make([]feedback, ring)
	now, seq := int64(1_000_000), uint16(0)
	for i := range fbs {
		f := &fbs[i]
		for end := now + 64_000; now < end; now += gap {
			size := 1100 + rnd.IntN(60)
			f.sends = append(f.sends, send{seq, now, size})
			rec.Record(seq, now+20_000+rnd.Int64N(1_000))
			seq++
		}
		f.now = now + 21_000
		f.fci = rec.Build(nil, 1, 2)[12:]
	}
	e := New(Config{Initial: 50_000_000, Max: 100_000_000})
	b.ReportAllocs()
	i, n := 0, 0
	for b.Loop() {
		if i == ring {
			// Time would go back: a new estimator.
			b.StopTimer()
			e, i = New(Config{Initial: 50_000_000, Max: 100_000_000}), 0
			b.StartTimer()
		}
		f := &fbs[i]
		for _, s := range f.sends {
			e.Sent(s.seq, s.at, s.size)
		}
		if err := e.Feedback(f.now, f.fci); err != nil {
			b.Fatal(err)
		}
		n += len(f.sends)
		i++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/pkt")
}
