// Package poll waits in tests for a condition to hold, with a deadline:
// tests synchronise on what they can observe, never on a sleep.
package poll

import (
	"testing"
	"time"
)

// Patience is how long a test waits for something that should happen
// soon. It is sized for a loaded 2-core machine running the suite under
// -race beside another suite: a wait costs only as long as the condition
// takes, so a generous deadline makes a test slower only when it fails.
const Patience = 30 * time.Second

// Until checks cond every few milliseconds until it holds, and fails the
// test naming what was awaited once d has passed.
func Until(tb testing.TB, what string, d time.Duration, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Soon waits for cond with Patience.
func Soon(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	Until(tb, what, Patience, cond)
}
