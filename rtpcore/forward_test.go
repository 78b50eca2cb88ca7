//go:build linux

package rtpcore

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"

	"github.com/hayate-sfu/hayate/internal/poll"
)

var profiles = []struct {
	name string
	p    srtp.ProtectionProfile
}{{"GCM", srtp.ProtectionProfileAeadAes128Gcm}, {"CM", srtp.ProtectionProfileAes128CmHmacSha1_80}}

// TestForwardDecryptsOnceEncryptsPerSubscriber: a publisher packet reaches
// every subscriber, each under its own keys, with the RTP packet unchanged.
func TestForwardDecryptsOnceEncryptsPerSubscriber(t *testing.T) {
	for _, prof := range profiles {
		t.Run(prof.name, func(t *testing.T) {
			f := newFanout(t, prof.p, 3)
			s := f.e.shards[0]
			enc := f.pubKeys.context(t, prof.p)
			orig := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: 7, Timestamp: 90, SSRC: f.ssrc, Marker: true}, Payload: []byte("vp8 frame data")}
			raw, _ := orig.Marshal()
			in, _ := enc.EncryptRTP(nil, raw, nil)
			// Decode what the sockets would send by encrypting with a
			// recording shard: take the batch before the flush.
			buf := append(make([]byte, 0, bufSize), in...)
			s.handleRTP(f.pub, buf)
			s.forwardPending()
			// The PLI asking the publisher for a key frame for the new
			// subscribers, then three forwards.
			if s.sb.Len() != 4 || s.sb.to[0] != netip.MustParseAddrPort("127.0.0.1:9") {
				t.Fatalf("%d datagrams queued, want a PLI to the publisher and 3 forwards", s.sb.Len())
			}
			pli, err := f.pubOut.context(t, prof.p).DecryptRTCP(nil, s.sb.slots[0][:s.sb.lens[0]], nil)
			if err != nil || pli[1] != 206 || pli[0]&0x1f != 1 {
				t.Fatalf("not a PLI: % x %v", pli, err)
			}
			for i := range 3 {
				dec := f.subKeys[i].context(t, prof.p)
				got, err := dec.DecryptRTP(nil, s.sb.slots[i+1][:s.sb.lens[i+1]], nil)
				if err != nil {
					t.Fatalf("subscriber %d cannot decrypt: %v", i, err)
				}
				if !bytes.Equal(got, raw) {
					t.Fatalf("subscriber %d got a different packet", i)
				}
				if s.sb.to[i+1] != f.sinks.addrs[i] {
					t.Fatalf("subscriber %d sent to %v", i, s.sb.to[i+1])
				}
			}
			s.sb.reset()
			// A replay of the same packet is dropped, not forwarded.
			buf = append(buf[:0], in...)
			s.handleRTP(f.pub, buf)
			s.forwardPending()
			if s.sb.Len() != 0 || s.stats.DropSRTPReplay.Load() != 1 {
				t.Fatalf("replay forwarded (%d) or not counted", s.sb.Len())
			}
		})
	}
}

// TestForwardZeroAllocs: forwarding one packet to many subscribers and
// flushing allocates nothing in steady state, on one shard and with the
// subscribers on two (decrypt, hand off, forward on both, flush both);
// every subscriber gets every packet, and with two shards both forward.
func TestForwardZeroAllocs(t *testing.T) {
	for _, shards := range []int{1, 2} {
		t.Run(fmt.Sprintf("shards=%d", shards), func(t *testing.T) {
			f := newFanoutOn(t, srtp.ProtectionProfileAeadAes128Gcm, 20, shards)
			s := f.e.shards[0]
			stream := encryptedStream(t, f.pubKeys.context(t, f.prof), f.ssrc, 96, 1100, 200)
			buf := make([]byte, bufSize)
			from := f.pubAddr(s)
			i := 0
			step := func() {
				n := copy(buf, stream[i])
				s.handle(buf[:n], from)
				for _, o := range f.e.shards {
					o.flush()
				}
				i++
			}
			for range 20 { // warm up: maps, contexts and the handoff pool created
				step()
			}
			if a := testing.AllocsPerRun(100, step); a != 0 {
				t.Fatalf("%v allocations per forwarded packet", a)
			}
			waitSinks(t, f.sinks, 20*(20+100+1))
			for j, o := range f.e.shards {
				if o.stats.Forwarded.Load() == 0 {
					t.Fatalf("shard %d forwarded nothing", j)
				}
			}
		})
	}
}

func waitSinks(t *testing.T, s *sinks, n int) {
	t.Helper()
	deadline := time.Now().Add(poll.Patience)
	for s.received() < n {
		if time.Now().After(deadline) {
			t.Fatalf("sinks got %d of %d datagrams", s.received(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkForward: one publisher packet (1100-byte VP8 payload, real SRTP)
// to N subscribers through the real receive path (demux, decrypt once, copy
// and encrypt per subscriber into the batch) and the batch flushed with
// sendmmsg to N loopback sinks. ns/fwd is the cost per forwarded packet.
//
//	go test -run '^$' -bench Forward -benchmem ./rtpcore/
func BenchmarkForward(b *testing.B) {
	for _, prof := range profiles {
		for _, n := range []int{1, 10, 100} {
			b.Run(fmt.Sprintf("%s/subs=%d", prof.name, n), func(b *testing.B) { benchForward(b, prof.p, n) })
		}
	}
}

func benchForward(b *testing.B, p srtp.ProtectionProfile, n int) { benchForwardOn(b, p, n, 1) }

// benchForwardOn runs benchForward on an engine of shards shards, flushing
// each after the publisher's.
func benchForwardOn(b *testing.B, p srtp.ProtectionProfile, n, shards int) {
	f := newFanoutOn(b, p, n, shards)
	s := f.e.shards[0]
	const ring = 4096
	stream := encryptedStream(b, f.pubKeys.context(b, p), f.ssrc, 96, 1100, ring)
	buf := make([]byte, bufSize)
	from := f.pubAddr(s)
	b.SetBytes(int64(len(stream[0]) * n))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == ring {
			// The stream starts over: a fresh decrypt context, so the
			// replay window accepts it again (outside the timer).
			b.StopTimer()
			f.pub.dec = f.pubKeys.context(b, p, srtp.SRTPReplayProtection(128))
			i = 0
			b.StartTimer()
		}
		m := copy(buf, stream[i])
		s.handle(buf[:m], from)
		for _, o := range f.e.shards {
			o.flush()
		}
		i++
	}
	elapsed := b.Elapsed()
	b.ReportMetric(float64(elapsed.Nanoseconds())/float64(b.N*n), "ns/fwd")
	b.ReportMetric(float64(b.N*n)/elapsed.Seconds(), "fwd/s")
}

// BenchmarkForwardFloor is the floor for BenchmarkForward in the same run:
// only encrypting N copies of the packet and sendmmsg-ing them, without
// decryption, lookups or any forwarding logic.
func BenchmarkForwardFloor(b *testing.B) {
	for _, prof := range profiles {
		for _, n := range []int{1, 10, 100} {
			b.Run(fmt.Sprintf("%s/subs=%d", prof.name, n), func(b *testing.B) {
				f := newFanout(b, prof.p, n)
				s := f.e.shards[0]
				plain, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SSRC: f.ssrc}, Payload: make([]byte, 1100)}).Marshal()
				encs := make([]*srtp.Context, n)
				for j := range encs {
					encs[j] = f.subKeys[j].context(b, prof.p)
				}
				var hdr rtp.Header
				b.SetBytes(int64((len(plain) + 16) * n))
				b.ReportAllocs()
				seq := uint16(0)
				for b.Loop() {
					seq++
					plain[2], plain[3] = byte(seq>>8), byte(seq)
					for j := range n {
						slot := append(s.sb.Slot(), plain...)
						out, _ := encs[j].EncryptRTP(slot[:0], slot, &hdr)
						s.sb.Commit(out, f.sinks.addrs[j])
					}
					_ = s.io.Send(s.sb)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/fwd")
			})
		}
	}
}

// TestForwardGroupsBySubscriber: the packets of one receive batch go out
// subscriber by subscriber, so one subscriber's frame is contiguous (and
// leaves as one GSO send).
func TestForwardGroupsBySubscriber(t *testing.T) {
	f := newFanout(t, srtp.ProtectionProfileAeadAes128Gcm, 3)
	s := f.e.shards[0]
	from := f.pubAddr(s)
	stream := encryptedStream(t, f.pubKeys.context(t, f.prof), f.ssrc, 96, 1100, 4)
	bufs := make([][]byte, 4)
	for i := range bufs {
		bufs[i] = append(make([]byte, 0, bufSize), stream[i]...)
		s.handle(bufs[i], from)
	}
	s.forwardPending()
	// Skip the PLI, then 4 datagrams to sink 0, 4 to sink 1, 4 to sink 2.
	got := s.sb.to[1:s.sb.Len()]
	if len(got) != 12 {
		t.Fatalf("%d datagrams", len(got))
	}
	for i, to := range got {
		if to != f.sinks.addrs[i/4] {
			t.Fatalf("datagram %d to %v, want sink %d", i, to, i/4)
		}
	}
	s.sb.reset()
}

// TestProbeCopies: a probe's padding is counted in bytes, so copies of a
// small packet are many and copies of a full one few; never unbounded.
func TestProbeCopies(t *testing.T) {
	for _, c := range []struct{ n, size, plen, want int }{
		{0, 1200, 500, 0},
		{1, 1200, 1134, 1}, // 1,200 bytes: one full-size copy
		{2, 1200, 500, 5},  // 2,400 bytes in copies of 566
		{8, 1200, 100, 32}, // bounded
		{3, 1200, 1134, 3},
	} {
		if got := probeCopies(c.n, c.size, c.plen); got != c.want {
			t.Errorf("probeCopies(%d, %d, %d) = %d, want %d", c.n, c.size, c.plen, got, c.want)
		}
	}
}
