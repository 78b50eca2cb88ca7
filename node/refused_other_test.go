//go:build !linux

package node

import (
	"net/netip"
	"testing"
)

// refusedAddr: see refused_linux_test.go. The node's tests run on Linux.
func refusedAddr(t testing.TB) netip.AddrPort {
	t.Helper()
	t.Skip("a bound, never listening socket is set up on Linux only")
	return netip.AddrPort{}
}
