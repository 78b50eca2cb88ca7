package turn

import (
	"strings"
	"testing"

	"github.com/pion/stun/v4"
)

// FuzzOwnCheck: the ufrag check on what a client relays to the node
// never panics on any datagram, and a Binding request passes exactly
// when its USERNAME starts with the allocation's connection's ufrag and a
// colon (RFC 8445 §7.2.2).
func FuzzOwnCheck(f *testing.F) {
	const ufrag = "abcd"
	f.Add([]byte{}, ufrag+":peer")
	f.Add([]byte{0, 1, 0, 0}, ufrag+"x:peer")
	f.Add([]byte{0, 1, 0, 8, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0, 6, 0, 4, 'a', 'b', 'c', 'd'}, "abc")
	f.Add([]byte{0x80, 0x60}, ufrag)
	f.Add([]byte{0, 1, 0xff, 0xfc, 0x21, 0x12, 0xa4, 0x42}, "peer:"+ufrag)
	r := &relay{cred: &cred{ufrag: ufrag}}
	f.Fuzz(func(t *testing.T, raw []byte, username string) {
		r.ownCheck(raw)
		m, err := stun.Build(stun.BindingRequest, stun.TransactionID, stun.NewUsername(username), stun.Fingerprint)
		if err != nil {
			return // a USERNAME STUN cannot carry
		}
		if got, want := r.ownCheck(m.Raw), strings.HasPrefix(username, ufrag+":"); got != want {
			t.Fatalf("USERNAME %q: own check %v, want %v", username, got, want)
		}
	})
}

// TestRelayQueueBound: what the core sends to an allocation whose client
// is not read from stops at relayQueueLen datagrams of at most
// relayBufSize bytes each (bounded memory per allocation); the rest is
// dropped and counted, a datagram longer than relayBufSize is cut to it,
// and the queue drains in order. (The relay is fed directly: a live
// allocation's reader, pion's relay loop, would drain it meanwhile.)
func TestRelayQueueBound(t *testing.T) {
	e := newEnv(t, true, nil)
	q := newRelay(e.srv, &cred{ufrag: "x"}, "udp")
	big := make([]byte, 3*relayBufSize)
	for i := range relayQueueLen + 10 {
		big[0] = byte(i)
		q.fromCore(big)
	}
	if q.n != relayQueueLen {
		t.Fatalf("%d datagrams queued, want the bound %d", q.n, relayQueueLen)
	}
	if got := e.srv.Stats().Dropped["queue_full"]; got != 10 {
		t.Fatalf("queue_full %d, want 10", got)
	}
	buf := make([]byte, 4*relayBufSize)
	for i := range relayQueueLen {
		n, _, err := q.ReadFrom(buf)
		if err != nil || n != relayBufSize || buf[0] != byte(i) {
			t.Fatalf("datagram %d: %d bytes, first %d, %v", i, n, buf[0], err)
		}
	}
}
