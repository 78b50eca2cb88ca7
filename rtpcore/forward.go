package rtpcore

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/pion/srtp/v3"

	"github.com/hayate-sfu/hayate/media"
	"github.com/hayate-sfu/hayate/rtpcore/codecs"
)

// handleRTP decrypts one publisher packet in place and queues it for
// forwarding at the end of the receive batch (forwardPending). A packet of
// a plain track keeps its sequence number, timestamp, SSRC and payload
// type: every connection of a channel is offered the same payload types
// and a subscriber learns the track's SSRC from its offer. A packet of a
// simulcast track is rewritten per subscriber (layers.go).
func (s *shard) handleRTP(t *Transport, b []byte) {
	t.rmu.Lock()
	plain, err := t.dec.DecryptRTP(b[:0], b, &t.rhdr)
	if err != nil {
		t.rmu.Unlock()
		s.countDecryptError(err)
		return
	}
	if !t.dtlsDone.Load() {
		t.releaseDTLS()
	}
	ssrc := t.rhdr.SSRC
	pt, ly := t.layerOf(ssrc)
	if pt == nil {
		if id := uint8(t.ridExt.Load()); id != 0 {
			if rid := t.rhdr.GetExtension(id); len(rid) > 0 {
				pt, ly = t.bindRID(ssrc, rid)
			}
		}
		if pt == nil {
			t.rmu.Unlock()
			s.stats.DropUnknownSSRC.Add(1)
			return
		}
	}
	hlen, plen, ok := rtpLengths(plain)
	if !ok {
		t.rmu.Unlock()
		s.stats.DropMalformed.Add(1)
		return
	}
	if id := uint8(t.levelExt.Load()); id != 0 && pt.Kind == media.Audio {
		pt.noteLevel(t.rhdr.GetExtension(id))
	}
	seq := t.rhdr.SequenceNumber
	ly.rx.update(seq)
	ly.rxBytes += uint64(len(b))
	s.recordArrival(t, ssrc)
	if r := ly.meter.add(s.now, len(plain)+udpOverhead); r >= 0 {
		// A layer's rate goes up at once and down slowly: an encoder's
		// dip must not make a layer look like it fits.
		ly.bitrate.Store(max(r, ly.bitrate.Load()*9/10))
	}
	ly.lastAt.Store(s.now)
	cache := ly.packetCache()
	t.rmu.Unlock()
	s.stats.ReceivedRTP.Add(1)
	if cache != nil {
		cache.Store(seq, plain)
		if ly.wantKey.Load() && ly.requestKeyFrame(s) {
			ly.wantKey.Store(false)
		}
	}
	desc := pt.parseDescriptor(plain[hlen : hlen+plen])
	if ly.apiKeys.Load() > 0 {
		ly.repeatKeyFrame(s, pt.keyStart(desc, plain[hlen:hlen+plen]))
	}
	if s.npending == len(s.pending) {
		s.forwardPending()
	}
	s.pending[s.npending] = pendingPacket{
		pt: pt, layer: int8(ly.index), plain: plain, hlen: hlen, plen: plen,
		seq: seq, ts: binary.BigEndian.Uint32(plain[4:8]), desc: desc,
	}
	s.npending++
}

// rtpLengths reads the header and payload lengths of a plaintext RTP
// packet (RFC 3550 §5.1, RFC 8285 §4.2); padding follows the payload.
func rtpLengths(b []byte) (hlen, plen int, ok bool) {
	if len(b) < 12 {
		return 0, 0, false
	}
	hlen = 12 + 4*int(b[0]&0x0f)
	if b[0]&0x10 != 0 {
		if len(b) < hlen+4 {
			return 0, 0, false
		}
		hlen += 4 + 4*int(binary.BigEndian.Uint16(b[hlen+2:]))
	}
	end := len(b)
	if b[0]&0x20 != 0 && end > hlen {
		end -= int(b[end-1])
	}
	if hlen > end {
		return 0, 0, false
	}
	return hlen, end - hlen, true
}

// pendingPacket is a decrypted publisher packet waiting in its receive
// buffer to be forwarded.
type pendingPacket struct {
	pt    *pubTrack
	layer int8
	plain []byte
	hlen  int // header length
	plen  int // payload length (padding after it)
	seq   uint16
	ts    uint32
	desc  codecs.Descriptor
}

// forwardPending sends the batch's decrypted packets to the subscribers of
// their tracks, subscriber by subscriber: each subscriber's packets of a
// track are queued one after the other, so a video frame's equal-size
// packets to one subscriber leave as one UDP GSO send. The packets are
// first handed to the other shards that own subscribers of their tracks
// (handoff.go), which forward them meanwhile; this shard forwards to its
// own.
func (s *shard) forwardPending() {
	if len(s.e.shards) > 1 {
		for i := range s.npending {
			s.handOff(&s.pending[i])
		}
		s.wakeOthers()
	}
	for i := range s.npending {
		pt := s.pending[i].pt
		if pt == nil {
			continue // forwarded with an earlier packet of its track
		}
		for _, d := range pt.downsOn(s.id) {
			for j := i; j < s.npending; j++ {
				if s.pending[j].pt == pt {
					s.forward(d, &s.pending[j])
				}
			}
		}
		for j := i; j < s.npending; j++ {
			if s.pending[j].pt == pt {
				s.pending[j] = pendingPacket{}
			}
		}
	}
	s.npending = 0
}

// rtpHead is the fixed header Hayate writes on a forwarded packet.
type rtpHead struct {
	pt      uint8
	marker  bool
	padding bool
	seq     uint16
	ts      uint32
	ssrc    uint32
}

// appendHead appends an RTP header (RFC 3550 §5.1) and, when twID is not
// zero, a one-byte-header extension block with the transport-wide sequence
// number twSeq (RFC 8285 §4.2). The publisher's own extensions are not
// forwarded: their ids are the publisher's.
func appendHead(dst []byte, h rtpHead, twID uint8, twSeq uint16) []byte {
	b0 := byte(0x80)
	if h.padding {
		b0 |= 0x20
	}
	if twID != 0 {
		b0 |= 0x10
	}
	b1 := h.pt & 0x7f
	if h.marker {
		b1 |= 0x80
	}
	dst = append(dst, b0, b1, byte(h.seq>>8), byte(h.seq),
		byte(h.ts>>24), byte(h.ts>>16), byte(h.ts>>8), byte(h.ts),
		byte(h.ssrc>>24), byte(h.ssrc>>16), byte(h.ssrc>>8), byte(h.ssrc))
	if twID != 0 {
		dst = append(dst, 0xbe, 0xde, 0, 1, twID<<4|1, byte(twSeq>>8), byte(twSeq), 0)
	}
	return dst
}

// forward sends packet p to d's subscriber, rewritten for it.
//
// Every subscriber of a simulcast track is offered every packet of the
// track, but receives one layer of the three: the packets of the other
// layers are turned away by concerns before anything else is touched
// (the subscriber's lock, its address).
func (s *shard) forward(d *downTrack, p *pendingPacket) {
	pt := d.pt
	if pt.simulcast && !d.concerns(p.layer) {
		return
	}
	sub := d.sub
	if !sub.ready.Load() {
		return
	}
	to, ok := sub.remote()
	if !ok {
		return
	}
	sub.smu.Lock()
	sg := &d.f.segs[0]
	if pt.simulcast {
		var send bool
		sg, send = d.admit(p, s.now)
		if !send {
			from, dest, bySender, switched := d.f.takeSwitch()
			sub.smu.Unlock()
			if switched {
				d.reportSwitch(from, dest, bySender)
			}
			return
		}
	}
	h := rtpHead{pt: p.plain[1] & 0x7f, marker: p.plain[1]&0x80 != 0, padding: p.plain[0]&0x20 != 0,
		seq: p.seq + sg.seqOff, ts: p.ts + sg.tsOff, ssrc: pt.SSRC}
	if s.sendRTP(sub, to, h, p.plain[p.hlen:], p, sg) {
		if pt.simulcast {
			d.forwarded(p, sg, h.seq, h.ts, s.now)
			s.probe(d, to, h, p)
		}
	}
	from, dest, bySender, switched := d.f.takeSwitch()
	sub.smu.Unlock()
	if switched {
		d.reportSwitch(from, dest, bySender)
	}
}

// sendRTP writes header h and payload (rewriting a VP8/VP9 picture ID by
// segment sg for descriptor p.desc, when p is given) for sub, stamps the
// transport-wide sequence number, encrypts and queues it. Called under
// sub.smu.
func (s *shard) sendRTP(sub *Transport, to netip.AddrPort, h rtpHead, payload []byte, p *pendingPacket, sg *segment) bool {
	slot := s.slot()
	var twID uint8
	var twSeq uint16
	cc := sub.cc.Load()
	if cc != nil && cc.twccID != 0 {
		twID, twSeq = cc.twccID, cc.seq
	}
	pkt := appendHead(slot, h, twID, twSeq)
	hl := len(pkt)
	pkt = append(pkt, payload...)
	if p != nil && (sg.picOff != 0 || sg.tl0Off != 0) {
		codecs.RewritePictureID(pkt[hl:], &p.desc, p.desc.PicID+sg.picOff, p.desc.TL0+sg.tl0Off)
	}
	return s.seal(sub, to, pkt, cc, twID != 0)
}

// seal encrypts a plaintext packet built in a send slot for sub and queues
// it, recording it for congestion control. Called under sub.smu.
func (s *shard) seal(sub *Transport, to netip.AddrPort, pkt []byte, cc *congestion, stamped bool) bool {
	out, err := sub.enc.EncryptRTP(pkt[:0], pkt, &sub.shdr)
	if err != nil {
		return false
	}
	if cap(out) != cap(pkt) {
		// EncryptRTP outgrew the slot and allocated: the packet is too
		// large to forward (never for MTU-sized packets).
		s.stats.DropSendBatchNoRoom.Add(1)
		return false
	}
	if stamped {
		cc.est.Sent(cc.seq, s.now/1000, len(out)+udpOverhead)
		cc.seq++
	}
	s.sb.Commit(out, to)
	sub.bytesOut.Add(uint64(len(out)))
	s.stats.Forwarded.Add(1)
	return true
}

// udpOverhead is what IPv4 and UDP add to a datagram, counted in the
// bandwidth used.
const udpOverhead = 28

// srtpOverhead is about what SRTP and the transport-cc extension add to
// a packet (a 16-byte tag, an 8-byte extension block).
const srtpOverhead = 24

// maxProbeCopies bounds the padding sent beside one forwarded packet.
const maxProbeCopies = 32

// probe sends the padding a running bandwidth probe asks for: copies of
// the packet just forwarded, in the RTX stream (RFC 4588 as libwebrtc
// does: a receiver drops them as duplicates, its feedback counts them).
// Called under d.sub.smu.
func (s *shard) probe(d *downTrack, to netip.AddrPort, h rtpHead, p *pendingPacket) {
	cc := d.sub.cc.Load()
	if cc == nil || cc.twccID == 0 || d.rtxPT == 0 || !cc.est.Probing() {
		return
	}
	n, size := cc.est.Padding(s.now / 1000)
	for range probeCopies(n, size, p.plen) {
		if !s.sendRTX(d, to, h, p.plain[p.hlen:p.hlen+p.plen], &p.desc, &d.f.segs[d.f.segID%nSegments]) {
			return
		}
		s.stats.ProbePackets.Add(1)
	}
}

// probeCopies is how many RTX copies of a packet with plen bytes of
// payload carry the padding the estimator asks for (n packets of size
// bytes): the copies are as small as the packet forwarded (a low layer's
// are), and too few of them would leave every probe short of its rate.
func probeCopies(n, size, plen int) int {
	if n <= 0 {
		return 0
	}
	per := 12 + 2 + plen + srtpOverhead + udpOverhead
	return min((n*size+per-1)/per, maxProbeCopies)
}

// sendRTX sends one packet of d's stream with header h in d's RTX stream:
// the original sequence number, then the payload. Called under d.sub.smu.
func (s *shard) sendRTX(d *downTrack, to netip.AddrPort, h rtpHead, payload []byte, desc *codecs.Descriptor, sg *segment) bool {
	sub := d.sub
	cc := sub.cc.Load()
	var twID uint8
	var twSeq uint16
	if cc != nil && cc.twccID != 0 {
		twID, twSeq = cc.twccID, cc.seq
	}
	rtx := rtpHead{pt: d.rtxPT, marker: h.marker, seq: d.f.rtxSeq, ts: h.ts, ssrc: d.rtxSSRC}
	d.f.rtxSeq++
	pkt := appendHead(s.slot(), rtx, twID, twSeq)
	pkt = append(pkt, byte(h.seq>>8), byte(h.seq))
	hl := len(pkt)
	pkt = append(pkt, payload...)
	if desc != nil && (sg.picOff != 0 || sg.tl0Off != 0) {
		codecs.RewritePictureID(pkt[hl:], desc, desc.PicID+sg.picOff, desc.TL0+sg.tl0Off)
	}
	return s.seal(sub, to, pkt, cc, twID != 0)
}

// countDecryptError counts an SRTP or SRTCP packet that failed to decrypt.
func (s *shard) countDecryptError(err error) {
	if errors.Is(err, srtp.ErrFailedToVerifyAuthTag) {
		s.stats.DropSRTPAuth.Add(1)
		return
	}
	if isDuplicate(err) {
		s.stats.DropSRTPReplay.Add(1)
		return
	}
	s.stats.DropMalformed.Add(1)
}

// isDuplicate recognises pion/srtp's replay error, which it does not export.
func isDuplicate(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if e.Error() == "duplicated packet" {
			return true
		}
	}
	return false
}
