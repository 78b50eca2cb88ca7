//go:build linux

package rtpcore

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"

	"github.com/hayate-sfu/hayate/media"
	"github.com/hayate-sfu/hayate/rtpcore/bwe"
	"github.com/hayate-sfu/hayate/rtpcore/twcc"
)

// BenchmarkForwardCongestion: what simulcast and congestion control cost
// per forwarded packet. In the same run, on the same stream (1100-byte
// VP8 key frames with a picture id, three rids in turn, 1 ms apart):
//
//   - plain: one plain track, every subscriber gets every packet, no
//     congestion control;
//   - simulcast-cc: the publisher's three rids as one simulcast track, the
//     subscribers spread over the three layers (LimitLayer), each
//     packet rewritten (sequence, timestamp, picture id), stamped with a
//     transport-wide sequence number and counted by the subscriber's
//     estimator; every subscriber sends transport feedback for what it
//     got every 64 publisher packets (built and encrypted outside the
//     timer, received and parsed inside it), and the layer choice runs on
//     it.
//
// batch is how many publisher packets the shard handles before it flushes
// its sends, as it does after each receive batch: 1 is a lightly loaded
// node (one packet per wake, one sendmmsg per packet), 16 a loaded one.
// With one packet per flush the send call's fixed cost is shared by the
// packet's forwards, 10 plain against 3.3 simulcast at 10 subscribers.
//
// ns/fwd is the time per packet sent to a subscriber (the shard's
// Forwarded count), allocs/op the allocations per publisher packet.
// (-bench ForwardCongestion also runs BenchmarkForwardCongestionUser.)
//
//	go test -run '^$' -bench 'ForwardCongestion$' -benchtime 30000x -count 10 ./rtpcore/
func BenchmarkForwardCongestion(b *testing.B) { forwardCongestionRuns(b, true) }

// BenchmarkForwardCongestionUser is BenchmarkForwardCongestion without the
// kernel's part: the shard's socket lays every send out as the epoll
// backend does (the GSO messages) and sends nothing. ns/fwd is then
// Hayate's own work per forwarded packet (decryption, rewrite, encryption,
// congestion control, feedback), which the loopback's send calls otherwise
// dwarf; the ratio of the two shows how much of BenchmarkForwardCongestion's
// is the kernel's.
//
//	go test -run '^$' -bench ForwardCongestionUser -benchtime 30000x -count 10 ./rtpcore/
func BenchmarkForwardCongestionUser(b *testing.B) { forwardCongestionRuns(b, false) }

// BenchmarkForwardCongestionParts splits BenchmarkForwardCongestionUser's
// difference between plain and simulcast-cc into its two parts, on the
// same load: simulcast (three rids, the subscribers spread over the
// layers, each packet rewritten) and congestion control (each packet
// stamped with a transport-wide sequence number and counted by the
// subscriber's estimator, its transport feedback every 64 publisher
// packets handled). plain-cc is one plain track, every subscriber gets
// every packet, under congestion control; simulcast is the three rids
// without it. Without the kernel's part, at 16 packets per flush.
//
//	go test -run '^$' -bench ForwardCongestionParts -benchtime 30000x -count 10 ./rtpcore/
func BenchmarkForwardCongestionParts(b *testing.B) {
	for _, n := range []int{10, 100} {
		for _, c := range congestionParts {
			b.Run(fmt.Sprintf("%s/subs=%d/batch=16", c.name, n), func(b *testing.B) {
				benchForwardCongestion(b, srtp.ProtectionProfileAeadAes128Gcm, n, 16, c.simulcast, c.cc, false)
			})
		}
	}
}

// congestionParts are BenchmarkForwardCongestionParts' configurations.
var congestionParts = []struct {
	name          string
	simulcast, cc bool
}{{"plain", false, false}, {"plain-cc", false, true}, {"simulcast", true, false}, {"simulcast-cc", true, true}}

// forwardCongestionRuns runs every configuration of the two benchmarks
// above, through the kernel's send or not.
func forwardCongestionRuns(b *testing.B, kernel bool) {
	for _, n := range []int{10, 100} {
		for _, batch := range []int{1, 16} {
			for _, simulcast := range []bool{false, true} {
				name := "plain"
				if simulcast {
					name = "simulcast-cc"
				}
				b.Run(fmt.Sprintf("%s/subs=%d/batch=%d", name, n, batch), func(b *testing.B) {
					benchForwardCongestion(b, srtp.ProtectionProfileAeadAes128Gcm, n, batch, simulcast, simulcast, kernel)
				})
			}
		}
	}
}

// layoutIO stands for a shard's socket in BenchmarkForwardCongestionUser:
// Send lays the batch out as msghdrs with GSO, counts it as sent and
// drops it.
type layoutIO struct {
	PacketIO
	m *sendMsgs
}

func (l layoutIO) Send(b *SendBatch) error {
	defer b.reset()
	if b.n == 0 {
		return nil
	}
	l.m.build(b)
	b.Sent++
	b.Messages += uint64(l.m.smsgs)
	b.Datagrams += uint64(b.n)
	return nil
}

const (
	benchRIDExt  = 10
	benchTWCCExt = 5
)

// simulcastStream pre-encrypts count packets over three rids in turn:
// 1100-byte VP8 key frames (payload descriptor with a 15-bit picture id),
// each rid its own SSRC, sequence and timestamp.
func simulcastStream(tb testing.TB, enc *srtp.Context, count int) [][]byte {
	tb.Helper()
	pkts := make([]*rtp.Packet, count)
	payload := make([]byte, 1100)
	for i := range payload {
		payload[i] = byte(i)
	}
	for i := range pkts {
		layer, n := i%3, i/3
		pl := append([]byte(nil), payload...)
		// VP8 descriptor: X, S, PID 0; I; M with the picture id; then a
		// key frame's first byte (P = 0).
		pl[0], pl[1], pl[2], pl[3], pl[4] = 0x90, 0x80, 0x80|byte(n>>8)&0x7f, byte(n), 0x10
		pkts[i] = &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: uint16(n), Timestamp: uint32(n) * 3000,
			SSRC: 0x5000 + uint32(layer), Marker: true}, Payload: pl}
		if err := pkts[i].Header.SetExtension(benchRIDExt, []byte(fmt.Sprintf("r%d", layer))); err != nil {
			tb.Fatal(err)
		}
	}
	return encryptPackets(tb, enc, pkts)
}

// congestionLoad is BenchmarkForwardCongestion's load on one shard: a
// publisher and n subscribers. step hands the shard the next publisher
// packet, flushes every batch packets and, with congestion control, hands
// it every subscriber's transport feedback every 64 packets; pause and
// resume bracket what is no part of the measure (building the feedback).
// The shard's work is all step allocates.
type congestionLoad struct {
	s     *shard
	step  func()
	sinks *sinks
}

// newCongestionLoad sets the load up and warms it up: the layers' rates
// measured, every subscriber of a simulcast track on its layer, every
// subscriber's estimator fed. simulcast is the publisher's three rids as
// one track (one plain track otherwise); cc is congestion control towards
// every subscriber (transport-wide sequence numbers, the estimator, the
// feedback).
func newCongestionLoad(tb testing.TB, p srtp.ProtectionProfile, n, batch int, simulcast, cc, kernel bool, pause, resume func()) *congestionLoad {
	tb.Helper()
	e := testEngine(tb)
	s := e.shards[0]
	if !kernel {
		s.io = layoutIO{PacketIO: s.io, m: &sendMsgs{gso: true}}
	}
	var sinks *sinks
	if kernel {
		sinks = newSinks(tb, n)
	} else {
		sinks = newIdleSinks(tb, n) // nothing reaches them
	}
	pubKeys := newKeys(tb, p)
	pubAddr := netip.MustParseAddrPort("127.0.0.1:9")
	pub := readyTransport(tb, e, p, pubKeys, newKeys(tb, p), pubAddr)
	s.peers[pubAddr] = pub
	tr := media.Track{Kind: media.Video, SSRC: 0x1234, PayloadType: 96, ClockRate: 90000, Codec: "VP8"}
	if simulcast {
		tr.RIDs = []string{"r0", "r1", "r2"}
		pub.ridExt.Store(benchRIDExt)
	}
	pub.Publish([]media.Track{tr})
	subs := make([]*Transport, n)
	rtcpEnc := make([]*srtp.Context, n)
	recs := make([]twcc.Recorder, n)
	next := make([]uint16, n) // per subscriber: the next transport-wide sequence to report
	for i := range subs {
		in := newKeys(tb, p)
		sub := readyTransport(tb, e, p, in, newKeys(tb, p), sinks.addrs[i])
		s.peers[sinks.addrs[i]] = sub
		if cc {
			c := &congestion{twccID: benchTWCCExt, est: bwe.New(bwe.Config{Initial: 50_000_000, Max: 100_000_000})}
			c.estimate.Store(50_000_000)
			sub.cc.Store(c)
		}
		sub.Subscribe(pub, []media.Track{tr})
		if simulcast {
			sub.LimitLayer(pub, tr.SSRC, i%3)
		}
		rtcpEnc[i] = in.context(tb, p)
		subs[i] = sub
	}
	const ring = 3 * 1024
	stream := simulcastStream(tb, pubKeys.context(tb, p), ring)
	if !simulcast {
		// One SSRC for the plain track: the three rids' packets in turn
		// would be three streams to it.
		stream = encryptedStream(tb, pubKeys.context(tb, p), tr.SSRC, 96, 1100+5, ring)
	}
	buf := make([]byte, bufSize)
	fb := make([]byte, 0, 1500)
	// Each subscriber's encrypted feedback, and those to hand over.
	type from struct {
		pkt  []byte
		addr netip.AddrPort
	}
	fbOut := make([][]byte, n)
	for i := range fbOut {
		fbOut[i] = make([]byte, 0, 1500)
	}
	pkts := make([]from, 0, n)
	now := s.now
	// feedback builds each subscriber's transport feedback for what it was
	// sent since the last, arrivals 20 ms after now, and hands it to the
	// shard; only the handling is measured.
	feedback := func() {
		pause()
		pkts = pkts[:0]
		for i, sub := range subs {
			cc := sub.cc.Load()
			sub.smu.Lock()
			end := cc.seq
			sub.smu.Unlock()
			for ; next[i] != end; next[i]++ {
				recs[i].Record(next[i], now/1000+20_000)
			}
			raw := recs[i].Build(fb[:0], 1, tr.SSRC)
			if len(raw) == 0 {
				continue
			}
			pkt, err := rtcpEnc[i].EncryptRTCP(fbOut[i][:0], raw, nil)
			if err != nil {
				tb.Fatal(err)
			}
			pkts = append(pkts, from{pkt, sinks.addrs[i]})
		}
		resume()
		for _, f := range pkts {
			m := copy(buf, f.pkt)
			s.handle(buf[:m], f.addr)
		}
	}
	i := 0
	step := func() {
		if i == ring {
			pause()
			pub.dec = pubKeys.context(tb, p, srtp.SRTPReplayProtection(128))
			i = 0
			resume()
		}
		now += 1_000_000
		s.now = now
		m := copy(buf, stream[i])
		s.handle(buf[:m], pubAddr)
		i++
		if i%batch == 0 {
			s.flush()
		}
		if cc && i%64 == 0 {
			feedback()
			s.flush()
		}
	}
	fb0 := s.stats.TWCCReceived.Load()
	for range 640 {
		step()
	}
	if simulcast {
		for j, sub := range subs {
			if got := sub.Layer(pub, tr.SSRC); got != j%3 {
				tb.Fatalf("subscriber %d on layer %d after the warm-up, want %d", j, got, j%3)
			}
		}
	}
	if cc {
		// Every estimator took feedback for packets it was told of:
		// the receiver's rate over the ten feedbacks.
		if got := s.stats.TWCCReceived.Load() - fb0; got < uint64(n) {
			tb.Fatalf("%d transport feedbacks handled in the warm-up, want %d at least", got, n)
		}
		for j, sub := range subs {
			c := sub.cc.Load()
			sub.smu.Lock()
			acked := c.est.Acked(now / 1000)
			sub.smu.Unlock()
			if acked <= 0 {
				tb.Fatalf("subscriber %d: no acknowledged rate after the warm-up", j)
			}
		}
	}
	return &congestionLoad{s: s, step: step, sinks: sinks}
}

func benchForwardCongestion(b *testing.B, p srtp.ProtectionProfile, n, batch int, simulcast, cc, kernel bool) {
	l := newCongestionLoad(b, p, n, batch, simulcast, cc, kernel, b.StopTimer, b.StartTimer)
	s, step := l.s, l.step
	b.ReportAllocs()
	fwd0 := s.stats.Forwarded.Load()
	for b.Loop() {
		step()
	}
	elapsed := b.Elapsed()
	fwd := s.stats.Forwarded.Load() - fwd0
	if fwd == 0 {
		b.Fatal("nothing forwarded")
	}
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(fwd), "ns/fwd")
	b.ReportMetric(float64(fwd)/float64(b.N), "fwd/pkt")
	if !kernel {
		if q := l.sinks.queued(); q != 0 {
			b.Fatalf("%d datagrams reached the sinks without the kernel's part", q)
		}
	}
}
