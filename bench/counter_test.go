//go:build linux

package bench

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/hayate-sfu/hayate/internal/poll"
)

// TestCounterCountsTheSubscribersRTP: a Counter counts, per subscriber
// socket, exactly the datagrams that carry one of its two SSRCs (an SSRC
// with the top bit set included), single sends and GSO sends alike (each
// segment), and nothing else (another SSRC, RTCP); its window counts hold
// only the sequence numbers in the windows, across the 16-bit wrap; the
// socket queues nothing.
func TestCounterCountsTheSubscribersRTP(t *testing.T) {
	server := listenLoopback(t)
	a, b := listenLoopback(t), listenLoopback(t)
	k, err := NewCounter(4)
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	const video, audio, other = 0x1111, 0x90000001, 0x3333
	sa, err := k.Attach(a, [2]uint32{video, audio})
	if err != nil {
		t.Fatal(err)
	}
	sb, err := k.Attach(b, [2]uint32{other, other})
	if err != nil {
		t.Fatal(err)
	}
	to := a.LocalAddr().(*net.UDPAddr)
	send := func(p []byte) {
		t.Helper()
		if _, err := server.WriteToUDP(p, to); err != nil {
			t.Fatal(err)
		}
	}
	// Video from 50, audio from 0xfff0. Video 0-99 and audio
	// 0xffe0-0xffff singly: 50 + 16 in the windows.
	k.OpenWindow(50, 0xfff0)
	for seq := range 100 {
		send(rtpPacket(video, uint16(seq), 200))
	}
	for seq := 0xffe0; seq <= 0xffff; seq++ {
		send(rtpPacket(audio, uint16(seq), 100))
	}
	// The windows end before video 150 and audio 8. Video 100-199 in GSO
	// sends of 10 segments, the last of each shorter, and audio 0-15:
	// 50 + 8 in the windows.
	k.CloseWindow(150, 8)
	for first := 100; first < 200; first += 10 {
		var buf []byte
		for seq := first; seq < first+10; seq++ {
			buf = append(buf, rtpPacket(video, uint16(seq), 200-80*(seq/(first+9)))...)
		}
		sendGSO(t, server, buf, 200, to)
	}
	for seq := range 16 {
		send(rtpPacket(audio, uint16(seq), 100))
	}
	// Not counted: another SSRC, an RTCP sender report (its sender SSRC at
	// bytes 4-7 is the video SSRC), a datagram too short to hold an SSRC.
	for seq := range 20 {
		send(rtpPacket(other, uint16(seq), 200))
	}
	sr := make([]byte, 28)
	sr[0], sr[1] = 0x80, 200
	binary.BigEndian.PutUint32(sr[4:], video)
	send(sr)
	send([]byte{0x80, 96, 0, 1})
	// A marker sent last to b, counted in b's slot: once it and a's 248
	// are counted, a's other datagrams have (almost always) been filtered
	// too, and a count above 248 shows.
	if _, err := server.WriteToUDP(rtpPacket(other, 0, 50), b.LocalAddr().(*net.UDPAddr)); err != nil {
		t.Fatal(err)
	}
	poll.Soon(t, "248 packets and the marker to be counted", func() bool { return k.Count(sa) >= 248 && k.Count(sb) == 1 })
	if got := k.Count(sa); got != 248 {
		t.Fatalf("counted %d packets, want 248 (100 video and 48 audio single, 100 video in GSO sends)", got)
	}
	if got := k.WindowCount(sa); got != 124 {
		t.Fatalf("counted %d packets in the windows, want 124 (video 50-149, audio 0xfff0-7)", got)
	}
	// Every datagram was dropped in the kernel: nothing to read.
	if err := a.SetReadDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if n, _, err := a.ReadFromUDP(make([]byte, 2048)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read %d bytes (%v) from a counted socket, want nothing queued", n, err)
	}
}
