package rtpcore

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The io_uring backend: the socket of listenUDP, taken out of the Go
// netpoller, driven by one io_uring instance per socket through raw
// io_uring_setup/io_uring_enter and the mmap'd rings.
//
// Receive: up to recvBatch IORING_OP_RECVMSG are kept armed (how many
// follows the load, see arm), each with its own msghdr (recvMsgs, shared with the epoll backend) whose iovec points
// into one buffer of the RecvBatch. Recv re-arms the slots it returned the
// call before, submits and waits in one io_uring_enter (GETEVENTS with
// IORING_ENTER_EXT_ARG carrying the time left to the deadline: Linux 5.11),
// and returns the completions in their order, reordering the slices of
// b.Bufs so that Bufs[i] is the i-th datagram's buffer. The armed receives
// keep pointing into the batch between calls: the backend binds the batch
// it was given (RecvBatch.armedBy) and keeps it while the caller passes the
// same batch with the slices it left; given another batch (or changed
// slices) it cancels the armed receives, waits for the kernel to let go of
// the old buffers, moves the datagrams received but not returned yet into
// the new batch, and arms into it. A batch bound to another open io_uring
// socket is refused.
//
// Send: the layout of sendMsgs (GSO groups, shared with the epoll backend),
// one IORING_OP_SENDMSG per message, the messages to one destination
// hard-linked so that they leave in their order even when one has to wait
// for room in the socket buffer; one io_uring_enter submits them all and
// waits for their completions.
//
// Kernel: Linux 5.11 or later (IORING_FEAT_EXT_ARG); before 5.12 the rings
// count against RLIMIT_MEMLOCK (about 100 KiB a socket). The ring is set up
// without SINGLE_ISSUER/DEFER_TASKRUN: the receive loop's goroutine moves
// between threads.
//
// Close writes to an eventfd on which an IORING_OP_POLL_ADD is armed: a
// Recv or Send blocked in io_uring_enter wakes at once, Close then cancels
// what is in flight and waits for the kernel to be done with the buffers
// before it unmaps the rings.
type uringIO struct {
	fd    int32 // the socket; -1 once closed
	local netip.AddrPort
	efd   int // the eventfd Close writes to
	ring  *uring

	closed atomic.Bool
	// mu is held by Recv, Send and Close: one user of the ring at a time.
	mu sync.Mutex
	// holder identifies this backend in RecvBatch.armedBy.
	holder batchHolder

	// Receive side.
	recvMsgs
	rb     *RecvBatch          // the batch the slots point into
	rbuf   [recvBatch][]byte   // slot -> its buffer
	bufPtr [recvBatch]*byte    // rb.Bufs as the last Recv left them
	rstate [recvBatch]uint8    // slotIdle, slotArmed, slotDone
	done   [recvBatch]recvDone // completions not returned yet, in order
	ndone  int                 // entries of done
	armed  int                 // slots in slotArmed
	want   int                 // slots to keep armed (adaptive, see arm)
	rerr   syscall.Errno       // a receive's error, returned once
	mark   [recvBatch]bool     // scratch of deliver
	saved  [][]byte            // scratch of bind
	wake   bool                // the eventfd poll is armed
	cancel int                 // cancellations in flight

	// Send side.
	sendMsgs
	sres   [sendBatch]int32 // result of each message
	sendIn int              // messages in flight
	sb     *SendBatch       // the batch they read from

	// WriteTo and Wake may be called from any goroutine (wmu also keeps
	// Wake from writing to a closed eventfd).
	wmu sync.Mutex
	wsa unix.RawSockaddrInet4
	// woken is set by Wake: Recv returns without waiting.
	woken atomic.Bool
}

// recvDone is a completed receive: slot, bytes, sender.
type recvDone struct {
	slot int
	n    int
	from netip.AddrPort
}

// Receive slot states.
const (
	slotIdle  = iota // lent to the caller or never armed: armed by the next Recv
	slotArmed        // an IORING_OP_RECVMSG is queued or in flight
	slotDone         // completed, in done
)

// user_data of the requests: kind in the upper half, index in the lower.
const (
	udRecv   = 1 << 32
	udSend   = 2 << 32
	udWake   = 3 << 32
	udCancel = 4 << 32
	udMask   = 1<<32 - 1
)

// uringEntries is the SQ size: one batch of sends (sendBatch), the receive
// slots, their cancellations and the eventfd poll fit at once. The CQ is
// twice as large, so completions never overflow it.
const uringEntries = 1024

// ListenMediaUring binds n SO_REUSEPORT sockets of the io_uring backend to
// addr (port 0 picks one port for all).
func ListenMediaUring(addr netip.AddrPort, n int) ([]PacketIO, error) {
	return listenMediaUring(addr, n)
}

func listenMediaUring(addr netip.AddrPort, n int) ([]PacketIO, error) {
	socks, err := listenUDP(addr, n, newUringIO)
	if err != nil {
		return nil, err
	}
	out := make([]PacketIO, len(socks))
	for i, s := range socks {
		out[i] = s
	}
	return out, nil
}

// UringAvailable reports whether io_uring can serve the media sockets: nil,
// or why not (no io_uring in the kernel, disabled by the
// kernel.io_uring_disabled sysctl or a seccomp filter, a kernel older than
// 5.11).
func UringAvailable() error {
	r, err := newUring(4)
	if err != nil {
		return err
	}
	r.close()
	return nil
}

// newUringIO takes the socket of c out of the Go netpoller (a dup of the
// descriptor, c closed) and sets up its ring.
func newUringIO(c *net.UDPConn) (*uringIO, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	cerr := raw.Control(func(s uintptr) {
		fd, err = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0)
	})
	if cerr != nil {
		return nil, cerr
	}
	if err != nil {
		return nil, fmt.Errorf("dup media socket: %w", err)
	}
	local := udpLocal(c)
	// Closing c deregisters the socket from the netpoller, which would
	// otherwise wake on every datagram; the dup keeps it open. Blocking
	// mode serves WriteTo (io_uring does not depend on it).
	c.Close()
	if err := unix.SetNonblock(fd, false); err != nil {
		unix.Close(fd)
		return nil, err
	}
	s := &uringIO{fd: int32(fd), local: local, efd: -1, want: minArmed}
	s.gso = true
	fail := func(err error) (*uringIO, error) {
		if s.ring != nil {
			s.ring.close()
		}
		if s.efd >= 0 {
			unix.Close(s.efd)
		}
		unix.Close(fd)
		return nil, err
	}
	if s.efd, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return fail(fmt.Errorf("eventfd: %w", err))
	}
	if s.ring, err = newUring(uringEntries); err != nil {
		return fail(err)
	}
	s.armWake()
	if _, errno := s.ring.enter(0, -1); errno != 0 {
		return fail(fmt.Errorf("io_uring_enter: %w", errno))
	}
	pinned.Lock()
	pinned.m[s] = struct{}{}
	pinned.Unlock()
	return s, nil
}

// pinned keeps every backend that may have requests in flight reachable:
// the kernel holds pointers into its msghdrs and buffers, which must not
// be collected and reused while a receive can still write into them (a
// backend dropped without Close stays, leaked but harmless). Close
// unpins it once the kernel is done, or never if it could not make sure.
var pinned = struct {
	sync.Mutex
	m map[*uringIO]struct{}
}{m: map[*uringIO]struct{}{}}

func (s *uringIO) LocalAddr() netip.AddrPort { return s.local }

// WriteTo implements PacketIO: a plain sendto on the socket.
func (s *uringIO) WriteTo(p []byte, to netip.AddrPort) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.fd < 0 {
		return ErrClosed
	}
	s.wsa.Family = unix.AF_INET
	port := to.Port()
	s.wsa.Port = port>>8 | port<<8
	s.wsa.Addr = to.Addr().Unmap().As4()
	var base unsafe.Pointer
	if len(p) > 0 {
		base = unsafe.Pointer(&p[0])
	}
	for {
		_, _, errno := unix.Syscall6(unix.SYS_SENDTO, uintptr(s.fd), uintptr(base), uintptr(len(p)), 0,
			uintptr(unsafe.Pointer(&s.wsa)), unix.SizeofSockaddrInet4)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return &net.OpError{Op: "write", Net: "udp", Addr: net.UDPAddrFromAddrPort(to), Err: errno}
		}
		return nil
	}
}

// Close implements PacketIO. It wakes a blocked Recv or Send, cancels the
// requests in flight and waits (at most a second) until the kernel is done
// with the memory they point to, then releases the ring and the socket.
func (s *uringIO) Close() error {
	if !s.closed.CompareAndSwap(false, true) {
		return ErrClosed
	}
	one := [8]byte{1}
	_, _ = unix.Write(s.efd, one[:])
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.drain(true)
	if err == nil {
		// The kernel is done with the msghdrs and buffers.
		if s.rb != nil {
			s.rb.armedBy.CompareAndSwap(&s.holder, nil)
			s.rb = nil
		}
		pinned.Lock()
		delete(pinned.m, s)
		pinned.Unlock()
	}
	s.ring.close()
	s.wmu.Lock()
	unix.Close(int(s.fd))
	s.fd = -1
	unix.Close(s.efd)
	s.efd = -1
	s.wmu.Unlock()
	return err
}

// Wake implements waker: a write to the eventfd ends a blocked Recv.
func (s *uringIO) Wake() {
	s.woken.Store(true)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.efd >= 0 {
		one := [8]byte{1}
		_, _ = unix.Write(s.efd, one[:])
	}
}

// Recv implements PacketIO.
func (s *uringIO) Recv(b *RecvBatch, deadline time.Time) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return 0, ErrClosed
	}
	if !s.holds(b) {
		if err := s.bind(b); err != nil {
			return 0, err
		}
	}
	if err := s.arm(); err != nil {
		return 0, err
	}
	s.reap()
	for s.ndone == 0 {
		if s.closed.Load() {
			return 0, ErrClosed
		}
		if s.woken.Swap(false) {
			return 0, ErrTimeout
		}
		if s.rerr != 0 {
			err := s.rerr
			s.rerr = 0
			return 0, fmt.Errorf("io_uring recvmsg: %w", err)
		}
		if !s.wake && s.reserve(1) == nil {
			s.armWake() // cancelled when the thread that submitted it exited
		}
		wait := time.Duration(-1)
		if !deadline.IsZero() {
			if wait = time.Until(deadline); wait <= 0 {
				if s.ring.pending() > 0 {
					s.ring.enter(0, -1)
					s.reap()
				}
				if s.ndone > 0 {
					break
				}
				return 0, ErrTimeout
			}
		}
		if _, errno := s.ring.enter(1, wait); errno != 0 && !retryable(errno) {
			return 0, fmt.Errorf("io_uring_enter: %w", errno)
		}
		s.reap()
	}
	return s.deliver(b), nil
}

// retryable are the errors of io_uring_enter after which waiting again is
// right: a signal, the timeout, a transient shortage.
func retryable(errno syscall.Errno) bool {
	return errno == unix.EINTR || errno == unix.ETIME || errno == unix.EAGAIN || errno == unix.EBUSY
}

// holds reports whether the slots point into b as the last Recv left it.
func (s *uringIO) holds(b *RecvBatch) bool {
	if b != s.rb {
		return false
	}
	for i := range recvBatch {
		if unsafe.SliceData(b.Bufs[i]) != s.bufPtr[i] {
			return false
		}
	}
	return true
}

// bind makes b the batch the slots receive into: the armed receives into
// the old buffers are cancelled, and datagrams received but not returned
// yet are copied into b.
func (s *uringIO) bind(b *RecvBatch) error {
	if o := b.armedBy.Load(); o != nil && o != &s.holder {
		return errBatchInUse
	}
	if err := s.drain(false); err != nil {
		return err
	}
	if s.ndone > 0 {
		// The old and the new buffers may overlap (the same batch with its
		// slices changed): copy out first.
		if s.saved == nil {
			s.saved = make([][]byte, recvBatch)
		}
		for i := range s.ndone {
			d := &s.done[i]
			s.saved[i] = append(s.saved[i][:0], s.rbuf[d.slot][:d.n]...)
		}
	}
	for i := range recvBatch {
		s.rbuf[i] = b.Bufs[i]
		s.bufPtr[i] = unsafe.SliceData(b.Bufs[i])
		s.rstate[i] = slotIdle
	}
	for i := range s.ndone {
		d := &s.done[i]
		d.slot, d.n = i, copy(b.Bufs[i][:cap(b.Bufs[i])], s.saved[i])
		s.rstate[i] = slotDone
	}
	if s.rb != nil && s.rb != b {
		s.rb.armedBy.CompareAndSwap(&s.holder, nil)
	}
	s.rb = b
	b.armedBy.Store(&s.holder)
	return nil
}

// Bounds of the number of receives kept armed.
const (
	minArmed = 4
	maxArmed = recvBatch
)

// arm queues receives on idle slots until want are armed, and the eventfd
// poll if it is not armed.
//
// Every armed receive that finds the socket empty waits on the socket's
// wait queue, and each datagram wakes all of them: with 64 armed, a quiet
// socket pays 64 wake-ups, attempts and re-arms per datagram
// (BenchmarkBackend echo: about 2.5 times the epoll backend's cost, 1.3
// times with want). So want follows the load: twice
// the last batch, between minArmed and maxArmed. A saturated socket keeps
// all 64 armed (receives submitted while datagrams are queued complete at
// once and do not wait); a burst after a quiet spell takes a few calls to
// reach it, its datagrams waiting in the socket buffer meanwhile.
func (s *uringIO) arm() error {
	need := 1 + max(0, s.want-s.armed)
	if err := s.reserve(need); err != nil {
		return err
	}
	for i := range recvBatch {
		if s.armed >= s.want {
			break
		}
		if s.rstate[i] != slotIdle {
			continue
		}
		s.setRecv(i, s.rbuf[i])
		e := s.ring.sqe()
		e.opcode = uringOpRecvmsg
		e.fd = s.fd
		e.addr = uint64(uintptr(unsafe.Pointer(&s.rhdr[i].Hdr)))
		e.len = 1
		e.userData = udRecv | uint64(i)
		s.rstate[i] = slotArmed
		s.armed++
	}
	if !s.wake {
		s.armWake()
	}
	return nil
}

// armWake queues the poll on the eventfd that Close writes to.
func (s *uringIO) armWake() {
	e := s.ring.sqe()
	e.opcode = uringOpPollAdd
	e.fd = int32(s.efd)
	e.opFlags = unix.POLLIN
	e.userData = udWake
	s.wake = true
}

// reserve makes room for n SQEs, submitting what is queued if needed.
func (s *uringIO) reserve(n int) error {
	for range 3 {
		if s.ring.free() >= n {
			return nil
		}
		s.ring.enter(0, -1)
		s.reap()
	}
	return errRingFull
}

// reap consumes the CQ.
func (s *uringIO) reap() {
	r := s.ring
	head := atomic.LoadUint32(r.cqHead)
	tail := atomic.LoadUint32(r.cqTail)
	for ; head != tail; head++ {
		c := &r.cqes[head&r.cqMask]
		ud, res := c.userData, c.res
		i := int(ud & udMask)
		switch ud &^ udMask {
		case udRecv:
			s.recvDone(i, res)
		case udSend:
			s.sres[i] = res
			s.sendIn--
		case udWake:
			s.wake = false
			if res > 0 && !s.closed.Load() {
				var v [8]byte
				_, _ = unix.Read(s.efd, v[:]) // not from Close: reset
			}
		case udCancel:
			s.cancel--
		}
	}
	atomic.StoreUint32(r.cqHead, head)
}

func (s *uringIO) recvDone(slot int, res int32) {
	if s.rstate[slot] != slotArmed {
		return
	}
	s.armed--
	if res >= 0 {
		s.rstate[slot] = slotDone
		s.done[s.ndone] = recvDone{slot: slot, n: int(res), from: s.source(slot)}
		s.ndone++
		return
	}
	s.rstate[slot] = slotIdle // armed again by the next Recv
	switch errno := syscall.Errno(-res); errno {
	case unix.ECANCELED, unix.EINTR, unix.EAGAIN:
	default:
		s.rerr = errno
	}
}

// deliver returns the completions in b, in their order: Bufs[i] becomes the
// buffer of the i-th, the buffers of the other slots follow.
func (s *uringIO) deliver(b *RecvBatch) int {
	n := s.ndone
	for i := range n {
		d := &s.done[i]
		b.Bufs[i] = s.rbuf[d.slot]
		b.Lens[i] = d.n
		b.Addrs[i] = d.from
		s.rstate[d.slot] = slotIdle
		s.mark[d.slot] = true
	}
	k := n
	for slot := range recvBatch {
		if s.mark[slot] {
			s.mark[slot] = false
			continue
		}
		b.Bufs[k] = s.rbuf[slot]
		k++
	}
	for i := range recvBatch {
		s.bufPtr[i] = unsafe.SliceData(b.Bufs[i])
	}
	b.Count = n
	s.ndone = 0
	s.want = min(max(2*n, minArmed), maxArmed)
	return n
}

// drain cancels the armed receives (and with all, the sends in flight and
// the eventfd poll) and waits until their completions are in, at most a
// second.
func (s *uringIO) drain(all bool) error {
	limit := time.Now().Add(time.Second)
	for {
		s.reap()
		busy := s.armed > 0 || (all && (s.sendIn > 0 || s.wake))
		if !busy {
			return nil
		}
		if s.cancel == 0 {
			// Cancel what is still out. A request that was running when its
			// cancellation arrived is cancelled again on the next round.
			if err := s.reserve(recvBatch + sendBatch + 1); err != nil {
				return err
			}
			for i := range recvBatch {
				if s.rstate[i] == slotArmed {
					s.queueCancel(udRecv | uint64(i))
				}
			}
			if all {
				for m := range s.smsgs {
					if s.sres[m] == sendPending {
						s.queueCancel(udSend | uint64(m))
					}
				}
				if s.wake {
					s.queueCancel(udWake)
				}
			}
		}
		wait := time.Until(limit)
		if wait <= 0 {
			return errNotCancelled
		}
		if _, errno := s.ring.enter(1, min(wait, 50*time.Millisecond)); errno != 0 && !retryable(errno) {
			return fmt.Errorf("io_uring_enter: %w", errno)
		}
	}
}

func (s *uringIO) queueCancel(target uint64) {
	e := s.ring.sqe()
	e.opcode = uringOpAsyncCancel
	e.fd = -1
	e.addr = target
	e.userData = udCancel
	s.cancel++
}

// sendPending marks a send message whose completion is not in.
const sendPending = -1 << 31

// Send implements PacketIO. b.Sent counts io_uring_enter calls.
func (s *uringIO) Send(b *SendBatch) error {
	defer b.reset()
	if b.n == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return ErrClosed
	}
	if err := s.waitSends(b); err != nil { // a send of an earlier batch
		return err
	}
	s.build(b)
	s.sb = b
	for {
		if err := s.queueSends(); err != nil {
			return err
		}
		if err := s.waitSends(b); err != nil {
			return err
		}
		redo := false
		for m := range s.smsgs {
			res, n := s.sres[m], s.shdr[m].Hdr.Iovlen
			switch {
			case res >= 0:
				b.Datagrams += n
				b.Messages++
			case s.gsoRefused(m, syscall.Errno(-res)):
				s.redo[m] = true
				redo = true
			default:
				b.Errors += n
			}
		}
		if !redo {
			s.sb = nil
			return nil
		}
		// The kernel or the device refuses GSO: without it from now on,
		// resend the refused messages' datagrams one by one.
		s.gso = false
		s.resend()
	}
}

// queueSends queues one IORING_OP_SENDMSG per message, each destination's
// messages hard-linked in their order (a failure does not break the chain).
func (s *uringIO) queueSends() error {
	if err := s.reserve(s.smsgs); err != nil {
		return err
	}
	g := &s.group
	for m := range s.smsgs {
		if g.follows[m] {
			continue // queued after the message it follows
		}
		for x := int32(m); x >= 0; x = g.next[x] {
			e := s.ring.sqe()
			e.opcode = uringOpSendmsg
			e.fd = s.fd
			e.addr = uint64(uintptr(unsafe.Pointer(&s.shdr[x].Hdr)))
			e.len = 1
			e.userData = udSend | uint64(x)
			if g.next[x] >= 0 {
				e.flags = uringSqeIOHardlink
			}
			s.sres[x] = sendPending
			s.sendIn++
		}
	}
	return nil
}

// waitSends submits and waits until no send is in flight; Close wakes it.
func (s *uringIO) waitSends(b *SendBatch) error {
	for s.sendIn > 0 {
		if s.closed.Load() {
			return ErrClosed
		}
		_, errno := s.ring.enter(uint32(s.sendIn), 100*time.Millisecond)
		b.Sent++
		if errno != 0 && !retryable(errno) {
			return fmt.Errorf("io_uring_enter: %w", errno)
		}
		s.reap()
	}
	return nil
}

// The io_uring ABI (include/uapi/linux/io_uring.h): x/sys/unix has the
// syscall numbers only.
const (
	uringOpPollAdd     = 6
	uringOpSendmsg     = 9
	uringOpRecvmsg     = 10
	uringOpAsyncCancel = 14

	uringSqeIOHardlink = 1 << 3

	uringEnterGetevents = 1 << 0
	uringEnterExtArg    = 1 << 3

	uringFeatSingleMmap = 1 << 0
	uringFeatExtArg     = 1 << 8

	uringOffSQRing = 0
	uringOffCQRing = 0x8000000
	uringOffSQEs   = 0x10000000
)

// uringSQE is struct io_uring_sqe (64 bytes).
type uringSQE struct {
	opcode      uint8
	flags       uint8
	ioprio      uint16
	fd          int32
	off         uint64
	addr        uint64
	len         uint32
	opFlags     uint32 // msg_flags, poll32_events, cancel_flags
	userData    uint64
	bufIndex    uint16
	personality uint16
	fileIndex   int32
	addr3       uint64
	_           uint64
}

// uringCQE is struct io_uring_cqe (16 bytes without IORING_SETUP_CQE32).
type uringCQE struct {
	userData uint64
	res      int32
	flags    uint32
}

// uringParams is struct io_uring_params with io_sqring_offsets and
// io_cqring_offsets.
type uringParams struct {
	sqEntries    uint32
	cqEntries    uint32
	flags        uint32
	sqThreadCPU  uint32
	sqThreadIdle uint32
	features     uint32
	wqFd         uint32
	resv         [3]uint32
	sqOff        struct {
		head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
		userAddr                                                        uint64
	}
	cqOff struct {
		head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
		userAddr                                                        uint64
	}
}

// uringGeteventsArg is struct io_uring_getevents_arg.
type uringGeteventsArg struct {
	sigmask   uint64
	sigmaskSz uint32
	minWait   uint32
	ts        uint64
}

// uring is one io_uring instance: its descriptor and mapped rings. It is
// not safe for concurrent use.
type uring struct {
	fd      int
	sqRing  []byte
	cqRing  []byte // nil when the CQ shares sqRing (IORING_FEAT_SINGLE_MMAP)
	sqeMem  []byte
	sqHead  *uint32 // written by the kernel
	sqTail  *uint32
	sqMask  uint32
	sqSize  uint32
	sqes    []uringSQE
	tail    uint32 // the next SQE to fill; published to sqTail by enter
	cqHead  *uint32
	cqTail  *uint32 // written by the kernel
	cqMask  uint32
	cqes    []uringCQE
	arg     uringGeteventsArg
	timeout unix.Timespec
}

// newUring sets up an instance with entries SQEs and maps it.
func newUring(entries uint32) (*uring, error) {
	var p uringParams
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	switch errno {
	case 0:
	case unix.ENOSYS:
		return nil, fmt.Errorf("io_uring_setup: %w (the kernel has no io_uring)", errno)
	case unix.EPERM:
		return nil, fmt.Errorf("io_uring_setup: %w (disabled by the kernel.io_uring_disabled sysctl or a seccomp filter)", errno)
	default:
		return nil, fmt.Errorf("io_uring_setup: %w", errno)
	}
	r := &uring{fd: int(fd)}
	if p.features&uringFeatExtArg == 0 {
		r.close()
		return nil, errNoExtArg
	}
	fail := func(err error) (*uring, error) {
		r.close()
		return nil, fmt.Errorf("io_uring mmap: %w", err)
	}
	sqSize := int(p.sqOff.array + p.sqEntries*4)
	cqSize := int(p.cqOff.cqes) + int(p.cqEntries)*int(unsafe.Sizeof(uringCQE{}))
	if p.features&uringFeatSingleMmap != 0 {
		sqSize = max(sqSize, cqSize)
	}
	prot, flags := unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE
	var err error
	if r.sqRing, err = unix.Mmap(r.fd, uringOffSQRing, sqSize, prot, flags); err != nil {
		return fail(err)
	}
	cq := r.sqRing
	if p.features&uringFeatSingleMmap == 0 {
		if r.cqRing, err = unix.Mmap(r.fd, uringOffCQRing, cqSize, prot, flags); err != nil {
			return fail(err)
		}
		cq = r.cqRing
	}
	if r.sqeMem, err = unix.Mmap(r.fd, uringOffSQEs, int(p.sqEntries)*int(unsafe.Sizeof(uringSQE{})), prot, flags); err != nil {
		return fail(err)
	}
	u32 := func(mem []byte, off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&mem[off])) }
	r.sqHead, r.sqTail = u32(r.sqRing, p.sqOff.head), u32(r.sqRing, p.sqOff.tail)
	r.sqMask, r.sqSize = *u32(r.sqRing, p.sqOff.ringMask), p.sqEntries
	r.tail = atomic.LoadUint32(r.sqTail)
	// The SQ array maps ring positions to SQEs: position i is SQE i.
	array := unsafe.Slice(u32(r.sqRing, p.sqOff.array), p.sqEntries)
	for i := range array {
		array[i] = uint32(i)
	}
	r.sqes = unsafe.Slice((*uringSQE)(unsafe.Pointer(&r.sqeMem[0])), p.sqEntries)
	r.cqHead, r.cqTail = u32(cq, p.cqOff.head), u32(cq, p.cqOff.tail)
	r.cqMask = *u32(cq, p.cqOff.ringMask)
	r.cqes = unsafe.Slice((*uringCQE)(unsafe.Pointer(&cq[p.cqOff.cqes])), p.cqEntries)
	return r, nil
}

// close unmaps the rings and closes the descriptor; the kernel cancels
// what is left.
func (r *uring) close() {
	for _, m := range [][]byte{r.sqeMem, r.cqRing, r.sqRing} {
		if m != nil {
			_ = unix.Munmap(m)
		}
	}
	r.sqeMem, r.cqRing, r.sqRing = nil, nil, nil
	r.sqes, r.cqes = nil, nil
	unix.Close(r.fd)
	r.fd = -1
}

// free is the room left in the SQ.
func (r *uring) free() int { return int(r.sqSize - (r.tail - atomic.LoadUint32(r.sqHead))) }

// pending is the number of SQEs queued and not consumed by the kernel.
func (r *uring) pending() uint32 { return r.tail - atomic.LoadUint32(r.sqHead) }

// sqe returns the next SQE, zeroed; the caller has made room (free).
func (r *uring) sqe() *uringSQE {
	e := &r.sqes[r.tail&r.sqMask]
	*e = uringSQE{}
	r.tail++
	return e
}

// enter submits the queued SQEs and, with wait > 0, waits until the CQ
// holds wait completions or timeout passes (timeout < 0: no limit).
func (r *uring) enter(wait uint32, timeout time.Duration) (int, syscall.Errno) {
	atomic.StoreUint32(r.sqTail, r.tail)
	submit := r.pending()
	if submit == 0 && wait == 0 {
		return 0, 0
	}
	var flags uintptr
	if wait > 0 {
		flags |= uringEnterGetevents
	}
	if wait == 0 || timeout < 0 {
		n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(submit), uintptr(wait), flags, 0, 0)
		return int(n), errno
	}
	r.timeout = unix.NsecToTimespec(int64(timeout))
	r.arg = uringGeteventsArg{ts: uint64(uintptr(unsafe.Pointer(&r.timeout)))}
	n, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(submit), uintptr(wait),
		flags|uringEnterExtArg, uintptr(unsafe.Pointer(&r.arg)), unsafe.Sizeof(r.arg))
	return int(n), errno
}
