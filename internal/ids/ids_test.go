package ids

import "testing"

func TestNewShapeAndUniqueness(t *testing.T) {
	seen := make(map[string]bool, 10000)
	for range 10000 {
		id := New()
		if !Valid(id) {
			t.Fatalf("New() = %q is not a valid id", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
}

func TestEncodeKnownValue(t *testing.T) {
	var all [16]byte
	for i := range all {
		all[i] = 0xff
	}
	if got := encode(all); got != "ZZZZZZZZZZZZZZZZZZZZZZZZZW" {
		t.Fatalf("encode(all ones) = %q", got)
	}
	var top [16]byte
	top[0] = 0x84 // 10000 100|00 ...
	if got := encode(top); got != "GG000000000000000000000000" {
		t.Fatalf("encode(0x84...) = %q", got)
	}
}

func TestValidRejects(t *testing.T) {
	for _, s := range []string{"", "SCVC9JRZZ900F0KC32T3GY6FB", "ICVC9JRZZ900F0KC32T3GY6FBR", "UCVC9JRZZ900F0KC32T3GY6FBR", "scvc9jrzz900f0kc32t3gy6fbr"} {
		if Valid(s) {
			t.Errorf("Valid(%q) = true", s)
		}
	}
	if !Valid("SCVC9JRZZ900F0KC32T3GY6FBR") {
		t.Error("Sora's example id rejected")
	}
}

func TestICE(t *testing.T) {
	s := ICE(32)
	if len(s) != 32 {
		t.Fatalf("len = %d", len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/'
		if !ok {
			t.Fatalf("non ice-char %q in %q", c, s)
		}
	}
}
