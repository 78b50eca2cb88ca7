package rtpcore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// This file holds the epoll backend and what both Linux backends share:
// the sockets' creation (listenUDP), the msghdrs of a receive batch
// (recvMsgs) and the GSO layout of a send batch (sendMsgs). The io_uring
// backend is in uring_linux.go.

// mmsgIO is the epoll backend: raw recvmmsg/sendmmsg on the socket's file
// descriptor through syscall.RawConn, so the Go netpoller parks the loop
// while the socket is empty. Every array the syscalls read is allocated
// once; a receive or a send allocates nothing.
type mmsgIO struct {
	conn  *net.UDPConn
	raw   syscall.RawConn
	local netip.AddrPort

	// Receive side, used by the receive loop only.
	recvMsgs
	rn     int
	rerrno syscall.Errno
	rfn    func(fd uintptr) bool

	// Send side, used by the receive loop only.
	sendMsgs
	soff   int
	sn     int
	serrno syscall.Errno
	sfn    func(fd uintptr) bool

	// WriteTo may be called from any goroutine.
	wmu sync.Mutex

	// woken is set by Wake: the next Recv only takes what has arrived.
	woken atomic.Bool
	cfn   func(fd uintptr)
}

// cmsgSegmentSpace is the room of one UDP_SEGMENT control message.
const cmsgSegmentSpace = 24 // unix.CmsgSpace(2) on 64-bit Linux; checked in a test

// listenMedia binds n sockets to addr for the epoll backend.
func listenMedia(addr netip.AddrPort, n int) ([]*mmsgIO, error) {
	return listenUDP(addr, n, newMmsgIO)
}

// listenUDP binds n sockets to addr with SO_REUSEPORT (the kernel spreads
// peers over them by their 4-tuple) and large buffers, and hands each to
// open, which makes a backend of it. Port 0 picks one free port for all.
func listenUDP[T interface {
	LocalAddr() netip.AddrPort
	Close() error
}](addr netip.AddrPort, n int, open func(*net.UDPConn) (T, error)) ([]T, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
		if err != nil {
			return err
		}
		return serr
	}}
	var out []T
	fail := func(err error) ([]T, error) {
		for _, s := range out {
			s.Close()
		}
		return nil, err
	}
	for i := range n {
		pc, err := lc.ListenPacket(context.Background(), "udp4", addr.String())
		if err != nil {
			return fail(fmt.Errorf("media socket %d: %w", i, err))
		}
		c := pc.(*net.UDPConn)
		if raw, err := c.SyscallConn(); err == nil {
			setBuffers(raw, 4<<20)
		}
		s, err := open(c)
		if err != nil {
			c.Close()
			return fail(err)
		}
		out = append(out, s)
		addr = s.LocalAddr() // later sockets share the port the first one got
	}
	return out, nil
}

func newMmsgIO(c *net.UDPConn) (*mmsgIO, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	s := &mmsgIO{conn: c, raw: raw, local: udpLocal(c)}
	s.gso = true
	s.rfn = s.recvSyscall
	s.cfn = func(fd uintptr) { s.recvSyscall(fd) }
	s.sfn = s.sendSyscall
	return s, nil
}

// udpLocal is a socket's bound address.
func udpLocal(c *net.UDPConn) netip.AddrPort {
	a, _ := netip.ParseAddrPort(c.LocalAddr().String())
	return a
}

// setBuffers asks for large socket buffers; SO_*BUFFORCE needs
// CAP_NET_ADMIN and falls back to the sysctl-capped request.
func setBuffers(raw syscall.RawConn, size int) {
	_ = raw.Control(func(fd uintptr) {
		for _, o := range [][2]int{{unix.SO_RCVBUFFORCE, unix.SO_RCVBUF}, {unix.SO_SNDBUFFORCE, unix.SO_SNDBUF}} {
			if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[0], size) != nil {
				_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, o[1], size)
			}
		}
	})
}

func (s *mmsgIO) LocalAddr() netip.AddrPort { return s.local }

func (s *mmsgIO) Close() error { return s.conn.Close() }

// Recv implements PacketIO.
func (s *mmsgIO) Recv(b *RecvBatch, deadline time.Time) (int, error) {
	for i := range recvBatch {
		s.setRecv(i, b.Bufs[i])
	}
	if err := s.conn.SetReadDeadline(deadline); err != nil {
		return 0, ErrClosed
	}
	s.rn, s.rerrno = 0, 0
	// Woken (after the deadline was set, so that a Wake in between is
	// seen), or with no time to wait: only what has arrived.
	if s.woken.Swap(false) || !deadline.After(time.Now()) {
		if err := s.raw.Control(s.cfn); err != nil {
			return 0, ErrClosed
		}
		if s.rn == 0 && s.rerrno == 0 {
			return 0, ErrTimeout
		}
	} else if err := s.raw.Read(s.rfn); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, ErrTimeout
		}
		return 0, ErrClosed
	}
	if s.rerrno != 0 {
		return 0, fmt.Errorf("recvmmsg: %w", s.rerrno)
	}
	for i := range s.rn {
		b.Lens[i] = int(s.rhdr[i].Len)
		b.Addrs[i] = s.source(i)
	}
	b.Count = s.rn
	return s.rn, nil
}

// Wake implements waker: a read deadline in the past ends a blocked Recv.
func (s *mmsgIO) Wake() {
	s.woken.Store(true)
	_ = s.conn.SetReadDeadline(time.Unix(1, 0))
}

func (s *mmsgIO) recvSyscall(fd uintptr) bool {
	n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&s.rhdr[0])), recvBatch, unix.MSG_DONTWAIT, 0, 0)
	if errno == unix.EAGAIN || errno == unix.EINTR {
		return false
	}
	if errno != 0 {
		s.rerrno = errno
		return true
	}
	s.rn = int(n)
	return true
}

// Send implements PacketIO.
func (s *mmsgIO) Send(b *SendBatch) error {
	defer b.reset()
	if b.n == 0 {
		return nil
	}
	s.build(b)
	s.soff = 0
	for s.soff < s.smsgs {
		s.sn, s.serrno = 0, 0
		if err := s.raw.Write(s.sfn); err != nil {
			return ErrClosed
		}
		b.Sent++
		if s.serrno != 0 {
			// The message at soff was refused. A GSO failure turns GSO off
			// and resends what was not sent yet, one datagram a message.
			if s.gsoRefused(s.soff, s.serrno) {
				s.gso = false
				for m := s.soff; m < s.smsgs; m++ {
					s.redo[m] = true
				}
				s.resend()
				s.soff = 0
				continue
			}
			b.Errors += s.shdr[s.soff].Hdr.Iovlen
			s.soff++
			continue
		}
		for i := s.soff; i < s.soff+s.sn; i++ {
			b.Datagrams += s.shdr[i].Hdr.Iovlen
		}
		b.Messages += uint64(s.sn)
		s.soff += s.sn
	}
	return nil
}

func (s *mmsgIO) sendSyscall(fd uintptr) bool {
	n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&s.shdr[s.soff])), uintptr(s.smsgs-s.soff), unix.MSG_DONTWAIT, 0, 0)
	if errno == unix.EAGAIN || errno == unix.EINTR {
		return false
	}
	if errno != 0 {
		s.serrno = errno
		return true
	}
	s.sn = int(n)
	return true
}

// WriteTo implements PacketIO.
func (s *mmsgIO) WriteTo(p []byte, to netip.AddrPort) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_, err := s.conn.WriteToUDPAddrPort(p, to)
	return err
}

// recvMsgs are the msghdrs of a receive batch, one per buffer: recvmmsg
// reads them as one array, io_uring one per IORING_OP_RECVMSG.
type recvMsgs struct {
	rhdr  [recvBatch]unix.Mmsghdr
	riov  [recvBatch]unix.Iovec
	rname [recvBatch]unix.RawSockaddrInet4
}

// setRecv points message i at p, up to its capacity (bufSize for the
// buffers of NewRecvBatch).
func (r *recvMsgs) setRecv(i int, p []byte) {
	r.riov[i].Base = &p[:1][0]
	r.riov[i].SetLen(cap(p))
	h := &r.rhdr[i].Hdr
	h.Name = (*byte)(unsafe.Pointer(&r.rname[i]))
	h.Namelen = unix.SizeofSockaddrInet4
	h.Iov = &r.riov[i]
	h.Iovlen = 1
	h.Flags = 0
}

// source is the sender of the datagram message i received.
func (r *recvMsgs) source(i int) netip.AddrPort {
	sa := &r.rname[i]
	port := sa.Port>>8 | sa.Port<<8
	return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), port)
}

// sendMsgs lays a SendBatch out as msghdrs: sendmmsg reads them as one
// array, io_uring one per IORING_OP_SENDMSG.
type sendMsgs struct {
	shdr  [sendBatch]unix.Mmsghdr
	siov  [sendBatch]unix.Iovec
	sname [sendBatch]unix.RawSockaddrInet4
	scmsg [sendBatch][cmsgSegmentSpace]byte
	smsgs int
	// gso is on until the kernel refuses a GSO message.
	gso   bool
	group gsoGroups
	// redo marks the messages resend lays out again.
	redo [sendBatch]bool
}

// sendLayout gives tests the layout of either backend.
func (s *sendMsgs) sendLayout() *sendMsgs { return s }

// build lays out the batch as msghdrs. With GSO, each message carries the
// datagrams to one destination that share one size (the last may be
// shorter), one iovec each, and a UDP_SEGMENT control message with the size
// (Linux udp(7)); without, one datagram each. The datagrams of a message
// are contiguous in the iovec array, and datagrams to a destination stay in
// their order; group.next and group.follows chain the messages to one
// destination.
func (s *sendMsgs) build(b *SendBatch) {
	g := &s.group
	g.assign(b, s.gso)
	pos := 0
	for m := range g.msgs {
		g.start[m] = pos
		pos += g.count[m]
		g.count[m] = 0
	}
	for i := range b.n {
		m := g.of[i]
		s.setIov(g.start[m]+g.count[m], b.slots[i][:b.lens[i]])
		g.count[m]++
	}
	for m := range g.msgs {
		seg := 0
		if g.count[m] > 1 {
			seg = g.size[m]
		}
		s.setMsg(m, g.dest[m], g.start[m], g.count[m], seg)
	}
	s.smsgs = g.msgs
}

// gsoRefused reports whether message m failed because the kernel or the
// device refuses UDP GSO (EIO, EINVAL) rather than the datagrams.
func (s *sendMsgs) gsoRefused(m int, errno syscall.Errno) bool {
	return s.gso && (errno == unix.EIO || errno == unix.EINVAL) && s.shdr[m].Hdr.Controllen != 0
}

// resend lays out again the datagrams of the messages marked in redo, one
// datagram a message without GSO, in their order, as the only messages,
// chained one after another. The iovecs stay where build put them.
func (s *sendMsgs) resend() {
	g := &s.group
	k := 0
	for m := range s.smsgs {
		if !s.redo[m] {
			continue
		}
		s.redo[m] = false
		for j := g.start[m]; j < g.start[m]+g.count[m]; j++ {
			s.setMsg(k, g.dest[m], j, 1, 0)
			k++
		}
	}
	for m := range k {
		g.next[m] = int32(m + 1)
		g.follows[m] = m > 0
	}
	if k > 0 {
		g.next[k-1] = -1
	}
	s.smsgs = k
}

func (s *sendMsgs) setIov(i int, p []byte) {
	s.siov[i].Base = &p[:1][0]
	s.siov[i].SetLen(len(p))
}

func (s *sendMsgs) setMsg(m int, to netip.AddrPort, iov, n, segment int) {
	sa := &s.sname[m]
	sa.Family = unix.AF_INET
	p := to.Port()
	sa.Port = p>>8 | p<<8
	sa.Addr = to.Addr().Unmap().As4()
	h := &s.shdr[m].Hdr
	h.Name = (*byte)(unsafe.Pointer(sa))
	h.Namelen = unix.SizeofSockaddrInet4
	h.Iov = &s.siov[iov]
	h.Iovlen = uint64(n)
	h.Control, h.Controllen = nil, 0
	if segment > 0 {
		c := s.scmsg[m][:]
		ch := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
		ch.Level = unix.SOL_UDP
		ch.Type = unix.UDP_SEGMENT
		ch.SetLen(unix.CmsgLen(2))
		*(*uint16)(unsafe.Pointer(&c[unix.CmsgLen(0)])) = uint16(segment)
		h.Control = &c[0]
		h.Controllen = uint64(len(c))
	}
}

// gsoGroups assigns the datagrams of a batch to messages.
type gsoGroups struct {
	of    [sendBatch]int // message of each datagram
	msgs  int
	dest  [sendBatch]netip.AddrPort
	size  [sendBatch]int // segment size (the first datagram's)
	bytes [sendBatch]int
	count [sendBatch]int
	start [sendBatch]int
	done  [sendBatch]bool // closed: took a shorter datagram, or full
	// next is the following message to the same destination (-1: none);
	// follows marks the messages that have a previous one.
	next    [sendBatch]int32
	follows [sendBatch]bool
	// open maps a destination to its open message: an open-addressed table
	// cleared by generation.
	slot [1024]struct {
		dest netip.AddrPort
		msg  int
		gen  uint32
	}
	gen uint32
}

// assign groups the datagrams of b: with gso, runs of equal size to one
// destination share a message; without, every datagram has its own.
func (g *gsoGroups) assign(b *SendBatch, gso bool) {
	limit := 1
	if gso {
		limit = maxGSOSegments
	}
	g.msgs = 0
	g.gen++
	for i := range b.n {
		to, n := b.to[i], b.lens[i]
		h := hashAddr(to) & (len(g.slot) - 1)
		m := -1
		for {
			e := &g.slot[h]
			if e.gen != g.gen {
				break
			}
			if e.dest == to {
				m = e.msg
				break
			}
			h = (h + 1) & (len(g.slot) - 1)
		}
		if m >= 0 && !g.done[m] && n <= g.size[m] && g.count[m] < limit && g.bytes[m]+n <= maxGSOBytes {
			g.of[i] = m
			g.count[m]++
			g.bytes[m] += n
			if n < g.size[m] {
				g.done[m] = true // only the last segment may be shorter
			}
			continue
		}
		// A new message for this destination; it becomes the open one and
		// follows the previous one.
		nm := g.msgs
		g.msgs++
		g.of[i], g.dest[nm], g.size[nm], g.bytes[nm], g.count[nm], g.done[nm] = nm, to, n, n, 1, false
		g.next[nm], g.follows[nm] = -1, m >= 0
		if m >= 0 {
			g.next[m] = int32(nm)
		}
		e := &g.slot[h]
		e.dest, e.msg, e.gen = to, nm, g.gen
	}
}

func hashAddr(a netip.AddrPort) int {
	v := a.Addr().As16()
	h := uint32(2166136261)
	for _, c := range v[12:] {
		h = (h ^ uint32(c)) * 16777619
	}
	h = (h ^ uint32(a.Port())) * 16777619
	return int(h ^ h>>16)
}
