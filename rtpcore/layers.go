package rtpcore

import (
	"sync/atomic"

	"github.com/hayate-sfu/hayate/media"
	"github.com/hayate-sfu/hayate/rtpcore/codecs"
	"github.com/hayate-sfu/hayate/rtpcore/packetcache"
)

// Simulcast forwarding.
//
// A published track has one layer per stream the publisher sends: one for
// a plain track, one per rid (r0, r1, r2) for a simulcast track, whose
// SSRCs are learnt from the rtp-stream-id header extension (RFC 8852). Each
// subscriber of a track has a downTrack: the layer it wants (its cap, set
// by signal, and within it the choice of congestion control) and the
// forwarding state of its one outgoing stream, which only the forwarding
// path touches (under the subscriber's smu). A switch waits for a key
// frame of the wanted layer (asking the publisher for one) and then
// rewrites sequence numbers, timestamps and VP8/VP9 picture IDs with new
// offsets, so that the subscriber sees one continuous stream: its decoder
// never resets and its NACKs map back to the packet cache (the ring of
// recent sequence numbers below).

// layer is one stream of a published track.
type layer struct {
	pt    *pubTrack
	index int
	rid   string
	ssrc  atomic.Uint32 // 0 until the first packet names its rid
	// cache holds the last packets for NACKs; made on the first packet.
	cache   atomic.Pointer[packetcache.Cache]
	lastPLI atomic.Int64
	// wantKey asks for a key frame on the next packet of the layer (sent
	// from the packet path, so the publisher has its keys).
	wantKey atomic.Bool
	// apiKeys is how many PLIs the API's RequestKeyFrame may still send
	// for the layer, apiKeyAt the time (ns) of the last (keyrequest.go).
	apiKeys  atomic.Int32
	apiKeyAt atomic.Int64
	rx       rxStats // guarded by owner.rmu
	rxBytes  uint64  // SRTP bytes received, guarded by owner.rmu
	// The layer's bitrate, measured over rateWindow (meter guarded by
	// owner.rmu), and the wall time (ns) of its last packet.
	meter   rateMeter
	bitrate atomic.Int64
	lastAt  atomic.Int64
}

// rateWindow is the period of a layer's bitrate measurement.
const rateWindow = 500_000_000

// rateMeter measures bytes per rateWindow.
type rateMeter struct {
	start int64
	bytes int64
}

// add counts n bytes at now (ns) and returns the rate over the last
// window when one closes (bits per second), else -1.
func (m *rateMeter) add(now int64, n int) int64 {
	if m.start == 0 {
		m.start = now
	}
	m.bytes += int64(n)
	if d := now - m.start; d >= rateWindow {
		r := m.bytes * 8 * 1_000_000_000 / d
		m.start, m.bytes = now, 0
		return r
	}
	return -1
}

// active reports whether the layer carried packets lately.
func (ly *layer) active(now int64) bool {
	at := ly.lastAt.Load()
	return at != 0 && now-at < layerIdle
}

// layerIdle is how long a layer may be silent before it counts as
// stopped (the publisher's encoder or its congestion control dropped it).
const layerIdle = 1_500_000_000

// packetCache returns the layer's cache, making it for video on first use
// (called from the publisher's receive loop under owner.rmu).
func (ly *layer) packetCache() *packetcache.Cache {
	c := ly.cache.Load()
	if c == nil && ly.pt.Kind == media.Video {
		c = packetcache.New(videoCacheSize)
		ly.cache.Store(c)
	}
	return c
}

// layerOf returns the published track and layer of an SSRC.
func (t *Transport) layerOf(ssrc uint32) (*pubTrack, *layer) {
	for _, pt := range *t.pubs.Load() {
		for _, ly := range pt.layers {
			if ly.ssrc.Load() == ssrc {
				return pt, ly
			}
		}
	}
	return nil, nil
}

// bindRID gives ssrc to the simulcast layer named rid, if that layer has
// no SSRC yet (the first packet of a stream carries its rid, RFC 8852 §3).
func (t *Transport) bindRID(ssrc uint32, rid []byte) (*pubTrack, *layer) {
	for _, pt := range *t.pubs.Load() {
		if !pt.simulcast {
			continue
		}
		for _, ly := range pt.layers {
			if ly.rid == string(rid) && ly.ssrc.CompareAndSwap(0, ssrc) {
				return pt, ly
			}
		}
	}
	return nil, nil
}

// nSegments is how many past layer switches a downTrack remembers for
// NACKs, and ringLen how many past outgoing sequence numbers.
const (
	nSegments = 16
	ringLen   = 1024
)

// segment is the rewrite of one stretch of a subscriber's stream, from
// one layer: outgoing = incoming + offset.
type segment struct {
	id     uint16
	layer  int8
	seqOff uint16
	tsOff  uint32
	picOff uint16
	tl0Off uint8
}

// ringEntry maps an outgoing sequence number to its source, with the
// time (ms, wrapping) it was last retransmitted.
type ringEntry struct {
	out, in, seg uint16
	ok           bool
	rtxAt        uint32
}

// rtxGap is the least time between two retransmissions of one packet:
// a receiver repeats its NACK until the packet comes, and on a congested
// link a retransmission per NACK would feed the congestion.
const rtxGap = 50

// downTrack is one subscriber of one published track.
type downTrack struct {
	pt  *pubTrack
	sub *Transport
	// RTX stream to the subscriber (0: retransmit in the stream itself).
	rtxSSRC uint32
	rtxPT   uint8
	// maxLayer is the cap (signal: the viewer's rid, the API), target the
	// layer chosen within it (congestion control, what the publisher
	// sends), current the layer being forwarded (mirrors f.cur).
	maxLayer atomic.Int32
	target   atomic.Int32
	current  atomic.Int32
	f        forwardState // guarded by sub.smu
}

// forwardState is a downTrack's outgoing stream.
type forwardState struct {
	cur      int8 // layer forwarded, -1: none
	sent     bool
	lastSeq  uint16
	lastTS   uint32
	lastAt   int64 // wall ns of the newest packet forwarded
	lastPic  uint16
	picValid bool
	lastTL0  uint8
	segID    uint16
	segs     [nSegments]segment
	ring     *[ringLen]ringEntry // simulcast only
	rtxSeq   uint16
	// A switch to report once the lock is released: from which layer,
	// and whether the publisher caused it.
	switchedFrom      int8
	switchPending     bool
	switchCauseBySend bool
}

func newDownTrack(pt *pubTrack, sub *Transport, tr media.Track) *downTrack {
	d := &downTrack{pt: pt, sub: sub, rtxSSRC: tr.RTXSSRC, rtxPT: tr.RTXPayloadType}
	d.f.cur = -1
	d.current.Store(media.LayerNone)
	d.maxLayer.Store(media.LayerMax)
	top := int32(len(pt.layers) - 1)
	d.target.Store(top)
	if pt.simulcast {
		d.f.ring = new([ringLen]ringEntry)
		d.f.cur = -1
	} else {
		d.f.cur = 0 // a single stream is forwarded as it comes
		d.current.Store(0)
	}
	return d
}

// want is the layer the subscriber should receive now.
func (d *downTrack) want() int8 {
	return int8(min(d.target.Load(), d.maxLayer.Load()))
}

// concerns reports whether a packet of layer l may be admitted or change
// d's state, read without the subscriber's lock: it is of the layer being
// forwarded, or of the one wanted, or the subscriber wants none and one
// is still forwarded (admit notes the stop). admit decides under the lock
// on what concerns lets through; what it turns away, admit would turn
// away without a trace. current changes only in admit, on the forwarding
// path of d's home shard, so it is exact here; the wanted layer may be
// set meanwhile by another goroutine, and a packet turned away on the
// older value is as if the change came after it.
func (d *downTrack) concerns(l int8) bool {
	cur := int8(d.current.Load())
	if l == cur {
		return true
	}
	want := d.want()
	return l == want || want < 0 && cur >= 0
}

// admit decides whether packet p (of layer p.layer) goes to this
// subscriber, switching layers at a key frame of the wanted one, and
// returns the segment whose rewrite applies. Called under sub.smu.
func (d *downTrack) admit(p *pendingPacket, now int64) (*segment, bool) {
	f := &d.f
	want := d.want()
	if want < 0 {
		if f.cur >= 0 {
			d.noteSwitch(-1, false)
		}
		return nil, false
	}
	if p.layer == f.cur {
		if want != f.cur {
			d.pt.layers[want].wantKey.Store(true)
		}
		return &f.segs[f.segID%nSegments], true
	}
	if p.layer != want {
		return nil, false
	}
	if !p.desc.KeyStart {
		d.pt.layers[want].wantKey.Store(true)
		return nil, false
	}
	// A key frame of the wanted layer: switch here.
	f.segID++
	sg := &f.segs[f.segID%nSegments]
	*sg = segment{id: f.segID, layer: want}
	if f.sent {
		sg.seqOff = f.lastSeq + 1 - p.seq
		ticks := uint32((now - f.lastAt) * int64(d.pt.ClockRate) / 1_000_000_000)
		sg.tsOff = f.lastTS + max(ticks, 1) - p.ts
		if p.desc.PicIDOff > 0 && f.picValid {
			sg.picOff = (f.lastPic + 1 - p.desc.PicID) & p.desc.PicIDMask()
		}
		if p.desc.TL0Off > 0 {
			sg.tl0Off = f.lastTL0 + 1 - p.desc.TL0
		}
	}
	// The publisher's doing when the layer left had stopped.
	d.noteSwitch(want, f.cur >= 0 && !d.pt.layers[f.cur].active(now))
	return sg, true
}

// noteSwitch records a switch to layer to, for the report made once the
// subscriber's lock is released.
func (d *downTrack) noteSwitch(to int8, bySender bool) {
	f := &d.f
	if !f.switchPending {
		f.switchedFrom = f.cur
	}
	f.switchPending, f.switchCauseBySend = true, bySender
	f.cur = to
	d.current.Store(int32(to))
}

// forwarded updates the stream's state after packet p went out with
// segment sg as outgoing sequence number seq and timestamp ts.
func (d *downTrack) forwarded(p *pendingPacket, sg *segment, seq uint16, ts uint32, now int64) {
	f := &d.f
	if !f.sent || seq != f.lastSeq && seq-f.lastSeq < 1<<15 {
		f.lastSeq = seq
		if p.desc.PicIDOff > 0 {
			f.lastPic = (p.desc.PicID + sg.picOff) & p.desc.PicIDMask()
			f.picValid = true
		}
		if p.desc.TL0Off > 0 {
			f.lastTL0 = p.desc.TL0 + sg.tl0Off
		}
	}
	if !f.sent || int32(ts-f.lastTS) > 0 {
		f.lastTS = ts
	}
	f.lastAt, f.sent = now, true
	if f.ring != nil {
		f.ring[seq%ringLen] = ringEntry{out: seq, in: p.seq, seg: sg.id, ok: true}
	}
}

// lookup maps an outgoing sequence number back to its layer, incoming
// sequence number and segment, for a NACK at now (ns). A packet of a
// stretch before the last switch is not sent again (the subscriber's
// decoder restarted at the switch's key frame), nor one retransmitted
// less than rtxGap ago. Called under sub.smu.
func (d *downTrack) lookup(seq uint16, now int64) (*layer, uint16, *segment, bool) {
	f := &d.f
	if f.ring == nil {
		return d.pt.layers[0], seq, &f.segs[0], true
	}
	e := &f.ring[seq%ringLen]
	sg := &f.segs[e.seg%nSegments]
	if !e.ok || e.out != seq || sg.id != e.seg || e.seg != f.segID || sg.layer < 0 || int(sg.layer) >= len(d.pt.layers) {
		return nil, 0, nil, false
	}
	ms := uint32(now / 1_000_000)
	if e.rtxAt != 0 && ms-e.rtxAt < rtxGap {
		return nil, 0, nil, false
	}
	e.rtxAt = ms | 1
	return d.pt.layers[sg.layer], e.in, sg, true
}

// reportSwitch tells the subscriber's events of a switch noted by admit;
// called without locks.
func (d *downTrack) reportSwitch(from, to int8, bySender bool) {
	d.sub.e.stats.LayerSwitches.Add(1)
	if cc := d.sub.cc.Load(); cc != nil {
		d.sub.e.cfg.Log.Debug("simulcast layer switched", "connection_id", d.sub.id, "sender", d.pt.owner.id, "from", from, "to", to,
			"by_sender", bySender, "estimate", cc.estimate.Load())
	}
	ev, ok := d.sub.ev.(media.LayerEvents)
	if !ok {
		return
	}
	cause := media.ByReceiver
	if bySender {
		cause = media.BySender
	}
	ev.Switched(d.pt.owner.id, d.pt.SSRC, int(from), int(to), cause)
}

// takeSwitch returns a switch noted under sub.smu and clears it.
func (f *forwardState) takeSwitch() (from, to int8, bySender, ok bool) {
	if !f.switchPending || f.switchedFrom == f.cur {
		f.switchPending = false
		return 0, 0, false, false
	}
	f.switchPending = false
	return f.switchedFrom, f.cur, f.switchCauseBySend, true
}

// LimitLayer implements media.LayerTransport.
func (t *Transport) LimitLayer(src media.Transport, ssrc uint32, layer int) {
	if d := t.downOf(src, ssrc); d != nil {
		d.maxLayer.Store(int32(max(min(layer, media.LayerMax), media.LayerNone)))
		t.chooseLayers(t.e.now())
	}
}

// Layer implements media.LayerTransport.
func (t *Transport) Layer(src media.Transport, ssrc uint32) int {
	if d := t.downOf(src, ssrc); d != nil {
		return int(d.current.Load())
	}
	return media.LayerNone
}

// downOf returns the downTrack of src's track ssrc.
func (t *Transport) downOf(src media.Transport, ssrc uint32) *downTrack {
	s, ok := src.(*Transport)
	if !ok {
		return nil
	}
	for _, d := range *t.downs.Load() {
		if d.pt.owner == s && d.pt.SSRC == ssrc {
			return d
		}
	}
	return nil
}

// down returns the downTrack whose outgoing stream (or its RTX) has ssrc.
func (t *Transport) down(ssrc uint32) *downTrack {
	for _, d := range *t.downs.Load() {
		if d.pt.SSRC == ssrc || d.rtxSSRC != 0 && d.rtxSSRC == ssrc {
			return d
		}
	}
	return nil
}

// Layer choice (congestion control and what the publisher sends).
const (
	// fitUp: a layer is chosen when its bitrate fits in this share of the
	// estimate. The current layer is kept while it fits in the estimate,
	// and while it fits in fitStay times the estimate unless the link
	// showed congestion (overuse or high loss) within congestedFor: an
	// estimate that dips after a probe must not move the viewer down.
	fitUp        = 0.85
	fitStay      = 1.4
	congestedFor = 1_500_000 // µs
	// calmBeforeUp: no layer goes up within this of congestion.
	calmBeforeUp = 3_000_000 // µs
	// probeFactor: a probe aims at the next layer's bitrate over this.
	probeFactor = 0.8
)

// fairShare splits avail (bits/s) among the simulcast tracks of downs by
// max-min fairness: a track whose cap (or what its publisher sends) needs
// less than an equal share takes only what it needs, and the rest is
// shared among the others. A spotlight viewer's unfocused tracks, capped
// at r0, then leave the focused ones room for their layer. It returns the
// share of a track that needs more than that (every track's layer choice
// uses it: one whose need is lower fits within it anyway).
func fairShare(downs []*downTrack, avail int64, nSim int, now int64) int64 {
	level := avail / int64(nSim)
	for range nSim {
		satisfied, rest := int64(0), int64(0)
		for _, d := range downs {
			if !d.pt.simulcast {
				continue
			}
			if n := d.need(now); n <= level {
				satisfied += n
			} else {
				rest++
			}
		}
		if rest == 0 {
			return avail
		}
		next := (avail - satisfied) / rest
		if next <= level {
			return level
		}
		level = next
	}
	return level
}

// need is the bitrate d's best layer within its cap needs to be chosen (the
// layer's rate over fitUp); 0 when nothing under the cap flows.
func (d *downTrack) need(now int64) int64 {
	for i := min(int(d.maxLayer.Load()), len(d.pt.layers)-1); i >= 0; i-- {
		if ly := d.pt.layers[i]; ly.active(now) {
			return int64(float64(ly.bitrate.Load()) / fitUp)
		}
	}
	return 0
}

// chooseLayers sets the target layer of each of t's simulcast downTracks:
// the best layer within its cap that the publisher sends and, when t has a
// bandwidth estimate (and adaptation is on), that fits its share of it.
// When a better layer is kept out only by the estimate, it asks for a
// probe.
func (t *Transport) chooseLayers(now int64) {
	downs := *t.downs.Load()
	// The share of each simulcast track: what the others do not use.
	nSim, fixed := 0, int64(0)
	for _, d := range downs {
		if d.pt.simulcast {
			nSim++
		} else {
			fixed += d.pt.layers[0].bitrate.Load()
		}
	}
	if nSim == 0 {
		return
	}
	var est int64 = -1
	congested, unsettled := false, false
	cc := t.cc.Load()
	if t.e.cfg.FixedLayers {
		cc = nil // the cap alone chooses
	}
	if cc != nil {
		est = cc.estimate.Load()
		t.smu.Lock()
		congested = cc.est.Congested(now/1000, congestedFor)
		unsettled = cc.est.Congested(now/1000, calmBeforeUp)
		t.smu.Unlock()
	}
	share := int64(-1)
	if est >= 0 {
		share = fairShare(downs, max(est-fixed, 0), nSim, now)
	}
	var probe int64
	for _, d := range downs {
		if !d.pt.simulcast {
			continue
		}
		ceiling := min(int(d.maxLayer.Load()), len(d.pt.layers)-1)
		if ceiling < 0 {
			d.target.Store(media.LayerNone)
			continue
		}
		cur := int(d.current.Load())
		best, lowest, next := -1, -1, -1
		for i := 0; i <= ceiling; i++ {
			ly := d.pt.layers[i]
			if !ly.active(now) {
				continue
			}
			if lowest < 0 {
				lowest = i
			}
			rate := ly.bitrate.Load()
			fit := fitUp
			switch {
			case i <= cur && congested:
				fit = 1
			case i <= cur:
				fit = fitStay
			case cur >= 0 && unsettled:
				fit = 0 // no way up yet
			}
			if share < 0 || float64(rate) <= fit*float64(share) {
				best = i
			} else if next < 0 {
				next = i
			}
		}
		if best < 0 {
			best = lowest
		}
		if best < 0 {
			// Nothing the publisher sends fits under the cap: the lowest
			// it sends, whatever it is (video rather than none).
			for i := range d.pt.layers {
				if d.pt.layers[i].active(now) {
					best = i
					break
				}
			}
		}
		if best < 0 {
			best = ceiling // nothing flows yet: wait for the cap's layer
		}
		d.target.Store(int32(best))
		if next > best && share >= 0 {
			need := int64(float64(d.pt.layers[next].bitrate.Load())/probeFactor) + fixed
			probe = max(probe, need*int64(nSim))
		}
	}
	if probe > 0 && cc != nil {
		t.smu.Lock()
		cc.est.StartProbe(now/1000, probe)
		t.smu.Unlock()
	}
}

// maxCodecLayers bounds the rids of a track.
const maxCodecLayers = 3

// parseDescriptor reads a video packet's payload descriptor, for the
// layer switches of simulcast tracks only.
func (pt *pubTrack) parseDescriptor(payload []byte) codecs.Descriptor {
	if !pt.simulcast {
		return codecs.Descriptor{}
	}
	return codecs.Parse(pt.codec, payload)
}
