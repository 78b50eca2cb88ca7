package loadpeer

import (
	"encoding/binary"
	"sync"
	"time"

	"github.com/hayate-sfu/hayate/rtpcore/twcc"
)

// Header extension ids of Hayate's offers (jsep: fixed per URI).
const (
	RIDExtension  = 2
	TWCCExtension = 4
)

// feedbackInterval is how often a peer with Options.Feedback sends
// transport feedback, as browsers do (about every 50-100 ms).
const feedbackInterval = 50 * time.Millisecond

// feedbackState is a receiving peer's transport-wide congestion feedback.
type feedbackState struct {
	mu   sync.Mutex
	rec  twcc.Recorder
	last time.Time
	buf  []byte
	// Sent counts feedback packets sent.
	sent int
}

// TransportSeq returns the transport-wide sequence number of a plaintext
// RTP packet (one-byte header extension TWCCExtension, RFC 8285 §4.2).
func TransportSeq(pkt []byte) (uint16, bool) {
	if len(pkt) < 12 || pkt[0]&0x10 == 0 {
		return 0, false
	}
	i := 12 + 4*int(pkt[0]&0x0f)
	if len(pkt) < i+4 || binary.BigEndian.Uint16(pkt[i:]) != 0xbede {
		return 0, false
	}
	end := i + 4 + 4*int(binary.BigEndian.Uint16(pkt[i+2:]))
	if end > len(pkt) {
		return 0, false
	}
	for i += 4; i < end; {
		id, n := pkt[i]>>4, int(pkt[i]&0x0f)+1
		switch {
		case pkt[i] == 0:
			i++
			continue
		case id == 15:
			return 0, false
		case id == TWCCExtension && n == 2 && i+3 <= end:
			return binary.BigEndian.Uint16(pkt[i+1:]), true
		}
		i += 1 + n
	}
	return 0, false
}

// NoteArrival records a received plaintext RTP packet for transport
// feedback and sends the feedback when it is due.
func (p *Peer) NoteArrival(pkt []byte, at time.Time) {
	seq, ok := TransportSeq(pkt)
	if !ok {
		return
	}
	f := &p.fb
	f.mu.Lock()
	f.rec.Record(seq, at.UnixMicro())
	if at.Sub(f.last) < feedbackInterval {
		f.mu.Unlock()
		return
	}
	f.last = at
	f.buf = f.rec.Build(f.buf[:0], p.SSRCs["video"], binary.BigEndian.Uint32(pkt[8:12]))
	b := append([]byte(nil), f.buf...)
	f.sent++
	f.mu.Unlock()
	if len(b) > 0 {
		_ = p.SendRTCP(b)
	}
}

// FeedbackSent is the number of transport feedback packets sent.
func (p *Peer) FeedbackSent() int {
	p.fb.mu.Lock()
	defer p.fb.mu.Unlock()
	return p.fb.sent
}
