//go:build linux

package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	"github.com/hayate-sfu/hayate/internal/loadpeer"
)

// simulcastLayers are the bit rates of a simulcast publisher's r0, r1 and
// r2 (about what the sora-js-sdk asks of a 1.5 Mbit/s publisher), each at
// frameRate with a key frame keyFactor times larger every keyEvery.
var simulcastLayers = [3]int{150_000, 500_000, 1_500_000}

// simulcastTimeAt is where a simulcast packet's payload carries its send
// time: after the VP8 payload descriptor and the first bytes of the frame.
const simulcastTimeAt = 8

// SimulcastPublisher sends three VP8 streams with rids r0, r1 and r2 (RFC
// 8852 rid extension), video only, and answers a PLI for a stream with a
// key frame on it.
type SimulcastPublisher struct {
	Peer       *loadpeer.Peer
	sent       [3]atomic.Uint64
	wantKey    [3]atomic.Bool
	ssrc       [3]uint32
	stop, done chan struct{}
	stopOnce   sync.Once
}

// StartSimulcastPublisher connects a sendonly client with simulcast and
// starts sending.
func StartSimulcastPublisher(url, channel string) (*SimulcastPublisher, error) {
	p := &SimulcastPublisher{stop: make(chan struct{}), done: make(chan struct{})}
	for i := range p.ssrc {
		p.ssrc[i] = 0x51000000 + uint32(i)
	}
	msg := connectMsg(channel, "sendonly")
	msg["audio"] = false
	msg["simulcast"] = true
	peer, err := loadpeer.Dial(context.Background(), loadpeer.Options{URL: url, Connect: msg, Simulcast: true,
		Timeout: 20 * time.Second, OnRTCP: p.onRTCP})
	if err != nil {
		return nil, fmt.Errorf("simulcast publisher: %w", err)
	}
	p.Peer = peer
	go p.run()
	return p, nil
}

// onRTCP turns a PLI for one of the streams into a key frame on it.
func (p *SimulcastPublisher) onRTCP(b []byte) {
	for len(b) >= 12 {
		size := (int(binary.BigEndian.Uint16(b[2:4])) + 1) * 4
		if size > len(b) {
			return
		}
		if b[1] == 206 && b[0]&0x1f == 1 {
			for i, s := range p.ssrc {
				if s == binary.BigEndian.Uint32(b[8:12]) {
					p.wantKey[i].Store(true)
				}
			}
		}
		b = b[size:]
	}
}

// Sent returns the packets sent so far on each layer.
func (p *SimulcastPublisher) Sent() [3]uint64 {
	var out [3]uint64
	for i := range out {
		out[i] = p.sent[i].Load()
	}
	return out
}

// run paces the three streams' frames on an absolute schedule.
func (p *SimulcastPublisher) run() {
	defer close(p.done)
	frameDur := time.Second / frameRate
	next := time.Now()
	var seq [3]uint16
	var pic [3]uint16
	buf := make([]byte, 0, 1500)
	payload := make([]byte, maxPacket)
	for frame := 0; ; frame++ {
		for i, rate := range simulcastLayers {
			key := frame%int(keyEvery/time.Second*frameRate) == 0 || p.wantKey[i].Swap(false)
			size := rate / 8 / frameRate
			if key {
				size *= keyFactor
			}
			ts := uint32(frame) * (90000 / frameRate)
			chunk := maxPacket - srtpOverhead - 8 // the rid extension
			for first := true; size > 0; first = false {
				n := max(min(size, chunk), simulcastTimeAt+8)
				size -= n
				pl := payload[:n]
				// VP8 payload descriptor (RFC 7741 §4.2): X, S on a
				// frame's first packet, I with a 15-bit picture id; then
				// the frame's first byte, P = 0 on a key frame.
				pl[0], pl[1] = 0x80, 0x80
				if first {
					pl[0] |= 0x10
				}
				pl[2], pl[3] = 0x80|byte(pic[i]>>8), byte(pic[i])
				pl[4] = 0x01
				if key {
					pl[4] = 0x10
				}
				binary.BigEndian.PutUint64(pl[simulcastTimeAt:], uint64(time.Now().UnixNano()))
				h := rtp.Header{Version: 2, PayloadType: videoPT, SequenceNumber: seq[i], Timestamp: ts, SSRC: p.ssrc[i], Marker: size <= 0}
				_ = h.SetExtension(loadpeer.RIDExtension, []byte{'r', byte('0' + i)})
				m, _ := h.MarshalTo(buf[:cap(buf)])
				pkt := append(buf[:m], pl...)
				if p.Peer.SendRTP(pkt) == nil {
					p.sent[i].Add(1)
				}
				seq[i]++
			}
			pic[i] = (pic[i] + 1) & 0x7fff
		}
		next = next.Add(frameDur)
		select {
		case <-p.stop:
			return
		case <-time.After(time.Until(next)):
		}
	}
}

// Stop ends the stream and disconnects; it may be called again.
func (p *SimulcastPublisher) Stop() {
	p.stopOnce.Do(func() {
		close(p.stop)
		<-p.done
		p.Peer.Close()
	})
}

// JoinSimulcastSubscribers connects n recvonly clients of a simulcast
// channel, subscriber i asking for rid r(i mod 3), at most concurrency at
// once.
func JoinSimulcastSubscribers(url, channel string, n, concurrency int) ([]*Subscriber, []time.Duration, error) {
	return joinTimed(n, concurrency, func(i int) (*Subscriber, error) {
		msg := connectMsg(channel, "recvonly")
		msg["simulcast"] = true
		msg["simulcast_rid"] = fmt.Sprintf("r%d", i%3)
		return newSubscriber(url, msg, 0, 0, loadpeer.TransportUDP, simulcastTimeAt, nil)
	})
}

// MeasureSimulcast runs one window of length d over subscribers of a
// simulcast publisher, subscriber i on layer i mod 3. A rewritten stream's
// sequence numbers are the subscriber's own, so packets are counted, not
// matched: Expected is what the publisher sent on each subscriber's layer
// in the window, Received what the subscribers got in the same span of
// time (the packets in flight at its two ends about cancel out).
func MeasureSimulcast(srv *Server, pub *SimulcastPublisher, subs []*Subscriber, d time.Duration) (Window, error) {
	for _, s := range subs {
		s.takeDelays()
		s.from.Store(time.Now().UnixNano())
	}
	k0 := make([]uint64, len(subs))
	t0 := time.Now()
	p0 := pub.Sent()
	for i, s := range subs {
		k0[i] = s.Packets()
	}
	w, err := serverSpan(srv, d)
	if err != nil {
		return Window{}, err
	}
	p1 := pub.Sent()
	w.Duration = time.Since(t0)
	for i, s := range subs {
		w.Received += s.Packets() - k0[i]
		w.Expected += p1[i%3] - p0[i%3]
	}
	for l := range p0 {
		w.PubPackets += p1[l] - p0[l]
	}
	for _, s := range subs {
		w.Delays = append(w.Delays, s.takeDelays()...)
	}
	if w.Expected > 0 {
		w.LossPercent = 100 * (1 - float64(w.Received)/float64(w.Expected))
	}
	return w, nil
}
