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
