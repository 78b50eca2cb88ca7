package rtpcore

import (
	"testing"
	"time"
)

// TestPLIRateLimit: one PLI per stream per pliInterval, whoever asks.
func TestPLIRateLimit(t *testing.T) {
	ly := &layer{}
	t0 := int64(1_000_000_000_000)
	ms := int64(time.Millisecond)
	for _, c := range []struct {
		at   int64
		want bool
	}{
		{t0, true},
		{t0 + 1*ms, false},   // a burst: one PLI
		{t0 + 299*ms, false}, // still inside the window
		{t0 + 300*ms, true},
		{t0 + 400*ms, false},
		{t0 + 900*ms, true},
	} {
		if got := ly.mayPLI(c.at); got != c.want {
			t.Fatalf("PLI at +%d ms: %v, want %v", (c.at-t0)/ms, got, c.want)
		}
	}
}
