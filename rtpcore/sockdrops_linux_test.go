package rtpcore

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestReceiveDropsCounted: datagrams that find a media socket's receive
// buffer full are counted by receiveDrops (directly and through the links'
// wrapper), exactly: what was read plus what was dropped is what was sent.
func TestReceiveDropsCounted(t *testing.T) {
	socks, err := listenMedia(netip.MustParseAddrPort("127.0.0.1:0"), 1)
	if err != nil {
		t.Fatal(err)
	}
	m := socks[0]
	defer m.Close()
	// A small buffer, so that a burst overflows it.
	if err := m.raw.Control(func(fd uintptr) {
		err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 16<<10)
	}); err != nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(m.LocalAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const sent = 200
	for range sent {
		if _, err := c.Write(make([]byte, 1200)); err != nil {
			t.Fatal(err)
		}
	}
	var r receiveDropper = &routeIO{PacketIO: m}
	b := NewRecvBatch()
	read := 0
	deadline := time.Now().Add(30 * time.Second)
	for {
		n, err := m.Recv(b, time.Now().Add(50*time.Millisecond))
		if err != nil && !errors.Is(err, ErrTimeout) {
			t.Fatal(err)
		}
		read += n
		d1, ok1 := m.receiveDrops()
		d2, ok2 := r.receiveDrops()
		if !ok1 || !ok2 || d1 != d2 {
			t.Fatalf("receiveDrops: socket %d (%v), through the links %d (%v)", d1, ok1, d2, ok2)
		}
		if read+int(d1) == sent {
			if d1 == 0 {
				t.Fatalf("all %d datagrams read: the buffer did not overflow, the test proves nothing", sent)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d datagrams read and %d counted as dropped, want %d in all", read, d1, sent)
		}
	}
}
