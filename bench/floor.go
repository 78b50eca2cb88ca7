//go:build linux

package bench

import (
	"crypto/rand"
	"encoding/binary"
	"net/netip"
	"runtime"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"golang.org/x/sys/unix"

	"github.com/hayate-sfu/hayate/rtpcore"
)

// Floor is the physical floor of a fanout on this machine: only encrypting
// the publisher's packets once per subscriber (AES-GCM) and sending them
// with sendmmsg (Hayate's own send path, GSO included) to the same
// subscriber sockets, at the same pace, for d. With perFrame false, each
// publisher packet is sent to every subscriber and flushed on its own (the
// batching a server gets when packets arrive one by one); with perFrame
// true, a whole frame goes to each subscriber in turn in one flush (the
// best batching there is: every frame a GSO send per subscriber). It runs on one locked OS
// thread pinned to cpu (the server's core, idle by then, so the kernel's
// loopback delivery and cross-CPU wake-ups cost what they cost the server)
// and returns that thread's CPU time per packet sent. Nothing is received,
// decrypted, looked up or forwarded: whatever Hayate costs above this is
// the price of being an SFU.
func Floor(subs []*Subscriber, d time.Duration, cpu int, perFrame bool) (float64, uint64, error) {
	runtime.LockOSThread()
	// The thread is not unlocked: it ends with the goroutine, and its
	// pinned affinity with it.
	done := make(chan struct{})
	defer close(done)
	if cpu >= 0 {
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			return 0, 0, err
		}
	}
	socks, err := rtpcore.ListenMedia(netip.MustParseAddrPort("127.0.0.1:0"), 1)
	if err != nil {
		return 0, 0, err
	}
	io := socks[0]
	defer io.Close()
	addrs := make([]netip.AddrPort, len(subs))
	encs := make([]*srtp.Context, len(subs))
	key, salt := make([]byte, 16), make([]byte, 12)
	for i, s := range subs {
		addrs[i] = s.Peer.Local()
		rand.Read(key)
		rand.Read(salt)
		if encs[i], err = srtp.CreateContext(key, salt, srtp.ProtectionProfileAeadAes128Gcm); err != nil {
			return 0, 0, err
		}
	}
	batch := rtpcore.NewSendBatch()
	var hdr rtp.Header
	// A burst is the packets of one frame (or one audio packet); it goes to
	// each subscriber in turn, so each subscriber's packets are contiguous
	// and equal-size runs leave as one GSO send: the floor at its best.
	var burst [64][]byte
	mem := make([]byte, 64*maxPacket)
	var seq uint16
	var sent uint64
	sendBurst := func(sizes []int, pt uint8) {
		for k, size := range sizes {
			seq++
			h := rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq, SSRC: 0xF100F}
			b := mem[k*maxPacket : (k+1)*maxPacket]
			n, _ := h.MarshalTo(b)
			binary.BigEndian.PutUint64(b[n:], uint64(time.Now().UnixNano()))
			burst[k] = b[:n+size]
		}
		queue := func(i, k int) {
			if batch.Full() {
				_ = io.Send(batch)
			}
			slot := append(batch.Slot(), burst[k]...)
			out, _ := encs[i].EncryptRTP(slot[:0], slot, &hdr)
			batch.Commit(out, addrs[i])
			sent++
		}
		if perFrame {
			for i := range subs {
				for k := range sizes {
					queue(i, k)
				}
			}
			_ = io.Send(batch)
			return
		}
		for k := range sizes {
			for i := range subs {
				queue(i, k)
			}
			_ = io.Send(batch)
		}
	}
	start := time.Now()
	cpu0 := ThreadCPU()
	frameDur := time.Second / frameRate
	nextFrame, nextAudio := start, start
	frame := 0
	var sizes []int
	for time.Since(start) < d {
		now := time.Now()
		for !nextAudio.After(now) {
			sendBurst([]int{audioPayload}, audioPT)
			nextAudio = nextAudio.Add(audioInterval)
		}
		for !nextFrame.After(now) {
			size := videoBitrate / 8 / frameRate
			if frame%int(keyEvery/time.Second*frameRate) == 0 {
				size *= keyFactor
			}
			sizes = sizes[:0]
			for size > 0 {
				n := min(size, maxPacket-srtpOverhead)
				size -= n
				sizes = append(sizes, n)
			}
			sendBurst(sizes, videoPT)
			frame++
			nextFrame = nextFrame.Add(frameDur)
		}
		time.Sleep(time.Until(earliest(nextFrame, nextAudio)))
	}
	used := ThreadCPU() - cpu0
	return float64(used.Nanoseconds()) / float64(sent), sent, nil
}
