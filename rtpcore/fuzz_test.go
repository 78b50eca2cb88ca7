//go:build linux

package rtpcore

import (
	"net/netip"
	"testing"

	"github.com/pion/srtp/v3"
)

// FuzzDemux feeds arbitrary datagrams to a shard, from an address that did
// not pass ICE and from a connected publisher: nothing may panic, nothing
// from the unknown address may reach a subscriber, and every datagram is
// counted.
func FuzzDemux(f *testing.F) {
	fan := newFanout(f, srtp.ProtectionProfileAeadAes128Gcm, 1)
	s := fan.e.shards[0]
	pub := fan.pubAddr(s)
	stranger := netip.MustParseAddrPort("127.0.0.1:1")
	good := encryptedStream(f, fan.pubKeys.context(f, fan.prof), fan.ssrc, 96, 100, 4)
	for _, g := range good {
		f.Add(g, true)
	}
	f.Add([]byte{0, 1, 0, 8, 0x21, 0x12, 0xa4, 0x42, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 1, 'x'}, false)
	f.Add([]byte{22, 254, 253, 0, 0, 0, 0, 0, 0, 0, 0, 0, 20}, true)
	f.Add([]byte{0x80, 200, 0, 6, 0, 0, 0, 1}, true)
	f.Add([]byte{0x80}, true)
	f.Add([]byte{}, false)
	buf := make([]byte, bufSize)
	f.Fuzz(func(t *testing.T, pkt []byte, fromPub bool) {
		if len(pkt) > bufSize {
			pkt = pkt[:bufSize]
		}
		n := copy(buf, pkt)
		from := stranger
		if fromPub {
			from = pub
		}
		produced := feed(t, s, buf[:n], from)
		if !fromPub && len(pkt) > 0 && pkt[0] >= 20 && produced != 0 {
			t.Fatal("a non-STUN datagram from an unknown address produced output")
		}
	})
}

// feed hands one datagram to the shard as its receive loop would (handle,
// then forward at the end of the batch), checks that it was counted, and
// returns the number of datagrams it produced, which it then forgets.
func feed(t *testing.T, s *shard, b []byte, from netip.AddrPort) int {
	t.Helper()
	before := s.stats.PacketsIn.Load()
	s.handle(b, from)
	if s.stats.PacketsIn.Load() != before+1 {
		t.Fatal("datagram not counted")
	}
	s.forwardPending()
	n := s.sb.Len()
	s.sb.reset()
	return n
}

// FuzzRTCP feeds arbitrary plaintext RTCP compounds, encrypted with the
// right keys, from the publisher and from a subscriber: what the parser of
// SR, RR, NACK, PLI, FIR and REMB sees after SRTCP authentication. Nothing
// may panic and every datagram is counted.
func FuzzRTCP(f *testing.F) {
	fan := newFanout(f, srtp.ProtectionProfileAeadAes128Gcm, 1)
	s := fan.e.shards[0]
	pub := fan.pubAddr(s)
	sub := fan.sinks.addrs[0]
	s.peers[sub] = fan.subs[0]
	encs := map[bool]*srtp.Context{
		true:  fan.pubKeys.context(f, fan.prof),
		false: fan.subIn[0].context(f, fan.prof),
	}
	ssrc := func(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }
	sr := append([]byte{0x80, 200, 0, 6}, ssrc(fan.ssrc)...)
	sr = append(sr, make([]byte, 20)...)
	rr := append([]byte{0x81, 201, 0, 7, 0, 0, 0, 1}, ssrc(fan.ssrc)...)
	rr = append(rr, make([]byte, 20)...)
	nack := append(append([]byte{0x81, 205, 0, 3, 0, 0, 0, 1}, ssrc(fan.ssrc)...), 0, 5, 0xff, 0xff)
	pli := append([]byte{0x81, 206, 0, 2, 0, 0, 0, 1}, ssrc(fan.ssrc)...)
	fir := append(append([]byte{0x84, 206, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0}, ssrc(fan.ssrc)...), 7, 0, 0, 0)
	remb := append([]byte{0x8f, 206, 0, 5, 0, 0, 0, 1, 0, 0, 0, 0, 'R', 'E', 'M', 'B', 1, 0x0f, 0xff, 0xff}, ssrc(fan.ssrc)...)
	for _, seed := range [][]byte{sr, rr, nack, pli, fir, remb, append(append([]byte{}, rr...), pli...),
		{0x80, 200, 0xff, 0xff, 0, 0, 0, 1}, {0x81, 205, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2}} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	buf := make([]byte, bufSize)
	f.Fuzz(func(t *testing.T, plain []byte, fromPub bool) {
		if len(plain) < 8 || len(plain) > 1200 {
			return // SRTCP needs a header; larger ones cannot be sent
		}
		plain = append([]byte(nil), plain...)
		plain[0] = 0x80 | plain[0]&0x3f // version 2, so the demux sees RTCP
		plain[1] = 192 + plain[1]%32
		pkt, err := encs[fromPub].EncryptRTCP(nil, plain, nil)
		if err != nil {
			return
		}
		from := sub
		if fromPub {
			from = pub
		}
		feed(t, s, buf[:copy(buf, pkt)], from)
	})
}

// FuzzRTP feeds arbitrary plaintext RTP from the publisher, encrypted with
// its keys (so header extensions, CSRCs, padding and odd payload types reach
// the forwarding code), optionally with the published SSRC.
func FuzzRTP(f *testing.F) {
	fan := newFanout(f, srtp.ProtectionProfileAeadAes128Gcm, 2)
	s := fan.e.shards[0]
	pub := fan.pubAddr(s)
	enc := fan.pubKeys.context(f, fan.prof)
	f.Add([]byte{0x80, 96, 0, 1, 0, 0, 0, 1, 0, 0, 0x12, 0x34, 1, 2, 3}, true)
	f.Add([]byte{0x90, 96, 0, 2, 0, 0, 0, 1, 0, 0, 0x12, 0x34, 0xbe, 0xde, 0, 1, 0x10, 0xff, 0, 0, 9}, true)
	f.Add([]byte{0xa0, 96, 0, 3, 0, 0, 0, 1, 0, 0, 0x12, 0x34, 9, 9, 0, 0, 3}, true)
	f.Add([]byte{0x8f, 0xe0, 0, 4, 0, 0, 0, 1, 0, 0, 0x12, 0x34}, true)
	f.Add([]byte{0x80, 111, 0, 5, 0, 0, 0, 1, 0, 0, 0, 9, 1}, false)
	buf := make([]byte, bufSize)
	var seq uint16
	f.Fuzz(func(t *testing.T, plain []byte, published bool) {
		if len(plain) < 12 || len(plain) > 1200 {
			return
		}
		plain = append([]byte(nil), plain...)
		plain[0] = 0x80 | plain[0]&0x3f
		if plain[1]&0x7f >= 64 && plain[1]&0x7f <= 95 {
			plain[1] ^= 0x20 // keep it RTP (RFC 5761 §4)
		}
		// Fresh sequence numbers, so replay protection lets it through.
		seq++
		plain[2], plain[3] = byte(seq>>8), byte(seq)
		if published {
			plain[8], plain[9], plain[10], plain[11] = byte(fan.ssrc>>24), byte(fan.ssrc>>16), byte(fan.ssrc>>8), byte(fan.ssrc)
		}
		pkt, err := enc.EncryptRTP(nil, plain, nil)
		if err != nil {
			return
		}
		// One copy per subscriber, and at most a PLI back to the publisher
		// (a subscriber without a key frame yet).
		if n := feed(t, s, buf[:copy(buf, pkt)], pub); n > 3 {
			t.Fatalf("one packet produced %d datagrams for 2 subscribers", n)
		}
	})
}
