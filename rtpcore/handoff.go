package rtpcore

import (
	"sync/atomic"
	"time"
)

// One broadcast on every core.
//
// Each subscriber has a home shard (Transport.home, chosen at Open for
// balance: the shard with the fewest transports), and only its home shard
// forwards to it. A publisher's packets arrive on the shard the kernel's
// socket hash picks; that shard decrypts each packet once, forwards it to
// its own subscribers and hands the plaintext to every other shard that
// owns subscribers of the track. The handoff is one copy of the packet
// into a pooled buffer of the receiving shard (the receive buffers belong
// to the socket backend and are reused at the next receive), shared by all
// the shards it goes to with an atomic reference count: no shard copies it
// again. Each shard then encrypts and sends for its own subscribers in its
// own sendmmsg batches.
//
// The queues between shards are single-producer single-consumer rings, one
// per ordered pair of shards, so a publisher's packets (all received by one
// shard) reach each home shard in the order they arrived: no subscriber
// sees its stream reordered. (A publisher whose address changes, to a
// 4-tuple the kernel hashes to another socket, may have a packet of the
// old socket overtaken by one of the new at the change.) A full ring, or a pooled buffer still in use
// when its turn comes again, drops the packet for that shard (counted as
// handoff_full): a shard that far behind is overloaded, as a full socket
// buffer would be.
//
// The pool is made on a shard's first handoff and released after a
// housekeeping period without one (sweepPool), which also clears the
// packets every shard is done with, so that they keep no closed track
// alive.
//
// A shard blocked in its receive is woken by the producer (PacketIO
// Wake: a read deadline in the past for the epoll backend, a write to the
// ring's eventfd for io_uring) only when it is asleep, at most once per
// receive batch of the producer.

// handoffLen is the capacity of one ring between two shards and of a
// shard's pool of shared packets: about 5 s of a 1.5 Mbit/s stream.
const handoffLen = 1024

// sharedPacket is a decrypted publisher packet handed to other shards.
type sharedPacket struct {
	p   pendingPacket // p.plain points into buf
	buf [bufSize]byte
	// refs counts the shards that have yet to forward the packet; the
	// producer reuses the buffer once it is 0.
	refs atomic.Int32
}

// handoffRing carries shared packets from one shard to another.
type handoffRing struct {
	q    [handoffLen]*sharedPacket
	_    [64]byte
	head atomic.Uint64 // next to take (the consumer's)
	_    [56]byte
	tail atomic.Uint64 // next free (the producer's)
	_    [56]byte
}

// push queues p, or reports false when the ring is full. Producer only.
func (r *handoffRing) push(p *sharedPacket) bool {
	t := r.tail.Load()
	if t-r.head.Load() == handoffLen {
		return false
	}
	r.q[t%handoffLen] = p
	r.tail.Store(t + 1)
	return true
}

// pop takes the oldest packet, or nil. Consumer only.
func (r *handoffRing) pop() *sharedPacket {
	h := r.head.Load()
	if h == r.tail.Load() {
		return nil
	}
	p := r.q[h%handoffLen]
	r.q[h%handoffLen] = nil
	r.head.Store(h + 1)
	return p
}

func (r *handoffRing) empty() bool { return r.head.Load() == r.tail.Load() }

// waker is a PacketIO whose blocked Recv can be ended early from another
// goroutine: Wake makes the current or next Recv return at once (with
// what has arrived, or ErrTimeout).
type waker interface{ Wake() }

// sweepPool runs with the loop's housekeeping. It clears the pooled
// packets no shard holds any more, so that they keep no closed track (and
// its transport) reachable, and releases the pool after a housekeeping
// period without handoffs; the next handoff makes it again.
func (s *shard) sweepPool() {
	if s.pool == nil {
		return
	}
	held := false
	for i := range s.pool {
		sp := &s.pool[i]
		if sp.refs.Load() != 0 {
			held = true
			continue
		}
		sp.p = pendingPacket{}
	}
	if !held && s.next == s.swept {
		s.pool = nil
	}
	s.swept = s.next
}

// handOff copies packet p into a pooled buffer and queues it for every
// other shard that owns subscribers of its track, noting in s.woke the
// shards to wake.
func (s *shard) handOff(p *pendingPacket) {
	by := p.pt.downsByShard()
	var to int32
	for j, downs := range by {
		if j != s.id && len(downs) > 0 {
			to++
		}
	}
	if to == 0 {
		return
	}
	if s.pool == nil {
		s.pool = make([]sharedPacket, handoffLen)
	}
	sp := &s.pool[s.next%handoffLen]
	if sp.refs.Load() != 0 {
		s.stats.DropHandoffFull.Add(uint64(to))
		return
	}
	s.next++
	n := copy(sp.buf[:], p.plain)
	sp.p = *p
	sp.p.plain = sp.buf[:n]
	sp.refs.Store(to)
	for j, downs := range by {
		if j == s.id || len(downs) == 0 {
			continue
		}
		if !s.e.rings[s.id*len(s.e.shards)+j].push(sp) {
			sp.refs.Add(-1)
			s.stats.DropHandoffFull.Add(1)
			continue
		}
		s.stats.HandedOff.Add(1)
		s.woke[j] = true
	}
}

// wakeOthers wakes the shards that were handed packets since the last
// call, those that are asleep in their receive.
func (s *shard) wakeOthers() {
	for j, w := range s.woke {
		if !w {
			continue
		}
		s.woke[j] = false
		o := s.e.shards[j]
		if o.asleep.CompareAndSwap(true, false) {
			if w, ok := o.io.(waker); ok {
				w.Wake()
			}
		}
	}
}

// inboxWaiting reports whether another shard has handed this one packets.
func (s *shard) inboxWaiting() bool {
	n := len(s.e.shards)
	for i := range n {
		if i != s.id && !s.e.rings[i*n+s.id].empty() {
			return true
		}
	}
	return false
}

// drainInbox forwards the packets other shards handed this one to its
// own subscribers, a receive batch's worth at a time from each ring.
func (s *shard) drainInbox() {
	n := len(s.e.shards)
	if n < 2 {
		return
	}
	s.now = time.Now().UnixNano()
	for i := range n {
		if i == s.id {
			continue
		}
		r := &s.e.rings[i*n+s.id]
		for !r.empty() {
			var k int
			for k < len(s.inbox) {
				sp := r.pop()
				if sp == nil {
					break
				}
				s.inbox[k] = sp
				k++
			}
			s.forwardShared(s.inbox[:k])
			for j := range k {
				s.inbox[j].refs.Add(-1)
				s.inbox[j] = nil
			}
		}
	}
}

// forwardShared forwards handed-over packets to this shard's subscribers
// of their tracks, subscriber by subscriber as forwardPending does.
func (s *shard) forwardShared(in []*sharedPacket) {
	for i := range in {
		pt := in[i].p.pt
		if i > 0 && s.seen(in[:i], pt) {
			continue
		}
		for _, d := range pt.downsOn(s.id) {
			for j := i; j < len(in); j++ {
				if in[j].p.pt == pt {
					s.forward(d, &in[j].p)
				}
			}
		}
	}
}

// seen reports whether a packet of track pt is among in.
func (s *shard) seen(in []*sharedPacket, pt *pubTrack) bool {
	for _, sp := range in {
		if sp.p.pt == pt {
			return true
		}
	}
	return false
}
