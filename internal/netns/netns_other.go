//go:build !linux

package netns

import "testing"

// Isolate skips the test: network namespaces are Linux's. The tests that
// need one (fixed ports, firewall rules) run on Linux, as in CI.
func Isolate(t *testing.T, env ...string) bool {
	t.Helper()
	t.Skip("needs a network namespace of its own, which only Linux has")
	return false
}
