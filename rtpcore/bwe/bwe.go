// Package bwe estimates the bandwidth towards one receiver from its
// transport-wide congestion control feedback (package twcc), in the manner
// of Google congestion control (draft-ietf-rmcat-gcc-02): a delay-based
// part (a trendline of the one-way delay variation between packet groups,
// an adaptive overuse threshold, and AIMD rate control), a loss-based
// bound, and probing with padding to find capacity the media alone does
// not show. It is written for Hayate from the draft; it is not a port of
// libwebrtc or pion/interceptor.
//
// An Estimator is driven by its owner: Sent for every packet sent with a
// transport-wide sequence number, Feedback for every feedback received,
// Padding while a probe runs. It is not safe for concurrent use; times are
// microseconds on one monotonic clock (the receiver's arrival times only
// need to be consistent among themselves).
package bwe

import (
	"math"

	"github.com/hayate-sfu/hayate/rtpcore/twcc"
)

// Config are an estimator's bounds.
type Config struct {
	// Initial is the estimate before any feedback (bits per second).
	Initial int64
	// Min and Max bound the estimate.
	Min, Max int64
}

// Defaults for a zero Config.
const (
	DefaultInitial = 1_000_000
	DefaultMin     = 50_000
	DefaultMax     = 20_000_000
)

// Tuning (draft-ietf-rmcat-gcc-02 §5 and §6 give the model; the values are
// the draft's or chosen here and noted).
const (
	groupSpan      = 5_000 // µs: packets sent within 5 ms form a group (§5.2)
	trendWindow    = 20    // groups in the trendline regression
	trendSmoothing = 0.9
	trendGain      = 4.0
	thresholdInit  = 12.5 // ms (§5.4)
	thresholdMin   = 6.0
	thresholdMax   = 600.0
	kUp            = 0.0087 // threshold adaptation (§5.4)
	kDown          = 0.039
	overuseTime    = 10_000 // µs over the threshold before overuse is signalled
	beta           = 0.85   // decrease to 85% of the received rate (§6)
	increasePerSec = 1.08   // multiplicative increase (§6)
	ackedWindow    = 500_000
	lossWindow     = 1_000_000
	lossHigh       = 0.10 // loss above which the loss-based bound decreases
	lossLow        = 0.02 // below which it is lifted
	probeDuration  = 200_000
	probeMinGap    = 500_000   // after a probe that reached its rate
	probeBackoff   = 3_000_000 // after one that did not
	probeMaxPad    = 8         // padding packets per Padding call
	probeSettle    = 1_500_000 // after a probe, its queue drains (and the trend shows it)
	paddingSize    = 1200
)

// Usage is the delay-based detector's verdict (§5.5).
type Usage uint8

// The three verdicts.
const (
	Normal Usage = iota
	Overuse
	Underuse
)

func (u Usage) String() string {
	switch u {
	case Overuse:
		return "overuse"
	case Underuse:
		return "underuse"
	}
	return "normal"
}

const histSize = 2048

// sent is one packet's record in the send history.
type sent struct {
	at    int64
	size  uint16
	probe uint16 // probe cluster id, 0: none
	valid bool
}

// group is a packet group (§5.2).
type group struct {
	firstSend, lastSend, lastArr int64
	size                         int
	valid                        bool
}

// cluster is one probe.
type cluster struct {
	id                     uint16
	rate                   int64
	start, end             int64
	sentBytes, sentPackets int
	firstSend, lastSend    int64
	lastSize               int
	recvBytes, recvPackets int
	firstArr, lastArr      int64
	firstSize              int
	lastSeq                uint16
	active, done, hasLast  bool
	reported               int
}

// Estimator is the bandwidth estimate towards one receiver.
type Estimator struct {
	cfg  Config
	hist [histSize]sent

	estimate  float64 // delay-based (AIMD) rate, bps
	lossBound float64 // loss-based bound, bps
	usage     Usage
	holding   bool
	lastIncr  int64
	lastDecr  int64

	// Delay-based detection.
	cur, prev     group
	acc, smoothed float64
	xs, ys        [trendWindow]float64 // a ring: the oldest at head once full
	nTrend, head  int
	nextX, nextY  float64 // sums of the newest trendWindow-1 points, oldest first
	firstArr      int64
	deltas        int
	threshold     float64
	lastThresh    int64
	overFor       int64
	overCount     int
	prevTrend     float64
	trend         float64

	// Received rate over ackedWindow, in 50 ms buckets of arrival time.
	buckets    [ackedWindow / 50_000]int64
	bucketAt   [ackedWindow / 50_000]int64
	ackedValid bool
	// The last arrival's bucket and the arrivals that fall in it.
	lastBucket     int
	lastLo, lastHi int64

	// Loss over lossWindow.
	lossStart      int64
	lost, reported int
	loss           float64
	lastFeedback   int64
	lastCongestion int64
	feedbacks      int

	// Probing; probeEnd is when the last probe was evaluated.
	probe     cluster
	nextProbe int64
	probeID   uint16
	probeEnd  int64
}

// New returns an estimator.
func New(cfg Config) *Estimator {
	if cfg.Initial <= 0 {
		cfg.Initial = DefaultInitial
	}
	if cfg.Min <= 0 {
		cfg.Min = DefaultMin
	}
	if cfg.Max <= 0 {
		cfg.Max = DefaultMax
	}
	return &Estimator{cfg: cfg, estimate: float64(cfg.Initial), lossBound: math.Inf(1), threshold: thresholdInit, lastCongestion: -1 << 62}
}

// Estimate is the current estimate in bits per second.
func (e *Estimator) Estimate() int64 {
	v := min(e.estimate, e.lossBound)
	return int64(max(float64(e.cfg.Min), min(v, float64(e.cfg.Max))))
}

// Loss is the fraction of packets reported lost over the last second.
func (e *Estimator) Loss() float64 { return e.loss }

// Usage is the delay-based detector's current verdict.
func (e *Estimator) Usage() Usage { return e.usage }

// Acked is the rate the receiver reported receiving over the last half
// second (bits per second; 0 before enough feedback).
func (e *Estimator) Acked(now int64) int64 {
	if !e.ackedValid {
		return 0
	}
	var bytes int64
	newest, oldest := int64(math.MinInt64), int64(math.MaxInt64)
	for i := range e.buckets {
		newest = max(newest, e.bucketAt[i])
	}
	for i := range e.buckets {
		if e.bucketAt[i] > newest-ackedWindow {
			bytes += e.buckets[i]
			oldest = min(oldest, e.bucketAt[i])
		}
	}
	// The window spans the buckets that hold data, at least 200 ms: a rate
	// from a few packets would be noise.
	span := newest + 50_000 - oldest
	if span < 200_000 {
		return 0
	}
	return bytes * 8 * 1_000_000 / span
}

// Congested reports whether overuse or high loss was seen in the last
// span microseconds.
func (e *Estimator) Congested(now, span int64) bool { return now-e.lastCongestion < span }

// Sent records a packet sent at at with transport-wide sequence number
// seq and size bytes.
func (e *Estimator) Sent(seq uint16, at int64, size int) {
	h := &e.hist[seq%histSize]
	*h = sent{at: at, size: uint16(min(size, math.MaxUint16)), valid: true}
	if p := &e.probe; p.active && at >= p.start {
		h.probe = p.id
		if p.sentPackets == 0 {
			p.firstSend = at
		}
		p.sentPackets++
		p.sentBytes += size
		p.lastSend, p.lastSize, p.lastSeq, p.hasLast = at, size, seq, true
		if at >= p.end && p.sentPackets >= 5 {
			p.active, p.done = false, true
		}
	}
}

// REMB takes a receiver estimate (RTCP REMB) for a receiver that sends no
// transport feedback: it is the estimate.
func (e *Estimator) REMB(now, bps int64) {
	e.estimate = float64(bps)
	e.lossBound = math.Inf(1)
	e.lastFeedback = now
}

// Feedback processes one transport feedback FCI received at now.
func (e *Estimator) Feedback(now int64, fci []byte) error {
	var r twcc.Reports
	if err := r.Reset(fci); err != nil {
		return err
	}
	for sts := r.Next(); len(sts) > 0; sts = r.Next() {
		for _, st := range sts {
			h := &e.hist[st.Seq%histSize]
			if !h.valid {
				continue
			}
			e.reported++
			if !st.Received {
				e.lost++
				continue
			}
			e.addAcked(st.At, int64(h.size))
			e.packet(h.at, st.At, int(h.size))
			if h.probe != 0 && h.probe == e.probe.id {
				e.probeArrival(st.Seq, st.At, int(h.size))
			}
			h.valid = false
		}
	}
	if err := r.Err(); err != nil {
		return err
	}
	e.feedbacks++
	e.lastFeedback = now
	e.updateLoss(now)
	e.rateControl(now)
	e.finishProbe(now)
	return nil
}

func (e *Estimator) addAcked(at, size int64) {
	// Most arrivals fall in the bucket of the one before.
	if e.ackedValid && at >= e.lastLo && at <= e.lastHi {
		e.buckets[e.lastBucket] += size
		return
	}
	q := at / 50_000
	b := q % int64(len(e.buckets))
	if b < 0 {
		b += int64(len(e.buckets))
	}
	slot := q * 50_000
	if e.bucketAt[b] != slot {
		e.bucketAt[b], e.buckets[b] = slot, 0
	}
	e.buckets[b] += size
	e.ackedValid = true
	// The arrivals whose quotient is q (it truncates towards zero).
	e.lastBucket = int(b)
	switch {
	case q > 0:
		e.lastLo, e.lastHi = slot, slot+49_999
	case q == 0:
		e.lastLo, e.lastHi = -49_999, 49_999
	default:
		e.lastLo, e.lastHi = slot-49_999, slot
	}
}

// packet adds one received packet to the group being built (§5.2); a
// completed group updates the trendline.
func (e *Estimator) packet(sendAt, arrAt int64, size int) {
	g := &e.cur
	if !g.valid {
		*g = group{firstSend: sendAt, lastSend: sendAt, lastArr: arrAt, size: size, valid: true}
		return
	}
	if sendAt-g.firstSend <= groupSpan && sendAt >= g.firstSend {
		g.lastSend = max(g.lastSend, sendAt)
		g.lastArr = max(g.lastArr, arrAt)
		g.size += size
		return
	}
	if e.prev.valid {
		ds := g.lastSend - e.prev.lastSend
		da := g.lastArr - e.prev.lastArr
		if ds > 0 && da >= 0 {
			e.trendline(g.lastArr, float64(da-ds)/1000)
		}
	}
	e.prev = *g
	*g = group{firstSend: sendAt, lastSend: sendAt, lastArr: arrAt, size: size, valid: true}
}

// trendline updates the delay trend with one group's delay variation
// (milliseconds) and runs the overuse detector (§5.3, §5.5). It runs for
// nearly every packet of a stream paced more than groupSpan apart: the
// window is a ring, and the regression computes what a window shifted
// down by one point each time gives, to the bit (TestTrendlineRing).
func (e *Estimator) trendline(arr int64, variation float64) {
	if e.nTrend == 0 && e.deltas == 0 {
		e.firstArr = arr
	}
	e.deltas++
	e.acc += variation
	e.smoothed = trendSmoothing*e.smoothed + (1-trendSmoothing)*e.acc
	x := float64(arr-e.firstArr) / 1000
	var mx, my float64
	if e.nTrend < trendWindow {
		e.xs[e.nTrend], e.ys[e.nTrend] = x, e.smoothed
		e.nTrend++
		if e.nTrend < trendWindow {
			return
		}
		for i := range trendWindow {
			mx += e.xs[i]
			my += e.ys[i]
		}
	} else {
		// The newest takes the oldest's place; the sums of the others
		// are ready.
		e.xs[e.head], e.ys[e.head] = x, e.smoothed
		e.head = (e.head + 1) % trendWindow
		mx, my = e.nextX+x, e.nextY+e.smoothed
	}
	// Least squares over the window, oldest to newest: the sums are
	// those of the window shifted down for each point, to the bit. The
	// next window's sums but for its newest point (those of this one
	// without the oldest, in the same order) are taken on the way: the
	// next group's wait on a chain of additions is one long.
	mx /= trendWindow
	my /= trendWindow
	h := e.head
	oldX, newX := e.xs[h:], e.xs[:h]
	oldY, newY := e.ys[h:][:len(oldX)], e.ys[:h][:len(newX)]
	var num, den, nx, ny float64
	num += (oldX[0] - mx) * (oldY[0] - my)
	den += (oldX[0] - mx) * (oldX[0] - mx)
	for i, x := range oldX[1:] {
		y := oldY[1:][i]
		num += (x - mx) * (y - my)
		den += (x - mx) * (x - mx)
		nx += x
		ny += y
	}
	for i, x := range newX {
		y := newY[i]
		num += (x - mx) * (y - my)
		den += (x - mx) * (x - mx)
		nx += x
		ny += y
	}
	e.nextX, e.nextY = nx, ny
	if den == 0 {
		return
	}
	slope := num / den
	e.prevTrend, e.trend = e.trend, slope*float64(min(e.deltas, 60))*trendGain
	e.detect(arr)
}

// detect compares the trend with the adaptive threshold (§5.4, §5.5).
func (e *Estimator) detect(now int64) {
	dt := int64(0)
	if e.lastThresh != 0 {
		dt = now - e.lastThresh
	}
	switch t := e.trend; {
	case t > e.threshold:
		if e.overFor == 0 {
			e.overFor = max(dt/2, 1)
		} else {
			e.overFor += dt
		}
		e.overCount++
		if e.overFor > overuseTime && e.overCount > 1 && t >= e.prevTrend {
			e.overFor, e.overCount = 0, 0
			e.usage = Overuse
		}
	case t < -e.threshold:
		e.overFor, e.overCount = 0, 0
		e.usage = Underuse
	default:
		e.overFor, e.overCount = 0, 0
		e.usage = Normal
	}
	// Threshold adaptation, skipped for spikes far above it.
	if a := math.Abs(e.trend); a <= e.threshold+15 {
		k := kUp
		if a < e.threshold {
			k = kDown
		}
		d := float64(min(dt, 100_000)) / 1000
		e.threshold = max(thresholdMin, min(thresholdMax, e.threshold+k*(a-e.threshold)*d))
	}
	e.lastThresh = now
}

// updateLoss closes the loss window and moves the loss-based bound.
func (e *Estimator) updateLoss(now int64) {
	if e.lossStart == 0 {
		e.lossStart = now
	}
	if now-e.lossStart < lossWindow || e.reported < 10 {
		return
	}
	e.loss = float64(e.lost) / float64(e.reported)
	cur := min(e.estimate, e.lossBound)
	switch {
	case e.loss > lossHigh:
		e.lossBound = cur * (1 - 0.5*e.loss)
		e.lastCongestion = now
	case e.loss < lossLow:
		e.lossBound = math.Inf(1)
	default:
		e.lossBound = cur // hold
	}
	e.lost, e.reported, e.lossStart = 0, 0, now
}

// rateControl is the AIMD controller (§6): decrease on overuse, hold on
// underuse, increase otherwise, never above 1.5 times what the receiver
// gets.
func (e *Estimator) rateControl(now int64) {
	acked := float64(e.Acked(now))
	switch e.usage {
	case Overuse:
		// Overuse while a probe runs or just after it is the probe's own
		// doing (it sent above the estimate on purpose): the probe fails,
		// the estimate stays.
		if p := &e.probe; p.active || p.done || now-e.probeEnd < probeSettle {
			e.holding = true
			e.usage = Normal
			break
		}
		if now-e.lastDecr > 200_000 {
			if acked > 0 {
				e.estimate = min(e.estimate, beta*acked)
			} else {
				e.estimate *= beta
			}
			e.lastDecr = now
		}
		e.holding = true
		e.lastCongestion = now
		e.usage = Normal // signalled once; the detector sets it again
	case Underuse:
		e.holding = true
	default:
		if e.holding {
			e.holding = false
			e.lastIncr = now
			break
		}
		if e.lastIncr == 0 {
			e.lastIncr = now
			break
		}
		dt := float64(min(now-e.lastIncr, 1_000_000)) / 1e6
		next := e.estimate * growth(dt)
		e.lastIncr = now
		// The increase stops at 1.5 times what the receiver gets (it
		// never lowers the estimate: a probe may have raised it above).
		if limit := 1.5*acked + 10_000; acked > 0 && next > limit {
			next = max(e.estimate, limit)
		}
		e.estimate = next
	}
	e.estimate = max(float64(e.cfg.Min), min(e.estimate, float64(e.cfg.Max)))
}

// lnIncrease and sqrtIncrease are what math.Pow(increasePerSec, dt)
// computes for every dt.
var (
	lnIncrease   = math.Log(increasePerSec)
	sqrtIncrease = math.Sqrt(increasePerSec)
)

// growth is math.Pow(increasePerSec, dt) for 0 <= dt <= 1, to the bit,
// as Pow computes it but without its general case (and its logarithm):
// x^dt is Exp(dt·ln x) for dt below one half, and x·Exp((dt-1)·ln x)
// above (dt-1 is exact there). TestGrowthIsPow checks every dt rateControl
// can pass (whole microseconds over a second).
func growth(dt float64) float64 {
	switch {
	case dt > 0 && dt < 0.5:
		return math.Exp(dt * lnIncrease)
	case dt > 0.5 && dt < 1:
		return math.Exp((dt-1)*lnIncrease) * increasePerSec
	case dt == 0.5:
		return sqrtIncrease
	}
	return math.Pow(increasePerSec, dt)
}

// StartProbe starts a probe towards target bits per second, if one may
// start now: no probe running, none too recently, no congestion in the
// last second, feedback flowing. The probe sends at most twice the
// estimate.
func (e *Estimator) StartProbe(now, target int64) bool {
	est := e.Estimate()
	if target <= est || e.probe.active || now < e.nextProbe || e.feedbacks < 3 || e.Congested(now, 1_000_000) {
		return false
	}
	e.probeID++
	if e.probeID == 0 {
		e.probeID = 1
	}
	e.probe = cluster{id: e.probeID, rate: min(target, 2*est), start: now, end: now + probeDuration, active: true}
	e.nextProbe = now + probeBackoff
	return true
}

// Probing reports whether a probe is running.
func (e *Estimator) Probing() bool { return e.probe.active }

// Padding is how many padding bytes to send at now to keep a running
// probe at its rate (0 when none runs), in packets of at most size bytes.
func (e *Estimator) Padding(now int64) (packets, size int) {
	p := &e.probe
	if !p.active {
		return 0, 0
	}
	if now >= p.end {
		if p.sentPackets >= 5 {
			p.active, p.done = false, true
			return 0, 0
		}
		return 5 - p.sentPackets, paddingSize // too few packets to measure
	}
	want := p.rate * (now - p.start) / 1_000_000 / 8
	need := want - int64(p.sentBytes)
	if need <= 0 {
		return 0, 0
	}
	n := int((need + paddingSize - 1) / paddingSize)
	return min(n, probeMaxPad), paddingSize
}

func (e *Estimator) probeArrival(seq uint16, at int64, size int) {
	p := &e.probe
	// The received rate counts every byte but the first arrival's.
	switch {
	case p.recvPackets == 0:
		p.firstArr, p.firstSize = at, size
	case at < p.firstArr:
		p.recvBytes += p.firstSize
		p.firstArr, p.firstSize = at, size
	default:
		p.recvBytes += size
	}
	p.recvPackets++
	p.lastArr = max(p.lastArr, at)
	if p.hasLast && seq == p.lastSeq {
		p.reported = 1
	}
}

// finishProbe evaluates a probe once its last packet was reported
// (received or not): the estimate rises to what the receiver got, if that
// is more.
func (e *Estimator) finishProbe(now int64) {
	p := &e.probe
	if !p.done || p.id == 0 {
		return
	}
	lastReported := p.reported == 1 || !e.hist[p.lastSeq%histSize].valid
	if !lastReported && now-p.end < 1_000_000 {
		return
	}
	defer func() { *p = cluster{id: p.id} }()
	e.probeEnd = now
	if p.sentPackets < 5 || p.recvPackets < p.sentPackets*8/10 || p.lastSend <= p.firstSend || p.lastArr <= p.firstArr {
		return
	}
	sendRate := float64(p.sentBytes-p.lastSize) * 8e6 / float64(p.lastSend-p.firstSend)
	recvRate := float64(p.recvBytes) * 8e6 / float64(p.lastArr-p.firstArr)
	got := min(sendRate, recvRate)
	if recvRate >= 0.9*sendRate && got >= 0.9*float64(p.rate) || got*0.95 > 1.1*e.estimate {
		e.nextProbe = now + probeMinGap // it found more room: go on soon
	}
	if got*0.95 > e.estimate && !e.Congested(now, 500_000) {
		e.estimate = min(got*0.95, float64(e.cfg.Max))
		e.lastIncr = now
	}
}
