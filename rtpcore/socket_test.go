//go:build linux

package rtpcore

import (
	"bytes"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hayate-sfu/hayate/internal/poll"
)

func TestCmsgSpaceConstant(t *testing.T) {
	if cmsgSegmentSpace != unix.CmsgSpace(2) {
		t.Fatalf("cmsgSegmentSpace %d, unix.CmsgSpace(2) %d", cmsgSegmentSpace, unix.CmsgSpace(2))
	}
}

// TestSendGSOAndOrder: a batch mixing destinations and sizes arrives whole
// and in order per destination, with equal-size runs to one destination
// sent as one GSO message; for each backend.
func TestSendGSOAndOrder(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) { testSendGSOAndOrder(t, be) })
	}
}

func testSendGSOAndOrder(t *testing.T, be backend) {
	s := be.listen(t, netip.MustParseAddrPort("127.0.0.1:0"), 1)[0]
	l := layout(s)
	var dst [2]*net.UDPConn
	var addr [2]netip.AddrPort
	for i := range dst {
		dst[i], _ = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		defer dst[i].Close()
		addr[i], _ = netip.ParseAddrPort(dst[i].LocalAddr().String())
	}
	b := NewSendBatch()
	type sent struct {
		to  int
		pkt []byte
	}
	var want []sent
	add := func(to, size int, tag byte) {
		p := bytes.Repeat([]byte{tag}, size)
		b.Commit(append(b.Slot(), p...), addr[to])
		want = append(want, sent{to, p})
	}
	// Destination 0: four of 1200 then one of 700 (one GSO message of 5).
	// Destination 1: 1200, 1300, 1300 (two messages: sizes change).
	add(0, 1200, 1)
	add(1, 1200, 2)
	add(0, 1200, 3)
	add(1, 1300, 4)
	add(0, 1200, 5)
	add(0, 1200, 6)
	add(1, 1300, 7)
	add(0, 700, 8)
	if err := s.Send(b); err != nil {
		t.Fatal(err)
	}
	if b.Datagrams != 8 || b.Errors != 0 {
		t.Fatalf("datagrams %d errors %d", b.Datagrams, b.Errors)
	}
	if l.gso && l.smsgs != 3 {
		t.Fatalf("%d messages, want 3 (GSO groups)", l.smsgs)
	}
	for i := range dst {
		var exp [][]byte
		for _, w := range want {
			if w.to == i {
				exp = append(exp, w.pkt)
			}
		}
		buf := make([]byte, 2048)
		for k, e := range exp {
			dst[i].SetReadDeadline(time.Now().Add(poll.Patience))
			n, _, err := dst[i].ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatalf("destination %d datagram %d: %v", i, k, err)
			}
			if !bytes.Equal(buf[:n], e) {
				t.Fatalf("destination %d datagram %d: got %d bytes of %d, want %d of %d", i, k, n, buf[0], len(e), e[0])
			}
		}
	}
	// Without GSO the same batch goes as eight messages.
	l.gso = false
	want = nil
	add(0, 100, 9)
	add(0, 100, 10)
	if err := s.Send(b); err != nil || l.smsgs != 2 {
		t.Fatalf("no-GSO send: %v, %d messages", err, l.smsgs)
	}
}

// TestRecvBatch: a receive fills the batch with datagrams and sources, for
// each backend. Each socket has its own batch, as each receive loop does.
func TestRecvBatch(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) { testRecvBatch(t, be) })
	}
}

func testRecvBatch(t *testing.T, be backend) {
	socks := be.listen(t, netip.MustParseAddrPort("127.0.0.1:0"), 2)
	if socks[0].LocalAddr() != socks[1].LocalAddr() {
		t.Fatalf("SO_REUSEPORT sockets on different ports: %v %v", socks[0].LocalAddr(), socks[1].LocalAddr())
	}
	c, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	defer c.Close()
	from, _ := netip.ParseAddrPort(c.LocalAddr().String())
	for i := range 5 {
		c.WriteToUDPAddrPort([]byte{byte(i), 1, 2}, socks[0].LocalAddr())
	}
	// The kernel picks one of the two sockets for this 4-tuple; read both.
	got := 0
	rbs := []*RecvBatch{NewRecvBatch(), NewRecvBatch()}
	deadline := time.Now().Add(poll.Patience)
	for got < 5 && time.Now().Before(deadline) {
		for k, s := range socks {
			rb := rbs[k]
			n, err := s.Recv(rb, time.Now().Add(50*time.Millisecond))
			if err != nil && err != ErrTimeout {
				t.Fatal(err)
			}
			for i := range n {
				if rb.Addrs[i] != from || rb.Lens[i] != 3 || rb.Bufs[i][0] != byte(got) {
					t.Fatalf("datagram %d: %v %d % x", got, rb.Addrs[i], rb.Lens[i], rb.Bufs[i][:rb.Lens[i]])
				}
				got++
			}
		}
	}
	if got != 5 {
		t.Fatalf("received %d of 5", got)
	}
}
