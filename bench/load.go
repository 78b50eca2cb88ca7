//go:build linux

package bench

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/pion/rtp"
	"golang.org/x/sys/unix"

	"github.com/hayate-sfu/hayate/internal/loadpeer"
)

// Stream shape of the publisher (issue 4): video at 1.5 Mbit/s, 30 frames
// per second, packets of at most 1200 bytes, a key frame five times larger
// every 2 s; Opus at 32 kbit/s in 20 ms packets.
const (
	videoBitrate  = 1_500_000
	frameRate     = 30
	keyEvery      = 2 * time.Second
	keyFactor     = 5
	maxPacket     = 1200
	srtpOverhead  = 16 + 12 // GCM tag and RTP header
	audioInterval = 20 * time.Millisecond
	audioPayload  = 32_000 / 8 / 50
	videoPT       = 96
	audioPT       = 111
)

// connectMsg is the connect message of a load client.
func connectMsg(channel, role string) map[string]any {
	return map[string]any{"type": "connect", "role": role, "channel_id": channel, "video": map[string]any{"codec_type": "VP8"}}
}

// Publisher sends the paced stream.
type Publisher struct {
	Peer       *loadpeer.Peer
	video      uint32
	audio      uint32
	vseq, aseq atomic.Uint32 // next sequence numbers
	sent       atomic.Uint64
	stop, done chan struct{}
	stopOnce   sync.Once
	paused     atomic.Bool
}

// Pause stops sending media (the connection stays); Resume restarts it.
func (p *Publisher) Pause()  { p.paused.Store(true) }
func (p *Publisher) Resume() { p.paused.Store(false) }

// StartPublisher connects a sendonly client and starts sending.
func StartPublisher(url, channel string) (*Publisher, error) {
	peer, err := loadpeer.Dial(context.Background(), loadpeer.Options{URL: url, Connect: connectMsg(channel, "sendonly"), Timeout: 20 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("publisher: %w", err)
	}
	p := &Publisher{Peer: peer, video: peer.SSRCs["video"], audio: peer.SSRCs["audio"], stop: make(chan struct{}), done: make(chan struct{})}
	go p.run()
	return p, nil
}

// Mark is the publisher's position: the next sequence numbers and packets
// sent so far.
type Mark struct {
	Video, Audio uint16
	Sent         uint64
	At           time.Time
}

// Mark returns the current position.
func (p *Publisher) Mark() Mark {
	return Mark{Video: uint16(p.vseq.Load()), Audio: uint16(p.aseq.Load()), Sent: p.sent.Load(), At: time.Now()}
}

// run paces frames and audio packets on an absolute schedule.
func (p *Publisher) run() {
	defer close(p.done)
	start := time.Now()
	frameDur := time.Second / frameRate
	nextFrame, nextAudio := start, start
	frame := 0
	buf := make([]byte, 0, 1500)
	payload := make([]byte, maxPacket)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	for {
		now := time.Now()
		for !nextAudio.After(now) {
			p.send(&buf, p.audio, audioPT, &p.aseq, uint32(frame)*960, payload[:audioPayload], true)
			nextAudio = nextAudio.Add(audioInterval)
		}
		for !nextFrame.After(now) {
			size := videoBitrate / 8 / frameRate
			if frame%int(keyEvery/time.Second*frameRate) == 0 {
				size *= keyFactor
			}
			ts := uint32(frame) * (90000 / frameRate)
			chunk := maxPacket - srtpOverhead
			for size > 0 {
				n := min(size, chunk)
				size -= n
				p.send(&buf, p.video, videoPT, &p.vseq, ts, payload[:n], size == 0)
			}
			frame++
			nextFrame = nextFrame.Add(frameDur)
		}
		wait := time.Until(earliest(nextFrame, nextAudio))
		select {
		case <-p.stop:
			return
		case <-time.After(wait):
		}
	}
}

// send marshals one packet whose payload starts with the send time.
func (p *Publisher) send(buf *[]byte, ssrc uint32, pt uint8, seq *atomic.Uint32, ts uint32, payload []byte, marker bool) {
	if p.paused.Load() {
		return
	}
	binary.BigEndian.PutUint64(payload[0:8], uint64(time.Now().UnixNano()))
	s := uint16(seq.Add(1) - 1)
	h := rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: s, Timestamp: ts, SSRC: ssrc, Marker: marker}
	b, _ := h.MarshalTo((*buf)[:cap(*buf)])
	pkt := append((*buf)[:b], payload...)
	if p.Peer.SendRTP(pkt) == nil {
		p.sent.Add(1)
	}
}

// Stop ends the stream and disconnects; it may be called again.
func (p *Publisher) Stop() {
	p.stopOnce.Do(func() {
		close(p.stop)
		<-p.done
		p.Peer.Close()
	})
}

// Subscriber receives with recvmmsg on its own socket, records every
// sequence number it sees (from the SRTP header, which is in the clear) and
// decrypts one packet in sampleEvery to read the send time.
type Subscriber struct {
	Peer    *loadpeer.Peer
	seen    [2][1024]atomic.Uint64 // bitmaps of sequence numbers: 0 video, 1 audio
	ssrc    [2]uint32
	packets atomic.Uint64
	mu      sync.Mutex
	delays  []time.Duration
	from    atomic.Int64 // record delays of packets sent after this (unix ns)
	done    chan struct{}
	timeAt  int      // offset of the send time in a payload
	counter *Counter // counts the media in the kernel instead (see Counter)
	slot    int
}

const sampleEvery = 16

// JoinSubscribers connects n recvonly clients, at most concurrency at once,
// and returns them with the time each join took (connect to SRTP ready).
func JoinSubscribers(url, channel string, n, concurrency int, video, audio uint32) ([]*Subscriber, []time.Duration, error) {
	return JoinSubscribersOver(url, channel, n, concurrency, video, audio, loadpeer.TransportUDP)
}

// JoinSubscribersOver is JoinSubscribers with subscribers that reach the
// server over transport (loadpeer.Transport*).
func JoinSubscribersOver(url, channel string, n, concurrency int, video, audio uint32, transport string) ([]*Subscriber, []time.Duration, error) {
	return joinTimed(n, concurrency, func(int) (*Subscriber, error) { return NewSubscriberOver(url, channel, video, audio, transport) })
}

// joinTimed runs JoinAll with join and returns the time each join took.
func joinTimed(n, concurrency int, join func(i int) (*Subscriber, error)) ([]*Subscriber, []time.Duration, error) {
	lat := make([]time.Duration, n)
	subs, err := JoinAll(n, concurrency, func(i int) (*Subscriber, error) {
		t0 := time.Now()
		s, err := join(i)
		lat[i] = time.Since(t0)
		return s, err
	}, (*Subscriber).Close)
	if err != nil {
		return nil, nil, err
	}
	return subs, lat, nil
}

// JoinAll runs join for 0..n-1, at most concurrency at once. If one fails,
// the clients that joined are closed and the first error is returned.
func JoinAll[T any](n, concurrency int, join func(i int) (T, error), closeClient func(T)) ([]T, error) {
	out := make([]T, n)
	ok := make([]bool, n)
	errs := make(chan error, n)
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c, err := join(i)
			if err != nil {
				errs <- err
				return
			}
			out[i], ok[i] = c, true
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		for i, c := range out {
			if ok[i] {
				closeClient(c)
			}
		}
		return nil, err
	}
	return out, nil
}

// NewSubscriber connects one recvonly client and starts its receiver.
func NewSubscriber(url, channel string, video, audio uint32) (*Subscriber, error) {
	return NewSubscriberOver(url, channel, video, audio, loadpeer.TransportUDP)
}

// NewSubscriberOver is NewSubscriber over transport (loadpeer.Transport*).
func NewSubscriberOver(url, channel string, video, audio uint32, transport string) (*Subscriber, error) {
	return newSubscriber(url, connectMsg(channel, "recvonly"), video, audio, transport, 0, nil)
}

// A Sink takes over the media of subscribers, so that they need no reader
// of their own: a Tap or a Counter.
type Sink interface {
	take(s *Subscriber) error
}

// JoinSubscribersSink is JoinSubscribers with subscribers whose media sink
// receives.
func JoinSubscribersSink(url, channel string, n, concurrency int, video, audio uint32, sink Sink) ([]*Subscriber, []time.Duration, error) {
	return joinTimed(n, concurrency, func(int) (*Subscriber, error) {
		return newSubscriber(url, connectMsg(channel, "recvonly"), video, audio, loadpeer.TransportUDP, 0, sink)
	})
}

// newSubscriber connects a recvonly client with connect message msg; the
// send time of a sampled packet is at timeAt in its payload. With a tap,
// a sink, the sink receives its media instead of a reader of its own.
func newSubscriber(url string, msg map[string]any, video, audio uint32, transport string, timeAt int, sink Sink) (*Subscriber, error) {
	peer, err := loadpeer.Dial(context.Background(), loadpeer.Options{URL: url, Connect: msg, Detach: true,
		Timeout: 30 * time.Second, Transport: transport})
	if err != nil {
		return nil, fmt.Errorf("subscriber: %w", err)
	}
	s := &Subscriber{Peer: peer, ssrc: [2]uint32{video, audio}, done: make(chan struct{}), timeAt: timeAt}
	// The server may send with SSRCs of its own (pion's fan-out does):
	// take them from the offer's sections when it announces them.
	v, a := offeredSSRCs(peer.Offer.SDP)
	if v != 0 {
		s.ssrc[0] = v
	}
	if a != 0 {
		s.ssrc[1] = a
	}
	switch {
	case sink != nil:
		if err := sink.take(s); err != nil {
			peer.Close()
			return nil, err
		}
		close(s.done)
	case peer.Conn() != nil:
		go s.receive()
	default:
		go s.receiveEach()
	}
	return s, nil
}

// offeredSSRCs returns the first video and audio SSRC the server announces
// in an offer (a=ssrc lines describe what the offerer sends).
func offeredSSRCs(offer string) (video, audio uint32) {
	var kind string
	for _, line := range strings.Split(offer, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "m="):
			kind = strings.TrimPrefix(strings.Fields(line)[0], "m=")
		case strings.HasPrefix(line, "a=ssrc:"):
			f := strings.Fields(strings.TrimPrefix(line, "a=ssrc:"))
			v, err := strconv.ParseUint(f[0], 10, 32)
			if err != nil {
				continue
			}
			if kind == "video" && video == 0 {
				video = uint32(v)
			}
			if kind == "audio" && audio == 0 {
				audio = uint32(v)
			}
		}
	}
	return video, audio
}

// receive is the subscriber's recvmmsg loop.
func (s *Subscriber) receive() {
	defer close(s.done)
	const batch = 32
	var hdrs [batch]unix.Mmsghdr
	var iovs [batch]unix.Iovec
	mem := make([]byte, batch*1500)
	for i := range batch {
		iovs[i].Base = &mem[i*1500]
		iovs[i].SetLen(1500)
		hdrs[i].Hdr.Iov = &iovs[i]
		hdrs[i].Hdr.Iovlen = 1
	}
	rc, err := s.Peer.Conn().SyscallConn()
	if err != nil {
		return
	}
	var n int
	read := func(fd uintptr) bool {
		r, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&hdrs[0])), batch, unix.MSG_DONTWAIT, 0, 0)
		if errno == unix.EAGAIN || errno == unix.EINTR {
			return false
		}
		n = int(r)
		if errno != 0 {
			n = -1
		}
		return true
	}
	k := 0
	scratch := make([]byte, 1500)
	for {
		if err := rc.Read(read); err != nil || n < 0 {
			return
		}
		for i := range n {
			s.onPacket(mem[i*1500:i*1500+int(hdrs[i].Len)], &k, scratch)
		}
	}
}

// receiveEach is the receiver of a subscriber on TURN or TCP: one
// datagram a call.
func (s *Subscriber) receiveEach() {
	defer close(s.done)
	buf := make([]byte, 2048)
	scratch := make([]byte, 2048)
	k := 0
	for {
		n, err := s.Peer.Recv(buf)
		if err != nil {
			return
		}
		s.onPacket(buf[:n], &k, scratch)
	}
}

// onPacket records one datagram: a media packet's sequence number, and
// for one in sampleEvery (k counts them) its forwarding delay.
func (s *Subscriber) onPacket(pkt []byte, k *int, scratch []byte) {
	if len(pkt) < 12 || pkt[0]>>6 != 2 || pkt[1] >= 192 && pkt[1] <= 223 {
		return // STUN answers, RTCP
	}
	ssrc := binary.BigEndian.Uint32(pkt[8:12])
	seq := binary.BigEndian.Uint16(pkt[2:4])
	idx := -1
	for j, v := range s.ssrc {
		if v == ssrc {
			idx = j
		}
	}
	if idx < 0 {
		return
	}
	s.seen[idx][seq>>6].Or(1 << (seq & 63))
	s.packets.Add(1)
	*k++
	if *k%sampleEvery != 0 || s.Peer == nil {
		return
	}
	plain, err := s.Peer.DecryptRTP(scratch[:0], append(scratch[:0], pkt...))
	if err != nil || len(plain) < 20 {
		return
	}
	var h rtp.Header
	off, err := h.Unmarshal(plain)
	off += s.timeAt
	if err != nil || len(plain) < off+8 {
		return
	}
	sent := int64(binary.BigEndian.Uint64(plain[off : off+8]))
	if sent >= s.from.Load() {
		d := time.Duration(time.Now().UnixNano() - sent)
		s.mu.Lock()
		s.delays = append(s.delays, d)
		s.mu.Unlock()
	}
}

// Packets is the number of media packets received.
func (s *Subscriber) Packets() uint64 {
	if s.counter != nil {
		return s.counter.Count(s.slot)
	}
	return s.packets.Load()
}

// count returns how many sequence numbers in [from, to) of stream idx were seen.
func (s *Subscriber) count(idx int, from, to uint16) int {
	c := 0
	for q := from; q != to; q++ {
		if s.seen[idx][q>>6].Load()&(1<<(q&63)) != 0 {
			c++
		}
	}
	return c
}

// Seen reports, of the packets the publisher sent between marks a and b
// (sequence numbers [a, b) of its video and audio streams), how many this
// subscriber has seen: counted on sequence numbers, so the answer does not
// depend on when it is asked, only on what has arrived. Spans over 65,535
// packets per stream are not supported.
func (s *Subscriber) Seen(a, b Mark) (seen, sent int) {
	seen = s.count(0, a.Video, b.Video) + s.count(1, a.Audio, b.Audio)
	sent = int(b.Video-a.Video) + int(b.Audio-a.Audio)
	return seen, sent
}

// clearWindow forgets sequence numbers in [from, from+span) and delays, so a
// window counts only what arrives in it.
func (s *Subscriber) clearWindow(idx int, from uint16, span int) {
	for q, i := from, 0; i < span; q, i = q+1, i+1 {
		s.seen[idx][q>>6].And(^uint64(1 << (q & 63)))
	}
}

func (s *Subscriber) takeDelays() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.delays
	s.delays = nil
	return d
}

// Close disconnects the subscriber.
func (s *Subscriber) Close() {
	s.Peer.Close()
	<-s.done
}

// Window is what one measurement window saw.
type Window struct {
	Duration    time.Duration
	PubPackets  uint64        // packets the publisher sent in the window
	Expected    uint64        // PubPackets × subscribers
	Received    uint64        // of those, received by the subscribers
	LossPercent float64       // 100 × (1 − Received/Expected)
	ServerCPU   time.Duration // server CPU time in the window
	Mallocs     float64       // server allocations in the window (Hayate only)
	// ThreadRun is each server thread's CPU time in the window, busiest
	// first; RunQueueWait is the time its threads were runnable but
	// waited for a CPU (schedstat).
	ThreadRun    []time.Duration
	RunQueueWait time.Duration
	Delays       []time.Duration
	// Counters are the growth of the server's counters in the window
	// (Hayate only): mallocs, recv_calls, packets_in, send_calls,
	// send_messages, packets_out, and the drops link_queue_full,
	// turn_queue_full and ice_tcp_queue_full (server.go).
	Counters map[string]float64
}

// NsPerForward is the server's CPU per forwarded packet: per packet that
// reached a subscriber. Without loss that is every packet the fanout asks
// for; a saturated server that delivers less is charged for what it
// delivered.
func (w Window) NsPerForward() float64 {
	return float64(w.ServerCPU.Nanoseconds()) / float64(max(w.Received, 1))
}

// P99 is the 99th percentile forwarding delay of the sampled packets.
func (w Window) P99() time.Duration {
	if len(w.Delays) == 0 {
		return 0
	}
	d := slices.Clone(w.Delays)
	slices.Sort(d)
	return d[len(d)*99/100]
}

// Measure runs one window of length d: marks the publisher, clears the
// subscribers' records ahead, waits, and counts. Packets sent in the last
// 200 ms are left out of the count so stragglers in flight are not loss.
func Measure(srv *Server, pub *Publisher, subs []*Subscriber, d time.Duration) (Window, error) {
	const ahead = 8192
	m0 := pub.Mark()
	for _, s := range subs {
		s.clearWindow(0, m0.Video, ahead)
		s.clearWindow(1, m0.Audio, ahead/4)
		s.takeDelays()
		s.from.Store(time.Now().UnixNano())
	}
	// Subscribers counted by a Counter (they share one) count the window's
	// sequence numbers in the kernel; the window is opened before any of
	// its packets is sent and closed before any packet after it is.
	var kc *Counter
	for _, s := range subs {
		if s.counter != nil {
			kc = s.counter
		}
	}
	counted := func() []uint64 {
		c := make([]uint64, len(subs))
		for i, s := range subs {
			if s.counter != nil {
				c[i] = s.counter.WindowCount(s.slot)
			}
		}
		return c
	}
	c0 := counted()
	m0 = pub.Mark()
	if kc != nil {
		m0 = markWith(pub, kc.OpenWindow)
	}
	w, err := serverSpan(srv, d)
	if err != nil {
		return Window{}, err
	}
	m1 := pub.Mark()
	if kc != nil {
		m1 = markWith(pub, kc.CloseWindow)
	}
	time.Sleep(200 * time.Millisecond) // let the window's last packets land
	c1 := counted()
	w.Duration, w.PubPackets = m1.At.Sub(m0.At), m1.Sent-m0.Sent
	w.Expected = w.PubPackets * uint64(len(subs))
	for i, s := range subs {
		if s.counter != nil {
			w.Received += c1[i] - c0[i]
			continue
		}
		w.Received += uint64(s.count(0, m0.Video, m1.Video) + s.count(1, m0.Audio, m1.Audio))
		w.Delays = append(w.Delays, s.takeDelays()...)
	}
	if w.Expected > 0 {
		w.LossPercent = 100 * (1 - float64(w.Received)/float64(w.Expected))
	}
	return w, nil
}

// markWith calls set with the publisher's next sequence numbers and
// returns the mark they belong to, retrying until no packet was sent in
// between (so set ran before the packet with those numbers was sent).
func markWith(pub *Publisher, set func(video, audio uint16)) Mark {
	for {
		a := pub.Mark()
		set(a.Video, a.Audio)
		if b := pub.Mark(); b.Video == a.Video && b.Audio == a.Audio {
			return a
		}
	}
}

// serverSpan waits d and returns a Window with the server's CPU time,
// counters and allocations over it.
func serverSpan(srv *Server, d time.Duration) (Window, error) {
	cpu0, err := srv.CPUTime()
	if err != nil {
		return Window{}, err
	}
	th0 := srv.ThreadTimes()
	st0 := srv.counters()
	time.Sleep(d)
	cpu1, err := srv.CPUTime()
	if err != nil {
		return Window{}, err
	}
	th1 := srv.ThreadTimes()
	st1 := srv.counters()
	w := Window{ServerCPU: cpu1 - cpu0, Counters: map[string]float64{}}
	for id, t := range th1 {
		w.ThreadRun = append(w.ThreadRun, t[0]-th0[id][0])
		w.RunQueueWait += t[1] - th0[id][1]
	}
	slices.SortFunc(w.ThreadRun, func(a, b time.Duration) int { return cmp.Compare(b, a) })
	for k, v := range st1 {
		w.Counters[k] = v - st0[k]
	}
	w.Mallocs = w.Counters["mallocs"]
	return w, nil
}

// merge adds window w to t.
func (t *Window) merge(w Window) {
	t.Duration += w.Duration
	t.PubPackets += w.PubPackets
	t.Expected += w.Expected
	t.Received += w.Received
	t.ServerCPU += w.ServerCPU
	t.Mallocs += w.Mallocs
	t.RunQueueWait += w.RunQueueWait
	if t.ThreadRun == nil {
		t.ThreadRun = w.ThreadRun
	}
	t.Delays = append(t.Delays, w.Delays...)
	if t.Counters == nil {
		t.Counters = map[string]float64{}
	}
	for k, v := range w.Counters {
		t.Counters[k] += v
	}
	if t.Expected > 0 {
		t.LossPercent = 100 * (1 - float64(t.Received)/float64(t.Expected))
	}
}

// ThreadCPU is the CPU time of the calling OS thread (RUSAGE_THREAD).
func ThreadCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(unix.RUSAGE_THREAD, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
