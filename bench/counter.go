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

	"golang.org/x/sys/unix"
)

// Counter counts, in the kernel, the media packets that reach subscribers'
// sockets, and drops them there: an eBPF socket filter on each subscriber
// socket counts every datagram that carries one of its two RTP SSRCs
// (video, audio) into the subscriber's entries of a shared array (its
// total, and its window count if the packet's sequence number is in the
// stream's measurement window, see OpenWindow) and returns 0, so nothing
// is queued or woken and the load generator spends no CPU at all on the
// media. The kernel's delivery to the socket is still done, in the
// server's send call, as on any loopback receiver, and GSO sends are split
// before the filter runs (each segment is counted).
//
// Unlike the Tap it reads no send times, so it gives no latency. It is for
// measuring capacity, where the server needs the whole machine.
type Counter struct {
	mapFD int
	mem   []byte // the array, mapped: one uint64 per slot
	slots int
	mu    sync.Mutex
	next  int
	progs []int
}

// bpf(2) commands, map and program types, flags (include/uapi/linux/bpf.h).
const (
	bpfMapCreate        = 0
	bpfProgLoad         = 5
	bpfMapTypeArray     = 2
	bpfProgSocketFilter = 1
	bpfFMmapable        = 1 << 10
	bpfPseudoMapFD      = 1
	bpfFuncMapLookup    = 1
)

// NewCounter makes a counter with room for slots subscribers. It needs
// CAP_BPF (root).
func NewCounter(slots int) (*Counter, error) {
	attr := struct {
		mapType, keySize, valueSize, maxEntries, flags uint32
	}{bpfMapTypeArray, 4, 8, uint32(2*slots + 4), bpfFMmapable}
	fd, _, errno := unix.Syscall(unix.SYS_BPF, bpfMapCreate, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	if errno != 0 {
		return nil, fmt.Errorf("bench: counter map (needs CAP_BPF): %w", errno)
	}
	size := ((2*slots+4)*8 + unix.Getpagesize() - 1) &^ (unix.Getpagesize() - 1)
	mem, err := unix.Mmap(int(fd), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		unix.Close(int(fd))
		return nil, fmt.Errorf("bench: counter mmap: %w", err)
	}
	return &Counter{mapFD: int(fd), mem: mem, slots: slots}, nil
}

// Attach puts the counting filter on c for the RTP streams ssrcs and
// returns the slot it counts into.
func (k *Counter) Attach(c *net.UDPConn, ssrcs [2]uint32) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.next == k.slots {
		return 0, errors.New("bench: counter full")
	}
	slot := k.next
	prog, err := k.load(slot, ssrcs)
	if err != nil {
		return 0, err
	}
	k.progs = append(k.progs, prog)
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_ATTACH_BPF, prog)
	}); err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, fmt.Errorf("bench: SO_ATTACH_BPF: %w", serr)
	}
	k.next++
	return slot, nil
}

// take counts s's media in the kernel.
func (k *Counter) take(s *Subscriber) error {
	c := s.Peer.Conn()
	if c == nil {
		return errors.New("bench: a Counter needs UDP subscribers")
	}
	slot, err := k.Attach(c, s.ssrc)
	if err != nil {
		return err
	}
	s.counter, s.slot = k, slot
	return nil
}

// The array: per slot its total (2 slot) and its window count (2 slot + 1);
// then per stream (0 video, 1 audio) its window's first sequence number
// and length.
func (k *Counter) entry(i int) *uint64   { return (*uint64)(unsafe.Pointer(&k.mem[i*8])) }
func (k *Counter) window(stream int) int { return 2*k.slots + 2*stream }

// Count is the number of packets counted into slot so far.
func (k *Counter) Count(slot int) uint64 { return atomic.LoadUint64(k.entry(2 * slot)) }

// WindowCount is the number of packets counted into slot so far whose
// sequence numbers were in their stream's window.
func (k *Counter) WindowCount(slot int) uint64 { return atomic.LoadUint64(k.entry(2*slot + 1)) }

// OpenWindow starts counting, in the window counts, packets from sequence
// numbers video and audio on (up to half the sequence space ahead).
func (k *Counter) OpenWindow(video, audio uint16) {
	for stream, first := range [2]uint16{video, audio} {
		atomic.StoreUint64(k.entry(k.window(stream)+1), 0)
		atomic.StoreUint64(k.entry(k.window(stream)), uint64(first))
		atomic.StoreUint64(k.entry(k.window(stream)+1), 1<<15)
	}
}

// CloseWindow ends the windows before sequence numbers video and audio:
// later packets with those numbers and on are not counted in them.
func (k *Counter) CloseWindow(video, audio uint16) {
	for stream, end := range [2]uint16{video, audio} {
		first := uint16(atomic.LoadUint64(k.entry(k.window(stream))))
		atomic.StoreUint64(k.entry(k.window(stream)+1), uint64(end-first))
	}
}

// Close releases the array and the programs (sockets that still hold a
// program keep it until they close).
func (k *Counter) Close() {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, p := range k.progs {
		unix.Close(p)
	}
	k.progs = nil
	if k.mem != nil {
		_ = unix.Munmap(k.mem)
		k.mem = nil
		unix.Close(k.mapFD)
	}
}

// bpfInsn is struct bpf_insn: opcode, dst and src registers (low and high
// nibble), offset, immediate; to is a label to jump to (resolved by
// assemble), label names this instruction.
type bpfInsn struct {
	code      byte
	dst, src  byte
	off       int16
	imm       int32
	to, label string
}

// Registers and opcodes used below (include/uapi/linux/bpf.h).
const (
	r0, r1, r2, r6, r7, r8, r9, r10 = 0, 1, 2, 6, 7, 8, 9, 10

	opMovReg   = 0xbf // dst = src
	opMovImm   = 0xb7 // dst = imm
	opAddImm   = 0x07 // dst += imm
	opSubReg   = 0x1f // dst -= src
	opAndImm   = 0x57 // dst &= imm
	opLdAbsW   = 0x20 // r0 = ntohl(*(u32 *)(skb + imm))
	opLdAbsH   = 0x28 // r0 = ntohs(*(u16 *)(skb + imm))
	opLdDW     = 0x79 // dst = *(u64 *)(src + off)
	opStxW     = 0x63 // *(u32 *)(dst + off) = src
	opStW      = 0x62 // *(u32 *)(dst + off) = imm
	opLdImm64  = 0x18 // dst = imm64 (two instructions)
	opJa       = 0x05
	opJeqImm   = 0x15
	opJeq32Imm = 0x16
	opJne32Imm = 0x56
	opJgeReg   = 0x3d
	opCall     = 0x85
	opXaddDW   = 0xdb // lock *(u64 *)(dst + off) += src
	opExit     = 0x95
)

// assemble resolves the jumps' labels.
func assemble(insns []bpfInsn) ([]bpfInsn, error) {
	at := map[string]int{}
	for i, in := range insns {
		if in.label != "" {
			at[in.label] = i
		}
	}
	for i := range insns {
		if insns[i].to == "" {
			continue
		}
		j, ok := at[insns[i].to]
		if !ok {
			return nil, fmt.Errorf("bench: no label %q", insns[i].to)
		}
		insns[i].off = int16(j - i - 1)
	}
	return insns, nil
}

// lookup is r0 = &array[key in reg] (key register k is spilled to the
// stack), jumping to "drop" if it is out of range.
func (k *Counter) lookup(key byte) []bpfInsn {
	return []bpfInsn{
		{code: opStxW, dst: r10, src: key, off: -4},
		{code: opMovReg, dst: r2, src: r10},
		{code: opAddImm, dst: r2, imm: -4},
		{code: opLdImm64, dst: r1, src: bpfPseudoMapFD, imm: int32(k.mapFD)},
		{},
		{code: opCall, imm: bpfFuncMapLookup},
		{code: opJeqImm, dst: r0, imm: 0, to: "drop"},
	}
}

// load loads the filter for one socket. A UDP socket filter sees the
// datagram from its UDP header: the RTP sequence number is at bytes 10-11,
// the SSRC at 16-19. For a datagram of SSRC ssrcs[0] (video) or ssrcs[1]
// (audio) it adds one to the subscriber's total, and one to its window
// count if the sequence number is in the stream's window (window); it
// drops every datagram.
func (k *Counter) load(slot int, ssrcs [2]uint32) (int, error) {
	var insns []bpfInsn
	add := func(in ...bpfInsn) { insns = append(insns, in...) }
	add(
		bpfInsn{code: opMovReg, dst: r6, src: r1}, // LD_ABS reads the skb in r6
		bpfInsn{code: opLdAbsW, imm: 16},
		bpfInsn{code: opMovImm, dst: r7, imm: int32(k.window(0))},
		bpfInsn{code: opJeq32Imm, dst: r0, imm: int32(ssrcs[0]), to: "media"},
		bpfInsn{code: opMovImm, dst: r7, imm: int32(k.window(1))},
		bpfInsn{code: opJne32Imm, dst: r0, imm: int32(ssrcs[1]), to: "drop"},
		bpfInsn{code: opLdAbsH, imm: 10, label: "media"},
		bpfInsn{code: opMovReg, dst: r8, src: r0}, // r8 = sequence number
		bpfInsn{code: opMovImm, dst: r9, imm: int32(2 * slot)},
	)
	add(k.lookup(r9)...) // the total
	add(
		bpfInsn{code: opMovImm, dst: r1, imm: 1},
		bpfInsn{code: opXaddDW, dst: r0, src: r1},
	)
	add(k.lookup(r7)...) // the window's first sequence number
	add(
		bpfInsn{code: opLdDW, dst: r1, src: r0},
		bpfInsn{code: opSubReg, dst: r8, src: r1},
		bpfInsn{code: opAndImm, dst: r8, imm: 0xffff}, // r8 = seq - first, mod 2^16
		bpfInsn{code: opAddImm, dst: r7, imm: 1},
	)
	add(k.lookup(r7)...) // the window's length
	add(
		bpfInsn{code: opLdDW, dst: r1, src: r0},
		bpfInsn{code: opJgeReg, dst: r8, src: r1, to: "drop"},
		bpfInsn{code: opAddImm, dst: r9, imm: 1},
	)
	add(k.lookup(r9)...) // the window count
	add(
		bpfInsn{code: opMovImm, dst: r1, imm: 1},
		bpfInsn{code: opXaddDW, dst: r0, src: r1},
		bpfInsn{code: opMovImm, dst: r0, imm: 0, label: "drop"},
		bpfInsn{code: opExit},
	)
	insns, err := assemble(insns)
	if err != nil {
		return 0, err
	}
	code := make([]byte, 8*len(insns))
	for i, in := range insns {
		b := code[8*i:]
		b[0], b[1] = in.code, in.dst|in.src<<4
		binary.LittleEndian.PutUint16(b[2:], uint16(in.off))
		binary.LittleEndian.PutUint32(b[4:], uint32(in.imm))
	}
	license := []byte("GPL\x00")
	logBuf := make([]byte, 4096)
	attr := struct {
		progType, insnCnt uint32
		insns, license    uint64
		logLevel, logSize uint32
		logBuf            uint64
	}{
		progType: bpfProgSocketFilter, insnCnt: uint32(len(insns)),
		insns: uint64(uintptr(unsafe.Pointer(&code[0]))), license: uint64(uintptr(unsafe.Pointer(&license[0]))),
		logLevel: 1, logSize: uint32(len(logBuf)), logBuf: uint64(uintptr(unsafe.Pointer(&logBuf[0]))),
	}
	fd, _, errno := unix.Syscall(unix.SYS_BPF, bpfProgLoad, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	runtime.KeepAlive(code)
	runtime.KeepAlive(license)
	runtime.KeepAlive(logBuf)
	if errno != 0 {
		n := 0
		for n < len(logBuf) && logBuf[n] != 0 {
			n++
		}
		return 0, fmt.Errorf("bench: counter program: %w: %s", errno, logBuf[:n])
	}
	return int(fd), nil
}
