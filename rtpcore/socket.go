package rtpcore

import (
	"net/netip"
	"sync/atomic"
	"time"
)

// Sizes of the batches and buffers of one receive loop.
const (
	// bufSize is the size of every packet buffer: a 1500-byte MTU datagram
	// plus room for the SRTP tag and MKI added when re-encrypting.
	bufSize = 2048
	// recvBatch is the number of datagrams one recvmmsg may return.
	recvBatch = 64
	// sendBatch is the number of datagrams gathered before a flush.
	sendBatch = 512
	// maxGSOSegments bounds the segments of one GSO send (the kernel allows
	// 64, UDP_MAX_SEGMENTS in older kernels) and maxGSOBytes its payload.
	maxGSOSegments = 64
	maxGSOBytes    = 65000
)

// PacketIO is the socket backend of one receive loop: batched receive and
// send on one UDP socket bound to the media port. The epoll backend
// (recvmmsg/sendmmsg through the Go netpoller) is in socket_linux.go, the
// io_uring backend (ListenMediaUring) in uring_linux.go.
type PacketIO interface {
	// Recv blocks until at least one datagram has arrived or the deadline
	// passes (then it returns 0 and ErrTimeout), and fills b.
	Recv(b *RecvBatch, deadline time.Time) (int, error)
	// Send sends every datagram of b, coalescing equal-size runs to one
	// destination with UDP GSO where the kernel allows it, and resets b.
	// Datagrams the kernel refuses are dropped and counted in b.Errors.
	Send(b *SendBatch) error
	// WriteTo sends one datagram at once; it is safe for concurrent use and
	// serves the paths that are off the packet loop (DTLS flights, RTCP
	// generated on timers).
	WriteTo(p []byte, to netip.AddrPort) error
	// LocalAddr is the bound address.
	LocalAddr() netip.AddrPort
	// Close closes the socket; a blocked Recv returns ErrClosed.
	Close() error
}

// RecvBatch is the preallocated memory of one receive: Count datagrams, the
// i-th of Lens[i] bytes in Bufs[i] from Addrs[i].
//
// A batch serves one PacketIO: the io_uring backend keeps receives armed
// into the buffers of the batch it was last given, so between two Recv
// calls only Bufs[:Count] belong to the caller, and Recv may reorder the
// slices of Bufs (the same buffers, the received ones first).
type RecvBatch struct {
	Bufs  [recvBatch][]byte
	Lens  [recvBatch]int
	Addrs [recvBatch]netip.AddrPort
	Count int
	// armedBy is the backend whose receives point into Bufs, if any.
	armedBy atomic.Pointer[batchHolder]
}

// batchHolder identifies a backend that holds a RecvBatch's buffers.
type batchHolder struct{ _ byte }

// NewRecvBatch allocates a batch's buffers once.
func NewRecvBatch() *RecvBatch {
	b := &RecvBatch{}
	mem := make([]byte, recvBatch*bufSize)
	for i := range b.Bufs {
		b.Bufs[i] = mem[i*bufSize : (i+1)*bufSize : (i+1)*bufSize]
	}
	return b
}

// SendBatch gathers outgoing datagrams in preallocated slots until a flush.
type SendBatch struct {
	slots [sendBatch][]byte
	lens  [sendBatch]int
	to    [sendBatch]netip.AddrPort
	n     int
	// linked counts the datagrams to link addresses (link.go), which
	// routeIO takes out before the socket sends the rest.
	linked int
	// Sent, Messages, Datagrams and Errors count flushes' results:
	// syscalls made, messages sent (a GSO message carries several
	// datagrams), datagrams handed to the kernel, datagrams refused.
	Sent, Messages, Datagrams, Errors uint64
}

// NewSendBatch allocates a batch's slots once.
func NewSendBatch() *SendBatch {
	b := &SendBatch{}
	mem := make([]byte, sendBatch*bufSize)
	for i := range b.slots {
		b.slots[i] = mem[i*bufSize : (i+1)*bufSize : (i+1)*bufSize]
	}
	return b
}

// Slot returns the next free slot (len 0, cap bufSize) or nil when the
// batch is full; Commit adds what was written to it.
func (b *SendBatch) Slot() []byte {
	if b.n == sendBatch {
		return nil
	}
	return b.slots[b.n][:0]
}

// Commit adds the datagram written into the current slot. p must be the
// slot's memory (the result of appending to Slot()).
func (b *SendBatch) Commit(p []byte, to netip.AddrPort) {
	b.lens[b.n] = len(p)
	b.to[b.n] = to
	b.n++
	if isLinkAddr(to) {
		b.linked++
	}
}

// Len is the number of datagrams waiting.
func (b *SendBatch) Len() int { return b.n }

// Full reports whether no slot is left.
func (b *SendBatch) Full() bool { return b.n == sendBatch }

// reset forgets the gathered datagrams.
func (b *SendBatch) reset() { b.n, b.linked = 0, 0 }
