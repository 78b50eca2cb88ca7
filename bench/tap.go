//go:build linux

package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// Tap receives, for every subscriber at once, what the server sends them:
// a packet socket on the loopback device with a memory-mapped ring
// (TPACKET_V3), filtered in the kernel to UDP datagrams from the server's
// media port. It stands in for subscribers on other machines. A subscriber
// that reads its own socket costs a wakeup, a scheduling and a recvmmsg per
// packet (about as much CPU as the server's forwarding, measured in
// BenchmarkFanoutCores), which on two vCPUs leaves the server less than it
// needs; the tap costs one copy into the ring per packet and reads whole
// blocks of them, so the load generator's CPU stays a small fraction of a
// core. The subscribers' own sockets then drop every datagram in a socket
// filter (DropAll), so the kernel's delivery to them is still done (in the
// server's send call, as on any loopback) but nothing is queued or woken.
//
// What the tap sees is what the server handed to the kernel, in the order
// it did; a datagram the ring had no room for is counted by Drops and is
// loss in the window.
type Tap struct {
	fd      int
	ring    []byte
	blocks  int
	bsize   int
	subs    [1 << 16]atomic.Pointer[tapSub] // by the subscriber's local port
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	dropped atomic.Uint64
}

type tapSub struct {
	s *Subscriber
	k int // packets seen, for the 1-in-sampleEvery decrypt
}

const (
	tapBlockSize = 4 << 20 // bytes per ring block
	// TapRing is the ring a fanout benchmark needs: 1 GiB, about 1.3 s of
	// 600,000 datagrams/s, for when the reader is not scheduled.
	TapRing      = 1 << 30
	tapFrameSize = 2048 // TPACKET_V3 packs frames; this only bounds one
	tapRetireMs  = 5    // a partly filled block is handed over after this
)

// NewTap opens a tap for the datagrams sent from the server's media port
// serverPort on the loopback device, with a ring of about ring bytes
// (locked in memory). It needs CAP_NET_RAW.
func NewTap(serverPort uint16, ring int) (*Tap, error) {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_IP)))
	if err != nil {
		return nil, fmt.Errorf("bench: tap socket (needs CAP_NET_RAW): %w", err)
	}
	t := &Tap{fd: fd, blocks: max(ring/tapBlockSize, 1), bsize: tapBlockSize, stop: make(chan struct{}), done: make(chan struct{})}
	if err := t.setup(serverPort); err != nil {
		unix.Close(fd)
		return nil, err
	}
	go t.read()
	return t, nil
}

func (t *Tap) setup(serverPort uint16) error {
	// Only what arrives on lo (each datagram is seen once, not also on its
	// way out), only UDP from serverPort; the whole datagram is kept.
	if err := unix.SetsockoptInt(t.fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
		return fmt.Errorf("bench: tap PACKET_IGNORE_OUTGOING: %w", err)
	}
	prog, err := bpf.Assemble([]bpf.Instruction{
		// lo's frames carry a 14-byte Ethernet header before the IPv4 one.
		bpf.LoadAbsolute{Off: 14 + 9, Size: 1}, // IPv4 protocol
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.IPPROTO_UDP, SkipTrue: 3},
		bpf.LoadMemShift{Off: 14},          // X = IP header length
		bpf.LoadIndirect{Off: 14, Size: 2}, // UDP source port
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(serverPort), SkipTrue: 1},
		bpf.RetConstant{Val: 0},
		bpf.RetConstant{Val: 0xffff},
	})
	if err != nil {
		return err
	}
	if err := attachFilter(t.fd, prog); err != nil {
		return fmt.Errorf("bench: tap filter: %w", err)
	}
	// The server sends with UDP GSO: on lo a send of several datagrams
	// reaches the tap as one packet, split only at the receiving socket.
	// A virtio-net header before each packet gives the segment size.
	if err := unix.SetsockoptInt(t.fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
		return fmt.Errorf("bench: tap PACKET_VNET_HDR: %w", err)
	}
	if err := unix.SetsockoptInt(t.fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V3); err != nil {
		return fmt.Errorf("bench: tap TPACKET_V3: %w", err)
	}
	req := unix.TpacketReq3{
		Block_size:     tapBlockSize,
		Block_nr:       uint32(t.blocks),
		Frame_size:     tapFrameSize,
		Frame_nr:       uint32(tapBlockSize / tapFrameSize * t.blocks),
		Retire_blk_tov: tapRetireMs,
	}
	if err := unix.SetsockoptTpacketReq3(t.fd, unix.SOL_PACKET, unix.PACKET_RX_RING, &req); err != nil {
		return fmt.Errorf("bench: tap ring: %w", err)
	}
	t.ring, err = unix.Mmap(t.fd, 0, tapBlockSize*t.blocks, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_LOCKED)
	if err != nil {
		return fmt.Errorf("bench: tap mmap: %w", err)
	}
	lo, err := loopbackIndex()
	if err != nil {
		return err
	}
	return unix.Bind(t.fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: lo})
}

// Add routes the datagrams to s's local port to s.
func (t *Tap) Add(s *Subscriber) { t.add(s.Peer.Local().Port(), s) }

func (t *Tap) add(port uint16, s *Subscriber) { t.subs[port].Store(&tapSub{s: s}) }

// Drops is the number of datagrams the kernel could not put in the ring.
func (t *Tap) Drops() (uint64, error) {
	st, err := unix.GetsockoptTpacketStatsV3(t.fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return 0, err
	}
	// The kernel resets the counters on every read: keep a running sum.
	return t.dropped.Add(uint64(st.Drops)), nil
}

// Close stops the reader and releases the ring.
func (t *Tap) Close() {
	t.once.Do(func() {
		close(t.stop)
		<-t.done
		_ = unix.Munmap(t.ring)
		_ = unix.Close(t.fd)
	})
}

// Block descriptor fields (struct tpacket_block_desc, hdr.bh1).
const (
	bdStatus     = 8
	bdNumPkts    = 12
	bdFirstPkt   = 16
	tpStatusUser = unix.TP_STATUS_USER
)

// read hands every datagram in the ring to its subscriber, block by block.
func (t *Tap) read() {
	defer close(t.done)
	runtime.LockOSThread()
	scratch := make([]byte, 2048)
	fds := []unix.PollFd{{Fd: int32(t.fd), Events: unix.POLLIN}}
	for b := 0; ; {
		blk := t.ring[b*t.bsize : (b+1)*t.bsize]
		status := (*uint32)(unsafe.Pointer(&blk[bdStatus]))
		if atomic.LoadUint32(status)&tpStatusUser == 0 {
			select {
			case <-t.stop:
				return
			default:
			}
			_, _ = unix.Poll(fds, 50)
			continue
		}
		n := *(*uint32)(unsafe.Pointer(&blk[bdNumPkts]))
		off := *(*uint32)(unsafe.Pointer(&blk[bdFirstPkt]))
		for range n {
			h := (*unix.Tpacket3Hdr)(unsafe.Pointer(&blk[off]))
			mac, net := int(off)+int(h.Mac), int(off)+int(h.Net)
			// struct virtio_net_hdr ends where the frame starts: gso_type
			// at byte 1, gso_size at bytes 4-5 (little-endian here).
			vh := blk[mac-vnetHdrLen : mac]
			seg := 0
			if vh[1] != 0 {
				seg = int(binary.LittleEndian.Uint16(vh[4:6]))
			}
			t.deliver(blk[net:mac+int(h.Snaplen)], seg, scratch)
			off += h.Next_offset
		}
		atomic.StoreUint32(status, unix.TP_STATUS_KERNEL)
		b = (b + 1) % t.blocks
	}
}

// vnetHdrLen is the size of struct virtio_net_hdr.
const vnetHdrLen = 10

// deliver gives one IPv4 packet's UDP payload to the subscriber it is
// for: one datagram, or with seg > 0 (a GSO send) datagrams of seg bytes,
// the last one shorter.
func (t *Tap) deliver(ip []byte, seg int, scratch []byte) {
	if len(ip) < 20 {
		return
	}
	hl := int(ip[0]&0x0f) * 4
	if len(ip) < hl+8 {
		return
	}
	port := uint16(ip[hl+2])<<8 | uint16(ip[hl+3])
	ts := t.subs[port].Load()
	if ts == nil {
		return
	}
	p := ip[hl+8:]
	if seg <= 0 {
		seg = len(p)
	}
	for len(p) > 0 {
		n := min(seg, len(p))
		ts.s.onPacket(p[:n], &ts.k, scratch)
		p = p[n:]
	}
}

// take makes s's socket drop its media and the tap receive it.
func (t *Tap) take(s *Subscriber) error {
	if err := DropAll(s); err != nil {
		return err
	}
	t.Add(s)
	return nil
}

// DropAll makes the kernel discard every datagram that reaches the
// subscriber's socket (a socket filter that accepts nothing), for
// subscribers whose media the Tap reads.
func DropAll(s *Subscriber) error {
	c := s.Peer.Conn()
	if c == nil {
		return errors.New("bench: DropAll needs a UDP subscriber")
	}
	return dropAll(c)
}

func dropAll(c *net.UDPConn) error {
	prog, err := bpf.Assemble([]bpf.Instruction{bpf.RetConstant{Val: 0}})
	if err != nil {
		return err
	}
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = attachFilter(int(fd), prog) }); err != nil {
		return err
	}
	return serr
}

func attachFilter(fd int, prog []bpf.RawInstruction) error {
	f := make([]unix.SockFilter, len(prog))
	for i, ins := range prog {
		f[i] = unix.SockFilter{Code: ins.Op, Jt: ins.Jt, Jf: ins.Jf, K: ins.K}
	}
	return unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: uint16(len(f)), Filter: &f[0]})
}

func loopbackIndex() (int, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return 0, err
	}
	for _, i := range ifs {
		if i.Flags&net.FlagLoopback != 0 {
			return i.Index, nil
		}
	}
	return 0, errors.New("bench: no loopback interface")
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
