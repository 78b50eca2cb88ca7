//go:build linux

package bench

import (
	"encoding/binary"
	"net"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/hayate-sfu/hayate/internal/poll"
)

// TestTapCountsWhatTheServerPortSends: the tap gives a subscriber every
// datagram sent to its port from the server's port, single sends and GSO
// sends alike (one packet on lo, split by segment size), and nothing from
// any other port.
func TestTapCountsWhatTheServerPortSends(t *testing.T) {
	server := listenLoopback(t)
	other := listenLoopback(t)
	viewer := listenLoopback(t)
	if err := dropAll(viewer); err != nil {
		t.Fatal(err)
	}
	tap, err := NewTap(uint16(server.LocalAddr().(*net.UDPAddr).Port), 8<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer tap.Close()
	s := &Subscriber{ssrc: [2]uint32{0x1111, 0x2222}, done: make(chan struct{})}
	to := viewer.LocalAddr().(*net.UDPAddr)
	tap.add(uint16(to.Port), s)

	// From another port: not the server's, not counted.
	for seq := range 10 {
		if _, err := other.WriteToUDP(rtpPacket(0x1111, uint16(seq), 200), to); err != nil {
			t.Fatal(err)
		}
	}
	// 100 single datagrams (sequence 0-99), then 100 in GSO sends of 10
	// segments of 200 bytes, the last segment of each shorter (100-199).
	for seq := range 100 {
		if _, err := server.WriteToUDP(rtpPacket(0x1111, uint16(seq), 200), to); err != nil {
			t.Fatal(err)
		}
	}
	for first := 100; first < 200; first += 10 {
		var buf []byte
		for seq := first; seq < first+10; seq++ {
			size := 200
			if seq == first+9 {
				size = 120
			}
			buf = append(buf, rtpPacket(0x1111, uint16(seq), size)...)
		}
		sendGSO(t, server, buf, 200, to)
	}
	poll.Soon(t, "the tap to count 200 packets", func() bool { return s.Packets() >= 200 })
	if got := s.Packets(); got != 200 {
		t.Fatalf("tap counted %d packets, want 200 (10 came from another port)", got)
	}
	if got := s.count(0, 0, 200); got != 200 {
		t.Fatalf("sequence numbers 0-199: %d seen, want 200", got)
	}
	if d, err := tap.Drops(); err != nil || d != 0 {
		t.Fatalf("tap drops %d, %v", d, err)
	}
}

func listenLoopback(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rtpPacket is an RTP packet of size bytes with ssrc and seq.
func rtpPacket(ssrc uint32, seq uint16, size int) []byte {
	p := make([]byte, size)
	p[0], p[1] = 0x80, 96
	binary.BigEndian.PutUint16(p[2:], seq)
	binary.BigEndian.PutUint32(p[8:], ssrc)
	return p
}

// sendGSO sends buf to to as datagrams of seg bytes in one sendmsg.
func sendGSO(t *testing.T, c *net.UDPConn, buf []byte, seg int, to *net.UDPAddr) {
	t.Helper()
	oob := make([]byte, unix.CmsgSpace(2))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(oob[unix.CmsgLen(0):], uint16(seg))
	if _, _, err := c.WriteMsgUDP(buf, oob, to); err != nil {
		t.Fatalf("GSO send: %v", err)
	}
}
