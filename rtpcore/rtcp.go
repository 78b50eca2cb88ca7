package rtpcore

import (
	"encoding/binary"
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
	fmtPLI    = 1   // picture loss indication, RFC 4585 §6.3.1
	fmtFIR    = 4   // full intra request, RFC 5104 §4.3.1
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
		pt := t.pub(binary.BigEndian.Uint32(p[4:8]))
		if pt == nil {
			return
		}
		t.rmu.Lock()
		pt.rx.lastSR = binary.BigEndian.Uint32(p[10:14])
		pt.rx.lastSRAt = s.now
		t.rmu.Unlock()
		// Subscribers get the sender info only (RC = 0): the report
		// blocks describe what the publisher receives, not them.
		for _, d := range *pt.downs.Load() {
			if s.sendRTCP(d, func(b []byte) []byte {
				b = append(b, p[:28]...)
				b[0] = 0x80
				binary.BigEndian.PutUint16(b[2:4], 6)
				return b
			}) {
				s.stats.SRsForwarded.Add(1)
			}
		}
	case rtcpRTPFB:
		if count != fmtNACK || len(p) < 16 {
			return
		}
		pt := t.source(binary.BigEndian.Uint32(p[8:12]))
		if pt == nil || pt.cache.Load() == nil {
			return
		}
		s.stats.NACKsReceived.Add(1)
		for fci := p[12:]; len(fci) >= 4; fci = fci[4:] {
			pid := binary.BigEndian.Uint16(fci[0:2])
			blp := binary.BigEndian.Uint16(fci[2:4])
			s.retransmit(t, pt, pid)
			for i := range 16 {
				if blp&(1<<i) != 0 {
					s.retransmit(t, pt, pid+uint16(i)+1)
				}
			}
		}
	case rtcpPSFB:
		if len(p) < 12 {
			return // shorter than the feedback header (RFC 4585 §6.1)
		}
		switch count {
		case fmtPLI:
			if pt := t.source(binary.BigEndian.Uint32(p[8:12])); pt != nil {
				s.stats.PLIsReceived.Add(1)
				pt.requestKeyFrame(s)
			}
		case fmtFIR: // RFC 5104 §4.3.1: FCI entries of SSRC and sequence number
			for fci := p[12:]; len(fci) >= 8; fci = fci[8:] {
				if pt := t.source(binary.BigEndian.Uint32(fci[0:4])); pt != nil {
					s.stats.PLIsReceived.Add(1)
					pt.requestKeyFrame(s)
				}
			}
		}
	}
}

// retransmit resends a cached packet to the subscriber that lost it, in the
// original stream (no RTX is negotiated, RFC 4588 is not needed).
func (s *shard) retransmit(d *Transport, pt *pubTrack, seq uint16) {
	if !d.ready.Load() {
		return
	}
	to, ok := d.remote()
	if !ok {
		return
	}
	slot, ok := pt.cache.Load().Load(seq, s.slot())
	if !ok {
		return
	}
	d.smu.Lock()
	out, err := d.enc.EncryptRTP(slot[:0], slot, &d.shdr)
	d.smu.Unlock()
	if err != nil || cap(out) != cap(slot) {
		return
	}
	s.sb.Commit(out, to)
	d.bytesOut.Add(uint64(len(out)))
	s.stats.Retransmitted.Add(1)
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
	out, err := d.enc.EncryptRTCP(slot[:0], slot, &d.schdr)
	d.smu.Unlock()
	if err != nil || cap(out) != cap(slot) {
		return false
	}
	s.sb.Commit(out, to)
	d.bytesOut.Add(uint64(len(out)))
	return true
}

// mayPLI reports whether a PLI for the track may go at now (ns), and if so
// records it: at most one per pliInterval, whoever asks.
func (pt *pubTrack) mayPLI(now int64) bool {
	last := pt.lastPLI.Load()
	return now-last >= pliInterval.Nanoseconds() && pt.lastPLI.CompareAndSwap(last, now)
}

// requestKeyFrame sends a PLI for the track to its publisher, at most once
// per pliInterval, and reports whether it did. On a receive loop (s != nil)
// the PLI joins the loop's batch; elsewhere it is written at once.
func (pt *pubTrack) requestKeyFrame(s *shard) bool {
	owner := pt.owner
	if pt.Kind != media.Video || !owner.ready.Load() {
		return false
	}
	if !pt.mayPLI(time.Now().UnixNano()) {
		return false
	}
	build := func(b []byte) []byte {
		b = append(b, 0x80|fmtPLI, rtcpPSFB, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0)
		binary.BigEndian.PutUint32(b[4:8], owner.ssrc)
		binary.BigEndian.PutUint32(b[8:12], pt.SSRC)
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
	if len(pubs) > 31 {
		pubs = pubs[:31]
	}
	t.rmu.Lock()
	blocks := make([]byte, 0, 24*len(pubs))
	for _, pt := range pubs {
		r := &pt.rx
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
		binary.BigEndian.PutUint32(b[0:4], pt.SSRC)
		binary.BigEndian.PutUint32(b[4:8], uint32(fraction)<<24|uint32(lost)&0xffffff)
		binary.BigEndian.PutUint32(b[8:12], extMax)
		if r.lastSRAt != 0 {
			binary.BigEndian.PutUint32(b[16:20], r.lastSR)
			dlsr := time.Duration(now.UnixNano() - r.lastSRAt)
			binary.BigEndian.PutUint32(b[20:24], uint32(dlsr*65536/time.Second))
		}
		blocks = append(blocks, b[:]...)
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
