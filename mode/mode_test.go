package mode

import (
	"errors"
	"sync"
	"testing"
)

func TestParseRoundTrip(t *testing.T) {
	for _, m := range []Mode{Normal, BlockNewSession, BlockNewConnection} {
		got, err := Parse(m.String())
		if err != nil || got != m {
			t.Errorf("Parse(%q) = %v, %v; want %v", m.String(), got, err, m)
		}
	}
	for _, bad := range []string{"", "NORMAL", "block", "block_new_connection ", "maintenance"} {
		if _, err := Parse(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) error = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestAdmitTable(t *testing.T) {
	cases := []struct {
		m    Mode
		live bool
		want Refusal
	}{
		{Normal, false, RefuseNone},
		{Normal, true, RefuseNone},
		{BlockNewSession, false, RefuseNewSession},
		{BlockNewSession, true, RefuseNone},
		{BlockNewConnection, false, RefuseNewConnection},
		{BlockNewConnection, true, RefuseNewConnection},
	}
	for _, c := range cases {
		if got := Admit(c.m, c.live); got != c.want {
			t.Errorf("Admit(%v, live=%v) = %v, want %v", c.m, c.live, got, c.want)
		}
	}
	if RefuseNewConnection.Reason() != "BLOCKED-NEW-CONNECTION" || RefuseNewSession.Reason() != "BLOCKED-NEW-SESSION" {
		t.Fatalf("close reasons changed: %q %q", RefuseNewConnection.Reason(), RefuseNewSession.Reason())
	}
}

func TestWordEffectiveIsStricter(t *testing.T) {
	w := NewWord(BlockNewSession)
	if w.Load() != BlockNewSession {
		t.Fatalf("initial effective = %v", w.Load())
	}
	before, after := w.SetHealth(BlockNewConnection)
	if before != BlockNewSession || after != BlockNewConnection {
		t.Fatalf("SetHealth: before %v after %v", before, after)
	}
	w.SetOperator(Normal)
	if w.Load() != BlockNewConnection || w.Operator() != Normal || w.Health() != BlockNewConnection {
		t.Fatalf("effective %v operator %v health %v", w.Load(), w.Operator(), w.Health())
	}
	w.SetHealth(Normal)
	if w.Load() != Normal {
		t.Fatalf("effective after healthy = %v", w.Load())
	}
}

// BenchmarkAdmission measures the admission check as the signaling path runs
// it: one atomic load of the mode word and the admission rule.
func BenchmarkAdmission(b *testing.B) {
	w := NewWord(Normal)
	modes := [...]Mode{Normal, BlockNewSession, BlockNewConnection}
	var admitted int
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i&1023 == 0 {
			w.SetOperator(modes[(i>>10)%3])
		}
		if Admit(w.Load(), i&1 == 0) == RefuseNone {
			admitted++
		}
		i++
	}
	if admitted == 0 {
		b.Fatal("nothing admitted")
	}
}

// BenchmarkAdmissionMutexBaseline is the same check with the mode behind a
// sync.Mutex, as a baseline for the lock-free word in the same run.
func BenchmarkAdmissionMutexBaseline(b *testing.B) {
	var mu sync.Mutex
	m := Normal
	modes := [...]Mode{Normal, BlockNewSession, BlockNewConnection}
	var admitted int
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i&1023 == 0 {
			mu.Lock()
			m = modes[(i>>10)%3]
			mu.Unlock()
		}
		mu.Lock()
		cur := m
		mu.Unlock()
		if Admit(cur, i&1 == 0) == RefuseNone {
			admitted++
		}
		i++
	}
	if admitted == 0 {
		b.Fatal("nothing admitted")
	}
}

// BenchmarkAdmissionParallel reads the word from every P at once, as
// concurrent connects do.
func BenchmarkAdmissionParallel(b *testing.B) {
	w := NewWord(BlockNewSession)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		n := 0
		for pb.Next() {
			if Admit(w.Load(), n&1 == 0) == RefuseNone {
				n++
			}
		}
	})
}
