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
		before := s.stats.PacketsIn.Load()
		queued := s.sb.Len()
		s.handle(buf[:n], from)
		if s.stats.PacketsIn.Load() != before+1 {
			t.Fatal("datagram not counted")
		}
		if !fromPub && len(pkt) > 0 && pkt[0] >= 20 && s.sb.Len() != queued {
			t.Fatal("a non-STUN datagram from an unknown address produced output")
		}
		s.sb.reset()
	})
}
