package rtpcore

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/hayate-sfu/hayate/media"
)

// RTCP packet types and feedback formats Hayate reads and writes.
const (
	rtcpSR    = 200 // RFC 3550 §6.4.1
	rtcpRR    = 201 // RFC 3550 §6.4.2
	rtcpRTPFB = 205 // RFC 4585 §6.2
	rtcpPSFB  = 206 // RFC 4585 §6.3
	fmtNACK   = 1   // generic NACK, RFC 4585 §6.2.1
	fmtTWCC   = 15  // transport feedback, draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1
	fmtPLI    = 1   // picture loss indication, RFC 4585 §6.3.1
	fmtFIR    = 4   // full intra request, RFC 5104 §4.3.1
	fmtAFB    = 15  // application layer feedback (REMB), RFC 4585 §6.4
)

// pliInterval is the least time between two PLIs Hayate sends for one track:
// many subscribers asking at once make one request.
const pliInterval = 300 * time.Millisecond

// handleRTCP decrypts a compound RTCP packet from t and acts on its parts:
// a publisher's SR is recorded (for our receiver reports) and forwarded to
// its subscribers; a subscriber's NACK is answered from the packet cache,
// its PLI or FIR becomes a PLI to the publisher. Receiver reports from
// subscribers are read and dropped (each subscriber's loss is its own).
// Parsing is by hand on the decrypted bytes: nothing is allocated.
func (s *shard) handleRTCP(t *Transport, b []byte) {
	t.rmu.Lock()
	plain, err := t.dec.DecryptRTCP(b[:0], b, &t.rchdr)
	t.rmu.Unlock()
	if err != nil {
		s.countDecryptError(err)
		return
	}
	if !t.dtlsDone.Load() {
		t.releaseDTLS()
	}
	for len(plain) >= 4 {
		size := (int(binary.BigEndian.Uint16(plain[2:4])) + 1) * 4
		if plain[0]>>6 != 2 || size > len(plain) {
			s.stats.DropMalformed.Add(1)
			return
		}
		s.rtcpPacket(t, plain[:size])
		plain = plain[size:]
	}
}

func (s *shard) rtcpPacket(t *Transport, p []byte) {
	count := int(p[0] & 0x1f)
	switch p[1] {
	case rtcpSR:
		if len(p) < 28 {
			return
		}
		pt, ly := t.layerOf(binary.BigEndian.Uint32(p[4:8]))
		if pt == nil {
			return
		}
		t.rmu.Lock()
		ly.rx.lastSR = binary.BigEndian.Uint32(p[10:14])
		ly.rx.lastSRAt = s.now
		t.rmu.Unlock()
		for _, d := range *pt.downs.Load() {
			if s.forwardSR(d, ly, p) {
				s.stats.SRsForwarded.Add(1)
			}
		}
	case rtcpRTPFB:
		if len(p) < 12 {
			return
		}
		switch count {
		case fmtNACK:
			if len(p) < 16 {
				return
			}
			d := t.down(binary.BigEndian.Uint32(p[8:12]))
			if d == nil {
				return
			}
			s.stats.NACKsReceived.Add(1)
			for fci := p[12:]; len(fci) >= 4; fci = fci[4:] {
				pid := binary.BigEndian.Uint16(fci[0:2])
				blp := binary.BigEndian.Uint16(fci[2:4])
				s.retransmit(d, pid)
				for i := range 16 {
					if blp&(1<<i) != 0 {
						s.retransmit(d, pid+uint16(i)+1)
					}
				}
			}
		case fmtTWCC:
			s.onTransportFeedback(t, unpad(p)[12:])
		}
	case rtcpPSFB:
		if len(p) < 12 {
			return // shorter than the feedback header (RFC 4585 §6.1)
		}
		switch count {
		case fmtPLI:
			if d := t.down(binary.BigEndian.Uint32(p[8:12])); d != nil {
				s.stats.PLIsReceived.Add(1)
				d.keyFrameLayer().requestKeyFrame(s)
			}
		case fmtFIR: // RFC 5104 §4.3.1: FCI entries of SSRC and sequence number
			for fci := p[12:]; len(fci) >= 8; fci = fci[8:] {
				if d := t.down(binary.BigEndian.Uint32(fci[0:4])); d != nil {
					s.stats.PLIsReceived.Add(1)
					d.keyFrameLayer().requestKeyFrame(s)
				}
			}
		case fmtAFB:
			s.onREMB(t, p[12:])
		}
	}
}

// unpad strips RTCP padding (RFC 3550 §6.4.1) from one packet.
func unpad(p []byte) []byte {
	if p[0]&0x20 != 0 && len(p) > 12 {
		if n := int(p[len(p)-1]); n > 0 && n <= len(p)-12 {
			return p[:len(p)-n]
		}
	}
	return p
}

// keyFrameLayer is the layer a subscriber's key frame request is for: the
// one it receives, else the one it waits for.
func (d *downTrack) keyFrameLayer() *layer {
	l := d.current.Load()
	if l < 0 {
		l = max(min(d.target.Load(), int32(len(d.pt.layers)-1)), 0)
	}
	return d.pt.layers[l]
}

// forwardSR sends a publisher's sender report of layer ly to d's
// subscriber with the sender info only (RC = 0: the report blocks describe
// what the publisher receives). For a simulcast track only the layer d
// receives is reported, under d's SSRC and with its RTP timestamp
// rewritten, so that the NTP mapping (lip sync) holds for the subscriber.
func (s *shard) forwardSR(d *downTrack, ly *layer, p []byte) bool {
	sub := d.sub
	if !sub.ready.Load() {
		return false
	}
	to, ok := sub.remote()
	if !ok {
		return false
	}
	sub.smu.Lock()
	defer sub.smu.Unlock()
	var tsOff uint32
	if d.pt.simulcast {
		if int(d.f.cur) != ly.index {
			return false
		}
		tsOff = d.f.segs[d.f.segID%nSegments].tsOff
	}
	b := append(s.slot(), p[:28]...)
	b[0] = 0x80
	binary.BigEndian.PutUint16(b[2:4], 6)
	binary.BigEndian.PutUint32(b[4:8], d.pt.SSRC)
	binary.BigEndian.PutUint32(b[16:20], binary.BigEndian.Uint32(p[16:20])+tsOff)
	return s.sealRTCP(sub, to, b)
}

// retransmit resends a cached packet to the subscriber that lost it,
// rewritten as it was first sent: in its RTX stream when one was
// negotiated (RFC 4588), else in the original stream.
func (s *shard) retransmit(d *downTrack, seq uint16) {
	sub := d.sub
	if !sub.ready.Load() {
		return
	}
	to, ok := sub.remote()
	if !ok {
		return
	}
	sub.smu.Lock()
	defer sub.smu.Unlock()
	ly, in, sg, ok := d.lookup(seq, s.now)
	if !ok {
		return
	}
	cache := ly.cache.Load()
	if cache == nil {
		return
	}
	pkt, ok := cache.Load(in, s.scratch[:0])
	if !ok {
		return
	}
	hlen, plen, ok := rtpLengths(pkt)
	if !ok {
		return
	}
	pp := pendingPacket{pt: d.pt, layer: int8(ly.index), plain: pkt, hlen: hlen, plen: plen, seq: in,
		ts: binary.BigEndian.Uint32(pkt[4:8]), desc: d.pt.parseDescriptor(pkt[hlen : hlen+plen])}
	h := rtpHead{pt: pkt[1] & 0x7f, marker: pkt[1]&0x80 != 0, padding: pkt[0]&0x20 != 0,
		seq: in + sg.seqOff, ts: pp.ts + sg.tsOff, ssrc: d.pt.SSRC}
	if d.rtxPT != 0 {
		h.padding = false
		ok = s.sendRTX(d, to, h, pkt[hlen:hlen+plen], &pp.desc, sg)
	} else {
		ok = s.sendRTP(sub, to, h, pkt[hlen:], &pp, sg)
	}
	if ok {
		s.stats.Retransmitted.Add(1)
	}
}

// sendRTCP builds an RTCP packet with build into a send slot, encrypts it
// for d and queues it.
func (s *shard) sendRTCP(d *Transport, build func([]byte) []byte) bool {
	if !d.ready.Load() {
		return false
	}
	to, ok := d.remote()
	if !ok {
		return false
	}
	slot := build(s.slot())
	d.smu.Lock()
	defer d.smu.Unlock()
	return s.sealRTCP(d, to, slot)
}

// commitRTCP encrypts an RTCP packet built in a send slot for d and queues
// it.
func (s *shard) commitRTCP(d *Transport, slot []byte) bool {
	to, ok := d.remote()
	if !ok || !d.ready.Load() {
		return false
	}
	d.smu.Lock()
	defer d.smu.Unlock()
	return s.sealRTCP(d, to, slot)
}

// sealRTCP encrypts the RTCP packet in slot for d and queues it; called
// under d.smu.
func (s *shard) sealRTCP(d *Transport, to netip.AddrPort, slot []byte) bool {
	out, err := d.enc.EncryptRTCP(slot[:0], slot, &d.schdr)
	if err != nil || cap(out) != cap(slot) {
		return false
	}
	s.sb.Commit(out, to)
	d.bytesOut.Add(uint64(len(out)))
	return true
}

// mayPLI reports whether a PLI for the layer may go at now (ns), and if
// so records it: at most one per pliInterval, whoever asks.
func (ly *layer) mayPLI(now int64) bool {
	last := ly.lastPLI.Load()
	return now-last >= pliInterval.Nanoseconds() && ly.lastPLI.CompareAndSwap(last, now)
}

// requestKeyFrame sends a PLI for the layer to its publisher, at most once
// per pliInterval, and reports whether it did. On a receive loop (s != nil)
// the PLI joins the loop's batch; elsewhere it is written at once.
func (ly *layer) requestKeyFrame(s *shard) bool {
	owner := ly.pt.owner
	ssrc := ly.ssrc.Load()
	if ly.pt.Kind != media.Video || !owner.ready.Load() || ssrc == 0 {
		return false
	}
	// On a receive loop the batch's time serves (this runs for every
	// packet of a layer while a key frame is wanted); 0 before a loop's
	// first batch.
	var now int64
	if s != nil {
		now = s.now
	}
	if now == 0 {
		now = time.Now().UnixNano()
	}
	if !ly.mayPLI(now) {
		return false
	}
	build := func(b []byte) []byte {
		b = append(b, 0x80|fmtPLI, rtcpPSFB, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0)
		binary.BigEndian.PutUint32(b[4:8], owner.ssrc)
		binary.BigEndian.PutUint32(b[8:12], ssrc)
		return b
	}
	if s != nil {
		if s.sendRTCP(owner, build) {
			s.stats.PLIsSent.Add(1)
			return true
		}
		return false
	}
	if owner.writeRTCP(build) {
		owner.e.stats.PLIsSent.Add(1)
		return true
	}
	return false
}

// writeRTCP encrypts and writes one RTCP packet at once, off the receive
// loops (timers, subscription changes).
func (t *Transport) writeRTCP(build func([]byte) []byte) bool {
	to, ok := t.remote()
	io := t.io.Load()
	if !ok || io == nil || !t.ready.Load() {
		return false
	}
	buf := build(make([]byte, 0, 1500))
	t.smu.Lock()
	out, err := t.enc.EncryptRTCP(nil, buf, &t.schdr)
	t.smu.Unlock()
	if err != nil {
		return false
	}
	return (*io).WriteTo(out, to) == nil
}

// sendReceiverReports sends one RR with a report block per published track
// (RFC 3550 §6.4.2, loss computed as in Appendix A.3), so the publisher's
// congestion control sees its loss to us.
func (t *Transport) sendReceiverReports(now time.Time) {
	pubs := *t.pubs.Load()
	if len(pubs) == 0 {
		return
	}
	t.rmu.Lock()
	blocks := make([]byte, 0, 24*4)
	for _, pt := range pubs {
		for _, ly := range pt.layers {
			if len(blocks) >= 24*31 {
				break
			}
			r := &ly.rx
			if !r.started {
				continue
			}
			extMax := r.cycles + uint32(r.max)
			expected := extMax - uint32(r.base) + 1
			lost := int64(expected) - int64(r.received)
			expInt := expected - r.expectedPrior
			recInt := r.received - r.receivedPrior
			r.expectedPrior, r.receivedPrior = expected, r.received
			var fraction uint8
			if lostInt := int64(expInt) - int64(recInt); expInt > 0 && lostInt > 0 {
				fraction = uint8(lostInt << 8 / int64(expInt))
			}
			lost = max(min(lost, 0x7fffff), -0x800000)
			var b [24]byte
			binary.BigEndian.PutUint32(b[0:4], ly.ssrc.Load())
			binary.BigEndian.PutUint32(b[4:8], uint32(fraction)<<24|uint32(lost)&0xffffff)
			binary.BigEndian.PutUint32(b[8:12], extMax)
			if r.lastSRAt != 0 {
				binary.BigEndian.PutUint32(b[16:20], r.lastSR)
				dlsr := time.Duration(now.UnixNano() - r.lastSRAt)
				binary.BigEndian.PutUint32(b[20:24], uint32(dlsr*65536/time.Second))
			}
			blocks = append(blocks, b[:]...)
		}
	}
	t.rmu.Unlock()
	n := len(blocks) / 24
	if n == 0 {
		return
	}
	if t.writeRTCP(func(b []byte) []byte {
		b = append(b, 0x80|byte(n), rtcpRR, 0, 0, 0, 0, 0, 0)
		binary.BigEndian.PutUint16(b[2:4], uint16(1+6*n))
		binary.BigEndian.PutUint32(b[4:8], t.ssrc)
		return append(b, blocks...)
	}) {
		t.e.stats.RRsSent.Add(1)
	}
}
