package rtpcore

import (
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Links: peers of the media core that have no UDP socket of their own.
//
// A TURN allocation on this node whose peer is the node itself (package
// turn) and an ICE-TCP connection (package icetcp) reach the core in
// process. Each is a Link. What the peer sends enters the receive loop of
// the link's shard through that shard's in-process queue and is handled
// exactly like a datagram from the socket (demux, ICE, DTLS, SRTP,
// forwarding); what the core sends to the link's address leaves the
// shard's send batch for the link in process (routeIO). No datagram of a
// link crosses the kernel between the TURN server or TCP reader and the
// core.
//
// A link's address is the peer's real address (the allocation's relayed
// address, the TCP client's address) written as an IPv4-mapped IPv6
// address whose zone is the link's kind. The media sockets are IPv4, so no
// UDP peer has such an address: SendBatch.Commit tells a link destination
// by one comparison, and links of different kinds never collide. ICE
// answers still carry the real address (ice.Responder unmaps it).

// Link kinds: the zone of a link's address and what Transport.Path reports.
const (
	LinkTURNUDP = "turn-udp" // TURN over UDP, relaying to this node
	LinkTURNTCP = "turn-tcp" // TURN over TCP
	LinkTURNTLS = "turn-tls" // TURN over TLS
	LinkICETCP  = "tcp"      // ICE-TCP (RFC 6544), RFC 4571 framing
)

// ErrLinkAddrInUse is a link whose address another live link has.
var ErrLinkAddrInUse = errors.New("rtpcore: link address in use")

// Link is one in-process peer of the core.
type Link struct {
	e    *Engine
	s    *shard
	addr netip.AddrPort
	kind string
	out  func([]byte)
	q    *inQueue
	// lastOut is the wall time (ns) at which the core last sent the link a
	// datagram other than a STUN error answer: how its owner tells a link
	// that nothing on this node talks to any more.
	lastOut  atomic.Int64
	answered atomic.Bool // the core answered an ICE check that came through it
	closed   atomic.Bool
	// ended is closed when the transport the link's peer reached closes
	// (endLinks): its owner may then close the link at once.
	ended   chan struct{}
	endOnce sync.Once
}

// Link connects an in-process peer: remote is its real address, kind one
// of the Link kinds, and out receives every datagram the core sends to it.
// out runs on a media receive loop (or a DTLS or timer goroutine), must not
// block, and must copy what it keeps: p is valid only during the call.
func (e *Engine) Link(kind string, remote netip.AddrPort, out func(p []byte)) (*Link, error) {
	if e.ctx.Err() != nil {
		return nil, ErrClosed
	}
	a := linkAddr(kind, remote)
	l := &Link{e: e, addr: a, kind: kind, out: out, ended: make(chan struct{})}
	l.lastOut.Store(time.Now().UnixNano())
	// Links are spread over the socket shards: their peers are handled in
	// parallel, like the kernel spreads UDP peers.
	l.s = e.shards[int(e.linkSeq.Add(1))%len(e.shards)]
	if l.q = l.s.linkQueue(); l.q == nil {
		return nil, ErrClosed
	}
	if _, taken := e.links.LoadOrStore(a, l); taken {
		return nil, ErrLinkAddrInUse
	}
	e.stats.LinksOpened.Add(1)
	e.linkCount.Add(1)
	return l, nil
}

// linkAddr is the address the core knows a link by.
func linkAddr(kind string, remote netip.AddrPort) netip.AddrPort {
	ip := netip.AddrFrom16(remote.Addr().Unmap().As16()).WithZone(kind)
	return netip.AddrPortFrom(ip, remote.Port())
}

// isLinkAddr tells a link's address from a UDP peer's (IPv4).
func isLinkAddr(a netip.AddrPort) bool { return a.Addr().Is4In6() }

// Addr is the address the core knows the link by.
func (l *Link) Addr() netip.AddrPort { return l.addr }

// Kind is the link's kind.
func (l *Link) Kind() string { return l.kind }

// Send hands the core one datagram from the peer. It copies p, never
// blocks, and reports false when the datagram was dropped (the shard's
// in-process queue is full, or the link is closed).
func (l *Link) Send(p []byte) bool {
	if l.closed.Load() || len(p) == 0 || len(p) > bufSize {
		l.e.stats.DropLinkIn.Add(1)
		return false
	}
	if !l.q.put(p, l.addr) {
		l.e.stats.DropLinkQueueFull.Add(1)
		return false
	}
	l.e.stats.LinkIn.Add(1)
	return true
}

// LastSent is when the core last sent the link a datagram (STUN error
// answers aside), or when it was made.
func (l *Link) LastSent() time.Time { return time.Unix(0, l.lastOut.Load()) }

// Answered reports whether the core has answered an ICE check that came
// through the link: the peer knows a connection's ICE password.
func (l *Link) Answered() bool { return l.answered.Load() }

// Ended is closed when the transport the link's peer reached through it
// has closed (the connection ended): nothing on this node will talk to
// the link any more.
func (l *Link) Ended() <-chan struct{} { return l.ended }

// endLinks closes Ended of the links the transport's peer last used.
func (t *Transport) endLinks() {
	var addrs [3]netip.AddrPort
	if a, ok := t.agent.Selected(); ok {
		addrs[0] = a
	}
	if p := t.checkedAddr.Load(); p != nil {
		addrs[1] = *p
	}
	if p := t.dtlsPeer.Load(); p != nil {
		addrs[2] = *p
	}
	for _, a := range addrs {
		if !isLinkAddr(a) {
			continue
		}
		if v, ok := t.e.links.Load(a); ok {
			l := v.(*Link)
			l.endOnce.Do(func() { close(l.ended) })
		}
	}
}

// Close disconnects the link; later datagrams either way are dropped. The
// address the shard learned for it is forgotten with the transport.
func (l *Link) Close() {
	if l.closed.Swap(true) {
		return
	}
	l.e.links.CompareAndDelete(l.addr, l)
	l.e.linkCount.Add(-1)
}

// deliver hands a datagram the core sends to a link's address to its
// owner; datagrams to a link that is gone are dropped.
func (e *Engine) deliver(p []byte, to netip.AddrPort) {
	v, ok := e.links.Load(to)
	if !ok {
		e.stats.DropLinkGone.Add(1)
		return
	}
	l := v.(*Link)
	if l.closed.Load() {
		e.stats.DropLinkGone.Add(1)
		return
	}
	// A Binding success (0x0101) answers an authenticated ICE check; an
	// error answer (0x0111) does not count as the core talking to the peer.
	if len(p) >= 2 && p[0] == 0x01 && p[1] == 0x01 {
		l.answered.Store(true)
	}
	if len(p) < 2 || p[0] != 0x01 || p[1] != 0x11 {
		l.lastOut.Store(time.Now().UnixNano())
	}
	e.stats.LinkOut.Add(1)
	l.out(p)
}

// divert takes the datagrams to links out of a send batch, hands them to
// their links and keeps the rest, in order, for the socket. They count as
// sent datagrams of the batch.
func (e *Engine) divert(b *SendBatch) {
	j := 0
	for i := range b.n {
		if isLinkAddr(b.to[i]) {
			e.deliver(b.slots[i][:b.lens[i]], b.to[i])
			b.Datagrams++
			continue
		}
		if i != j {
			// Swap the slots, not their bytes: each keeps its memory.
			b.slots[i], b.slots[j] = b.slots[j], b.slots[i]
			b.lens[j], b.to[j] = b.lens[i], b.to[i]
		}
		j++
	}
	b.n, b.linked = j, 0
}

// inQueueLen bounds the datagrams waiting in one shard's in-process queue
// (at most inQueueLen × bufSize bytes, allocated as they are first used).
const inQueueLen = 1024

// inQueue is a shard's queue of datagrams from links. Links put, the
// shard's loop takes; the buffers are swapped, not copied, on take.
type inQueue struct {
	mu   sync.Mutex
	bufs [inQueueLen][]byte
	lens [inQueueLen]int
	from [inQueueLen]netip.AddrPort
	head int
	n    atomic.Int32
	// sleeping is set while the loop may block in Recv: a put then wakes it.
	sleeping atomic.Bool
	wake     func()
}

func (q *inQueue) put(p []byte, from netip.AddrPort) bool {
	q.mu.Lock()
	n := int(q.n.Load())
	if n == inQueueLen {
		q.mu.Unlock()
		return false
	}
	i := (q.head + n) % inQueueLen
	if q.bufs[i] == nil {
		q.bufs[i] = make([]byte, bufSize)
	}
	q.lens[i] = copy(q.bufs[i][:cap(q.bufs[i])], p)
	q.from[i] = from
	q.n.Store(int32(n + 1))
	q.mu.Unlock()
	if q.sleeping.Load() && q.wake != nil {
		q.wake()
	}
	return true
}

// take moves up to len(bufs) datagrams into bufs (swapping buffers) and
// returns how many.
func (q *inQueue) take(bufs [][]byte, lens []int, from []netip.AddrPort) int {
	if q.n.Load() == 0 {
		return 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	k := min(int(q.n.Load()), len(bufs))
	for j := range k {
		i := (q.head + j) % inQueueLen
		if bufs[j] == nil {
			bufs[j] = make([]byte, bufSize)
		}
		bufs[j], q.bufs[i] = q.bufs[i], bufs[j]
		lens[j], from[j] = q.lens[i], q.from[i]
	}
	q.head = (q.head + k) % inQueueLen
	q.n.Add(int32(-k))
	return k
}

// routeIO is a shard's socket with its links: sends to link addresses go
// to the links in process, the rest to the socket; Recv returns at once
// (or is woken) when links have datagrams waiting, which the loop then
// takes from the in-process queue (shard.handleLinked).
type routeIO struct {
	PacketIO
	e *Engine
	q *inQueue
}

func newRouteIO(e *Engine, io PacketIO) *routeIO {
	r := &routeIO{PacketIO: io, e: e, q: &inQueue{}}
	if w, ok := io.(waker); ok {
		r.q.wake = w.Wake
	}
	return r
}

// Recv implements PacketIO: it does not block while links have datagrams
// waiting.
func (r *routeIO) Recv(b *RecvBatch, deadline time.Time) (int, error) {
	r.q.sleeping.Store(true)
	if r.q.n.Load() > 0 {
		deadline = time.Now()
	}
	n, err := r.PacketIO.Recv(b, deadline)
	r.q.sleeping.Store(false)
	return n, err
}

// Send implements PacketIO.
func (r *routeIO) Send(b *SendBatch) error {
	if b.linked > 0 {
		r.e.divert(b)
		if b.n == 0 {
			return nil
		}
	}
	return r.PacketIO.Send(b)
}

// WriteTo implements PacketIO.
func (r *routeIO) WriteTo(p []byte, to netip.AddrPort) error {
	if isLinkAddr(to) {
		r.e.deliver(p, to)
		return nil
	}
	return r.PacketIO.WriteTo(p, to)
}

// handleLinked handles the datagrams links have queued for this shard, a
// receive batch's worth at a time, and flushes what they produced.
func (s *shard) handleLinked() {
	q := s.linkQueue()
	if q == nil {
		return
	}
	n := q.take(s.lbufs[:], s.llens[:], s.lfrom[:])
	if n == 0 {
		return
	}
	s.now = time.Now().UnixNano()
	s.beat.Store(s.now)
	for i := range n {
		s.handle(s.lbufs[i][:s.llens[i]], s.lfrom[i])
	}
	s.flush()
}

// linkQueue is the shard's in-process queue (nil for a socket the engine
// did not wrap, in tests that drive shards by hand).
func (s *shard) linkQueue() *inQueue {
	if r, ok := s.io.(*routeIO); ok {
		return r.q
	}
	return nil
}

// Path tells how the transport's peer reaches the node, by the address it
// sends to now: "udp" (directly), or a link kind (LinkTURNUDP, LinkTURNTCP,
// LinkTURNTLS, LinkICETCP); "" before ICE has given an address. A TURN
// allocation that relays through a UDP socket of its own (not in process)
// names its relayed address with MarkRelayed.
func (t *Transport) Path() string {
	a, ok := t.remote()
	switch {
	case !ok:
		return ""
	case isLinkAddr(a):
		return a.Addr().Zone()
	}
	if v, ok := t.e.marked.Load(a); ok {
		return v.(string)
	}
	return "udp"
}

// MarkRelayed records that the UDP peer at addr is a TURN allocation of
// kind (Transport.Path); Unmark forgets it.
func (e *Engine) MarkRelayed(addr netip.AddrPort, kind string) { e.marked.Store(addr, kind) }

// Unmark forgets a MarkRelayed address.
func (e *Engine) Unmark(addr netip.AddrPort) { e.marked.Delete(addr) }
