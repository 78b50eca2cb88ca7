// Package poll waits in tests for a condition to hold, with a deadline:
// tests synchronise on what they can observe, never on a sleep.
package poll

import (
	"testing"
	"time"
)

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
