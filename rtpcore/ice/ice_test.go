package ice

import (
	"net/netip"
	"testing"

	"github.com/pion/stun/v4"
)

var from = netip.MustParseAddrPort("127.0.0.1:40000")

func request(t testing.TB, user, pwd string, extra ...stun.Setter) []byte {
	t.Helper()
	setters := append([]stun.Setter{stun.BindingRequest, stun.TransactionID, stun.NewUsername(user)}, extra...)
	setters = append(setters, stun.NewShortTermIntegrity(pwd), stun.Fingerprint)
	m, err := stun.Build(setters...)
	if err != nil {
		t.Fatal(err)
	}
	return m.Raw
}

type rawAttr struct {
	t stun.AttrType
	v []byte
}

func (a rawAttr) AddTo(m *stun.Message) error { m.Add(a.t, a.v); return nil }

var priority = rawAttr{stun.AttrPriority, []byte{1, 2, 3, 4}}
var useCandidate = rawAttr{stun.AttrUseCandidate, nil}

func TestHandle(t *testing.T) {
	a := NewAgent("ourU", "our-password-0123456789")
	lookup := func(u []byte) *Agent {
		if string(u) == a.LocalUfrag {
			return a
		}
		return nil
	}
	var r Responder
	// A valid check is answered with XOR-MAPPED-ADDRESS, signed with our password.
	ag, resp, out := r.Handle(request(t, "ourU:theirs", a.LocalPwd, priority), from, lookup)
	if out != Answered || ag != a {
		t.Fatalf("outcome %v", out)
	}
	m := &stun.Message{Raw: append([]byte(nil), resp...)}
	if err := m.Decode(); err != nil || m.Type != stun.BindingSuccess {
		t.Fatalf("response %v %v", m.Type, err)
	}
	if err := stun.NewShortTermIntegrity(a.LocalPwd).Check(m); err != nil {
		t.Fatalf("integrity: %v", err)
	}
	if err := stun.Fingerprint.Check(m); err != nil {
		t.Fatalf("fingerprint: %v", err)
	}
	var xa stun.XORMappedAddress
	if err := xa.GetFrom(m); err != nil || xa.Port != 40000 || !xa.IP.Equal([]byte{127, 0, 0, 1}) {
		t.Fatalf("xor-mapped-address %v %v", xa, err)
	}
	if _, ok := a.Selected(); ok {
		t.Fatal("selected without USE-CANDIDATE")
	}
	// USE-CANDIDATE nominates.
	if _, _, out := r.Handle(request(t, "ourU:theirs", a.LocalPwd, priority, useCandidate), from, lookup); out != Nominated {
		t.Fatalf("nomination outcome %v", out)
	}
	if sel, ok := a.Selected(); !ok || sel != from {
		t.Fatalf("selected %v", sel)
	}
	// Wrong password: 401 without MESSAGE-INTEGRITY, nothing selected.
	b := NewAgent("ourB", "b-password-0123456789012")
	lookupB := func([]byte) *Agent { return b }
	_, resp, out = r.Handle(request(t, "ourB:theirs", "wrong-password-12345678", priority, useCandidate), from, lookupB)
	if out != Unauthorized {
		t.Fatalf("wrong password outcome %v", out)
	}
	m = &stun.Message{Raw: append([]byte(nil), resp...)}
	var code stun.ErrorCodeAttribute
	if m.Decode() != nil || code.GetFrom(m) != nil || code.Code != stun.CodeUnauthorized || m.Contains(stun.AttrMessageIntegrity) {
		t.Fatalf("401 response wrong: %v", code)
	}
	if _, ok := b.Selected(); ok {
		t.Fatal("unauthenticated request selected an address")
	}
	// Missing PRIORITY: 400. Unknown ufrag: dropped silently.
	if _, _, out := r.Handle(request(t, "ourU:theirs", a.LocalPwd), from, lookup); out != BadRequest {
		t.Fatalf("no PRIORITY: %v", out)
	}
	if _, resp, out := r.Handle(request(t, "nobody:theirs", "x", priority), from, lookup); out != UnknownUfrag || resp != nil {
		t.Fatalf("unknown ufrag: %v %v", out, resp)
	}
	// The peer's ufrag is checked once known; the previous one stays valid
	// through an ICE restart by the peer.
	a.SetRemoteUfrag("theirs")
	a.SetRemoteUfrag("restarted")
	for user, want := range map[string]Outcome{"ourU:theirs": Answered, "ourU:restarted": Answered, "ourU:other": BadRequest} {
		if _, _, out := r.Handle(request(t, user, a.LocalPwd, priority), from, lookup); out != want {
			t.Errorf("%s: %v, want %v", user, out, want)
		}
	}
	// A response is not answered.
	resp2, _ := stun.Build(stun.BindingSuccess, stun.TransactionID, stun.Fingerprint)
	if _, _, out := r.Handle(resp2.Raw, from, lookup); out != Ignored {
		t.Fatalf("response: %v", out)
	}
}

func FuzzHandle(f *testing.F) {
	a := NewAgent("ourU", "our-password-0123456789")
	lookup := func(u []byte) *Agent {
		if string(u) == a.LocalUfrag {
			return a
		}
		return nil
	}
	f.Add(request(f, "ourU:theirs", a.LocalPwd, priority, useCandidate))
	f.Add(request(f, "ourU:theirs", "bad", priority))
	f.Add(request(f, "x", a.LocalPwd))
	f.Add([]byte{0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12})
	var r Responder
	f.Fuzz(func(t *testing.T, pkt []byte) {
		ag, resp, out := r.Handle(pkt, from, lookup)
		switch out {
		case Answered, Nominated:
			if ag != a {
				t.Fatal("answered without the agent")
			}
			m := &stun.Message{Raw: append([]byte(nil), resp...)}
			if m.Decode() != nil || stun.NewShortTermIntegrity(a.LocalPwd).Check(m) != nil {
				t.Fatal("success response does not verify")
			}
		default:
			if ag != nil {
				t.Fatal("agent returned for a refused request")
			}
		}
	})
}

func BenchmarkHandle(b *testing.B) {
	a := NewAgent("ourU", "our-password-0123456789")
	lookup := func([]byte) *Agent { return a }
	req := request(b, "ourU:theirs", a.LocalPwd, priority, useCandidate)
	var r Responder
	b.ReportAllocs()
	for b.Loop() {
		if _, _, out := r.Handle(req, from, lookup); out != Nominated {
			b.Fatal(out)
		}
	}
}
