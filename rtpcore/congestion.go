package rtpcore

import (
	"encoding/binary"
	"sync/atomic"
	"time"

	"github.com/hayate-sfu/hayate/media"
	"github.com/hayate-sfu/hayate/rtpcore/bwe"
	"github.com/hayate-sfu/hayate/rtpcore/twcc"
)

// Congestion control towards a subscriber: every packet sent to it carries
// a transport-wide sequence number (when its answer accepted transport-cc),
// its transport feedback feeds a bandwidth estimator (package bwe), and the
// estimate picks the simulcast layers it receives (chooseLayers). A
// subscriber that only sends goog-remb gives its own estimate.
//
// Towards a publisher that accepted transport-cc, Hayate is the receiver:
// it records the arrival of each packet and sends transport feedback every
// feedbackInterval, so that the publisher's own congestion control (and
// with it the number of simulcast streams it sends) can rise.

// congestion is the congestion control state towards one peer; est and seq
// are guarded by the transport's smu.
type congestion struct {
	twccID   uint8 // extension id to stamp; 0: REMB only
	seq      uint16
	est      *bwe.Estimator
	estimate atomic.Int64
	chosenAt atomic.Int64
}

// Estimator bounds for subscribers.
const (
	initialEstimate = 1_500_000
	// chooseEvery is the least time between two layer choices made on
	// feedback (the janitor also chooses every tick).
	chooseEvery = 100_000_000
	// feedbackInterval is how often transport feedback goes to a
	// publisher.
	feedbackInterval = 50_000_000
)

func newCongestion(twccID uint8) *congestion {
	c := &congestion{twccID: twccID, est: bwe.New(bwe.Config{Initial: initialEstimate})}
	c.estimate.Store(initialEstimate)
	return c
}

// setupCongestion applies an answer's congestion control parameters.
func (t *Transport) setupCongestion(r media.Remote) {
	twccID := uint8(0)
	if r.TransportCC {
		twccID = r.Extensions.TWCC
	}
	if t.cc.Load() == nil && (twccID != 0 || r.REMB) {
		t.cc.Store(newCongestion(twccID))
	}
	t.twccIn.Store(uint32(twccID))
	t.ridExt.Store(uint32(r.Extensions.RID))
	t.levelExt.Store(uint32(r.Extensions.AudioLevel))
}

// Estimate is the bandwidth estimate towards the peer in bits per second,
// or -1 without congestion control.
func (t *Transport) Estimate() int64 {
	if cc := t.cc.Load(); cc != nil {
		return cc.estimate.Load()
	}
	return -1
}

// ICEDurations reports a connection's transport's ICEDurations.
func (e *Engine) ICEDurations(connectionID string) (checking, disconnected time.Duration, ok bool) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	for tr := range e.transports {
		if tr.id == connectionID {
			checking, disconnected = tr.ICEDurations()
			return checking, disconnected, true
		}
	}
	return 0, 0, false
}

// Congestion reports the bandwidth estimate towards a connection (-1
// without congestion control) and the simulcast layer it receives of each
// track it subscribes to, by the track's SSRC.
func (e *Engine) Congestion(connectionID string) (estimate int64, layers map[uint32]int, ok bool) {
	e.mu.RLock()
	var t *Transport
	for tr := range e.transports {
		if tr.id == connectionID {
			t = tr
		}
	}
	e.mu.RUnlock()
	if t == nil {
		return 0, nil, false
	}
	layers = map[uint32]int{}
	for _, d := range *t.downs.Load() {
		layers[d.pt.SSRC] = int(d.current.Load())
	}
	return t.Estimate(), layers, true
}

// onTransportFeedback takes a subscriber's transport feedback (FCI).
func (s *shard) onTransportFeedback(t *Transport, fci []byte) {
	cc := t.cc.Load()
	if cc == nil || cc.twccID == 0 {
		return
	}
	t.smu.Lock()
	err := cc.est.Feedback(s.now/1000, fci)
	est := cc.est.Estimate()
	t.smu.Unlock()
	if err != nil {
		s.stats.DropMalformed.Add(1)
		return
	}
	s.stats.TWCCReceived.Add(1)
	cc.estimate.Store(est)
	if last := cc.chosenAt.Load(); s.now-last >= chooseEvery && cc.chosenAt.CompareAndSwap(last, s.now) {
		t.chooseLayers(s.now)
	}
}

// onREMB takes a subscriber's receiver estimate (goog-remb, draft-alvestrand-
// rmcat-remb-03 §2.2): "REMB", SSRC count, exponent and mantissa.
func (s *shard) onREMB(t *Transport, fci []byte) {
	cc := t.cc.Load()
	if cc == nil || len(fci) < 8 || string(fci[:4]) != "REMB" {
		return
	}
	v := binary.BigEndian.Uint32(fci[4:8])
	bps := int64(v&0x3ffff) << (v >> 18 & 0x3f)
	t.smu.Lock()
	cc.est.REMB(s.now/1000, bps)
	est := cc.est.Estimate()
	t.smu.Unlock()
	s.stats.REMBReceived.Add(1)
	cc.estimate.Store(est)
	if last := cc.chosenAt.Load(); s.now-last >= chooseEvery && cc.chosenAt.CompareAndSwap(last, s.now) {
		t.chooseLayers(s.now)
	}
}

// recordArrival notes a publisher packet's transport-wide sequence number
// and, every feedbackInterval, queues transport feedback to the publisher.
// Called under t.rmu.
func (s *shard) recordArrival(t *Transport, ssrc uint32) {
	id := uint8(t.twccIn.Load())
	if id == 0 {
		return
	}
	ext := t.rhdr.GetExtension(id)
	if len(ext) < 2 {
		return
	}
	if t.arrivals == nil {
		t.arrivals = new(twcc.Recorder)
	}
	t.arrivals.Record(binary.BigEndian.Uint16(ext), s.now/1000)
	if s.now-t.lastFeedback < feedbackInterval || !t.ready.Load() {
		return
	}
	t.lastFeedback = s.now
	slot := t.arrivals.Build(s.slot(), t.ssrc, ssrc)
	if len(slot) > 0 && s.commitRTCP(t, slot) {
		s.stats.TWCCSent.Add(1)
	}
}
