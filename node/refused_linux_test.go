package node

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
)

// refusedAddr returns a loopback address on which every connection attempt
// is refused, for as long as the test runs: a TCP socket bound to a free
// port but never listening (the kernel answers a SYN to it with a reset)
// holds the port, so no other test, here or in another process, can take
// it. A listener closed again would free its port for anyone, and a server
// that took it would answer in place of the refusal the test wants.
func refusedAddr(t testing.TB) netip.AddrPort {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socket: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	// No SO_REUSEADDR: a listener that sets it still cannot share the port.
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("bind: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatalf("getsockname: %v", err)
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sa.(*syscall.SockaddrInet4).Port))
}

// TestRefusedAddr: the address refuses connections, and no listener can
// take its port while the test runs (TestAuthWebhook/unreachable once got
// AUTH-WEBHOOK-BAD-STATUS from whatever server had taken a port the test
// had closed again).
func TestRefusedAddr(t *testing.T) {
	a := refusedAddr(t)
	if c, err := net.Dial("tcp", a.String()); !errors.Is(err, syscall.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		t.Fatalf("dial %s: %v, want connection refused", a, err)
	}
	if ln, err := net.Listen("tcp", a.String()); !errors.Is(err, syscall.EADDRINUSE) {
		if ln != nil {
			ln.Close()
		}
		t.Fatalf("listen on %s: %v, want address in use", a, err)
	}
}
