package rtpcore

import (
	"errors"

	"github.com/pion/srtp/v3"
)

// handleRTP decrypts one publisher packet in place and queues it for
// forwarding at the end of the receive batch (forwardPending). Sequence
// numbers, timestamps, SSRC and payload type are kept: every connection of a
// channel is offered the same payload types, each subscriber's SRTP context
// keeps its own rollover counter from the first packet it sends, and a
// subscriber learns a track's SSRC from its offer.
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
	pt := t.pub(t.rhdr.SSRC)
	if pt == nil {
		t.rmu.Unlock()
		s.stats.DropUnknownSSRC.Add(1)
		return
	}
	seq := t.rhdr.SequenceNumber
	pt.rx.update(seq)
	cache := pt.packetCache()
	t.rmu.Unlock()
	s.stats.ReceivedRTP.Add(1)
	if cache != nil {
		cache.Store(seq, plain)
		if pt.wantKey.Load() && pt.requestKeyFrame(s) {
			pt.wantKey.Store(false)
		}
	}
	if s.npending == len(s.pending) {
		s.forwardPending()
	}
	s.pending[s.npending] = pendingPacket{pt: pt, plain: plain}
	s.npending++
}

// pendingPacket is a decrypted publisher packet waiting in its receive
// buffer to be forwarded.
type pendingPacket struct {
	pt    *pubTrack
	plain []byte
}

// forwardPending sends the batch's decrypted packets to the subscribers of
// their tracks, subscriber by subscriber: each subscriber's packets of a
// track are queued one after the other, so a video frame's equal-size
// packets to one subscriber leave as one UDP GSO send. Per subscriber, each
// packet is copied into a send slot and encrypted in place.
func (s *shard) forwardPending() {
	for i := range s.npending {
		pt := s.pending[i].pt
		if pt == nil {
			continue // forwarded with an earlier packet of its track
		}
		for _, d := range *pt.downs.Load() {
			for j := i; j < s.npending; j++ {
				if s.pending[j].pt == pt {
					s.sendRTP(d, s.pending[j].plain)
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

// sendRTP encrypts a plaintext RTP packet for d and queues it.
func (s *shard) sendRTP(d *Transport, plain []byte) bool {
	if !d.ready.Load() {
		return false
	}
	to, ok := d.remote()
	if !ok {
		return false
	}
	slot := append(s.slot(), plain...)
	d.smu.Lock()
	out, err := d.enc.EncryptRTP(slot[:0], slot, &d.shdr)
	d.smu.Unlock()
	if err != nil {
		return false
	}
	if cap(out) != cap(slot) {
		// EncryptRTP outgrew the slot and allocated: the packet is too
		// large to forward (never for MTU-sized packets).
		s.stats.DropSendBatchNoRoom.Add(1)
		return false
	}
	s.sb.Commit(out, to)
	d.bytesOut.Add(uint64(len(out)))
	s.stats.Forwarded.Add(1)
	return true
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
