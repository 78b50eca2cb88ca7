package rtpcore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsgIO is the epoll backend: raw recvmmsg/sendmmsg on the socket's file
// descriptor through syscall.RawConn, so the Go netpoller parks the loop
// while the socket is empty. Every array the syscalls read is allocated
// once; a receive or a send allocates nothing.
type mmsgIO struct {
	conn  *net.UDPConn
	raw   syscall.RawConn
	local netip.AddrPort

	// Receive side, used by the receive loop only.
	rhdr   [recvBatch]unix.Mmsghdr
	riov   [recvBatch]unix.Iovec
	rname  [recvBatch]unix.RawSockaddrInet4
	rn     int
	rerrno syscall.Errno
	rfn    func(fd uintptr) bool

	// Send side, used by the receive loop only.
	shdr   [sendBatch]unix.Mmsghdr
	siov   [sendBatch]unix.Iovec
	sname  [sendBatch]unix.RawSockaddrInet4
	scmsg  [sendBatch][cmsgSegmentSpace]byte
	smsgs  int
	soff   int
	sn     int
	serrno syscall.Errno
	sfn    func(fd uintptr) bool
	gso    bool
	group  gsoGroups

	// WriteTo may be called from any goroutine.
	wmu sync.Mutex
}

// cmsgSegmentSpace is the room of one UDP_SEGMENT control message.
const cmsgSegmentSpace = 24 // unix.CmsgSpace(2) on 64-bit Linux; checked in a test

// listenMedia binds n sockets to addr with SO_REUSEPORT (the kernel spreads
// peers over them by their 4-tuple). Port 0 picks one free port for all.
func listenMedia(addr netip.AddrPort, n int) ([]*mmsgIO, error) {
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
	var out []*mmsgIO
	fail := func(err error) ([]*mmsgIO, error) {
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
		s, err := newMmsgIO(pc.(*net.UDPConn))
		if err != nil {
			pc.Close()
			return fail(err)
		}
		out = append(out, s)
		addr = s.local // later sockets share the port the first one got
	}
	return out, nil
}

func newMmsgIO(c *net.UDPConn) (*mmsgIO, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	s := &mmsgIO{conn: c, raw: raw, gso: true}
	s.local, _ = netip.ParseAddrPort(c.LocalAddr().String())
	setBuffers(raw, 4<<20)
	s.rfn = s.recvSyscall
	s.sfn = s.sendSyscall
	return s, nil
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
		s.riov[i].Base = &b.Bufs[i][:1][0]
		s.riov[i].SetLen(bufSize)
		h := &s.rhdr[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&s.rname[i]))
		h.Namelen = unix.SizeofSockaddrInet4
		h.Iov = &s.riov[i]
		h.Iovlen = 1
	}
	if err := s.conn.SetReadDeadline(deadline); err != nil {
		return 0, ErrClosed
	}
	s.rn, s.rerrno = 0, 0
	if err := s.raw.Read(s.rfn); err != nil {
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
		sa := &s.rname[i]
		port := uint16(sa.Port>>8 | sa.Port<<8)
		b.Addrs[i] = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), port)
	}
	b.Count = s.rn
	return s.rn, nil
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
			// The message at soff was refused. A GSO failure (EIO/EINVAL on
			// devices or kernels without it) turns GSO off and resends.
			if s.gso && (s.serrno == unix.EIO || s.serrno == unix.EINVAL) && s.shdr[s.soff].Hdr.Controllen != 0 {
				s.gso = false
				s.build(b)
				s.soff = 0
				continue
			}
			b.Errors += uint64(s.shdr[s.soff].Hdr.Iovlen)
			s.soff++
			continue
		}
		for i := s.soff; i < s.soff+s.sn; i++ {
			b.Datagrams += uint64(s.shdr[i].Hdr.Iovlen)
		}
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

// build lays out the batch as mmsghdrs. With GSO, each message carries the
// datagrams to one destination that share one size (the last may be
// shorter), one iovec each, and a UDP_SEGMENT control message with the size
// (Linux udp(7)); datagrams to a destination stay in their order.
func (s *mmsgIO) build(b *SendBatch) {
	s.smsgs = 0
	if !s.gso {
		for i := range b.n {
			s.setIov(i, b.slots[i][:b.lens[i]])
			s.setMsg(s.smsgs, b.to[i], i, 1, 0)
			s.smsgs++
		}
		return
	}
	g := &s.group
	g.assign(b)
	// Lay each message's datagrams out contiguously in the iovec array.
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

func (s *mmsgIO) setIov(i int, p []byte) {
	s.siov[i].Base = &p[:1][0]
	s.siov[i].SetLen(len(p))
}

func (s *mmsgIO) setMsg(m int, to netip.AddrPort, iov, n, segment int) {
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

// WriteTo implements PacketIO.
func (s *mmsgIO) WriteTo(p []byte, to netip.AddrPort) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_, err := s.conn.WriteToUDPAddrPort(p, to)
	return err
}

// gsoGroups assigns the datagrams of a batch to GSO messages.
type gsoGroups struct {
	of    [sendBatch]int // message of each datagram
	msgs  int
	dest  [sendBatch]netip.AddrPort
	size  [sendBatch]int // segment size (the first datagram's)
	bytes [sendBatch]int
	count [sendBatch]int
	start [sendBatch]int
	done  [sendBatch]bool // closed: took a shorter datagram, or full
	// open maps a destination to its open message: an open-addressed table
	// cleared by generation.
	slot [1024]struct {
		dest netip.AddrPort
		msg  int
		gen  uint32
	}
	gen uint32
}

func (g *gsoGroups) assign(b *SendBatch) {
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
		if m >= 0 && !g.done[m] && n <= g.size[m] && g.count[m] < maxGSOSegments && g.bytes[m]+n <= maxGSOBytes {
			g.of[i] = m
			g.count[m]++
			g.bytes[m] += n
			if n < g.size[m] {
				g.done[m] = true // only the last segment may be shorter
			}
			continue
		}
		// A new message for this destination; it becomes the open one.
		m = g.msgs
		g.msgs++
		g.of[i], g.dest[m], g.size[m], g.bytes[m], g.count[m], g.done[m] = m, to, n, n, 1, false
		e := &g.slot[h]
		e.dest, e.msg, e.gen = to, m, g.gen
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
