package rtpcore

import (
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/hayate-sfu/hayate/rtpcore/ice"
	"github.com/hayate-sfu/hayate/rtpcore/packetcache"
)

// shard is one socket and the goroutine that serves it.
type shard struct {
	e  *Engine
	id int
	io PacketIO
	rb *RecvBatch
	sb *SendBatch
	// peers maps the addresses that passed ICE on this socket to their
	// transport. Only the shard's goroutine touches it.
	peers map[netip.AddrPort]*Transport
	// addresses is len(peers), for the stats.
	addresses atomic.Int64
	stun      ice.Responder
	stats     Stats
	// now is the wall time (ns) at which the batch in hand was received.
	now int64
	// beat is the wall time (ns) at which the loop last came back from a
	// receive; the janitor reads it to tell a stuck loop (a node stall).
	beat atomic.Int64
	// pending are the batch's decrypted publisher packets, forwarded at
	// the end of the batch (forwardPending).
	pending  [recvBatch]pendingPacket
	npending int
	// scratch holds a cached packet being retransmitted.
	scratch [packetcache.SlotSize]byte

	// Handoff between shards (handoff.go): the pool of packets this shard
	// hands to others (made on first use) and the next to use; the shards
	// handed packets since the last wake; the packets taken from another
	// shard's ring; asleep is set while the loop waits in its receive.
	pool   []sharedPacket
	next   uint64
	swept  uint64 // next at the last sweepPool
	woke   []bool
	inbox  [recvBatch]*sharedPacket
	asleep atomic.Bool

	// Datagrams taken from links (link.go), handled like a receive batch.
	lbufs [recvBatch][]byte
	llens [recvBatch]int
	lfrom [recvBatch]netip.AddrPort
}

func newShard(e *Engine, id int, io PacketIO, shards int) *shard {
	return &shard{e: e, id: id, io: io, rb: NewRecvBatch(), sb: NewSendBatch(), peers: map[netip.AddrPort]*Transport{},
		woke: make([]bool, shards)}
}

// housekeeping is how often a shard forgets addresses of closed transports.
const housekeeping = time.Second

// run runs the receive loop and restarts it if a bug makes it panic: one
// bad datagram must not stop the media of everyone on this socket. The
// panic's value is logged, with no stack trace.
func (s *shard) run() {
	defer s.e.wg.Done()
	for !s.loopOnce() {
	}
}

func (s *shard) loopOnce() (done bool) {
	defer func() {
		if v := recover(); v != nil {
			s.stats.Panics.Add(1)
			s.e.cfg.Log.Error("media receive loop panicked; restarting it", "shard", s.id, "panic", fmt.Sprint(v))
			s.sb.reset()
			s.npending = 0
			for i, sp := range s.inbox {
				if sp != nil {
					sp.refs.Add(-1)
					s.inbox[i] = nil
				}
			}
			done = false
		}
	}()
	s.loop()
	return true
}

// loop is the receive loop.
//
// It wakes for: a batch of datagrams (handle each, then flush the datagrams
// produced with one send call), datagrams from links (link.go: handled and
// flushed the same way), or the receive deadline (no traffic for 250 ms:
// only housekeeping). It returns when the socket is closed.
func (s *shard) loop() {
	lastSweep := time.Now()
	for {
		now := time.Now()
		s.beat.Store(now.UnixNano())
		// Asleep in the receive, the loop is woken by a shard handing it
		// packets (handoff.go); with packets already handed, it only
		// looks at what the socket has.
		deadline := now.Add(recvWait)
		s.asleep.Store(true)
		if s.inboxWaiting() {
			s.asleep.Store(false)
			deadline = now
		}
		n, err := s.io.Recv(s.rb, deadline)
		s.asleep.Store(false)
		now = time.Now()
		s.beat.Store(now.UnixNano())
		if err != nil && !errors.Is(err, ErrTimeout) {
			if s.e.ctx.Err() != nil || errors.Is(err, ErrClosed) {
				return
			}
			s.e.cfg.Log.Warn("media receive error", "shard", s.id, "err", err)
			continue
		}
		if n > 0 {
			// Liveness is stamped with the time the batch arrived, before
			// any of it is handled (liveness.go).
			s.now = now.UnixNano()
			s.stats.RecvCalls.Add(1)
			for i := range n {
				s.handle(s.rb.Bufs[i][:s.rb.Lens[i]], s.rb.Addrs[i])
			}
		}
		s.flush()
		s.handleLinked()
		if now.Sub(lastSweep) >= housekeeping {
			lastSweep = now
			s.sweepPool()
			for a, t := range s.peers {
				if t.isClosed() {
					delete(s.peers, a)
					s.addresses.Add(-1)
				}
			}
		}
	}
}

// flush forwards the batch's publisher packets and those other shards
// handed this one, and sends everything that produced.
func (s *shard) flush() {
	s.forwardPending()
	s.drainInbox()
	s.send()
}

// send hands the gathered datagrams to the socket.
func (s *shard) send() {
	n := s.sb.Len()
	if n == 0 {
		return
	}
	var bytes uint64
	for i := range n {
		bytes += uint64(s.sb.lens[i])
	}
	calls, msgs, sent, errs := s.sb.Sent, s.sb.Messages, s.sb.Datagrams, s.sb.Errors
	_ = s.io.Send(s.sb)
	s.stats.SendCalls.Add(s.sb.Sent - calls)
	s.stats.SendMessages.Add(s.sb.Messages - msgs)
	s.stats.PacketsOut.Add(s.sb.Datagrams - sent)
	s.stats.SendErrors.Add(s.sb.Errors - errs)
	s.stats.BytesOut.Add(bytes)
}

// slot returns a free send slot, sending the batch first if it is full.
func (s *shard) slot() []byte {
	if s.sb.Full() {
		s.send()
	}
	return s.sb.Slot()
}

// handle demultiplexes one datagram by its first byte (RFC 7983 §7, RFC 9443).
func (s *shard) handle(b []byte, from netip.AddrPort) {
	s.stats.PacketsIn.Add(1)
	s.stats.BytesIn.Add(uint64(len(b)))
	if len(b) == 0 {
		s.stats.DropMalformed.Add(1)
		return
	}
	switch c := b[0]; {
	case c < 4:
		s.handleSTUN(b, from)
	case c >= 20 && c <= 63:
		t := s.peer(from)
		if t == nil {
			return
		}
		t.lastRecv.Store(s.now)
		t.bytesIn.Add(uint64(len(b)))
		t.dtlsCountIn.Add(1)
		t.deliverDTLS(s, from, b)
	case c >= 128 && c <= 191:
		t := s.peer(from)
		if t == nil {
			return
		}
		if !t.ready.Load() {
			s.stats.DropNotReady.Add(1)
			return
		}
		t.lastRecv.Store(s.now)
		t.bytesIn.Add(uint64(len(b)))
		// RFC 5761 §4: payload types 64-95 (second byte 192-223) are RTCP.
		if len(b) >= 8 && b[1] >= 192 && b[1] <= 223 {
			s.handleRTCP(t, b)
		} else {
			s.handleRTP(t, b)
		}
	default:
		s.stats.DropMalformed.Add(1)
	}
}

// peer returns the transport of an address that passed ICE on this socket.
func (s *shard) peer(from netip.AddrPort) *Transport {
	t := s.peers[from]
	if t == nil || t.isClosed() {
		s.stats.DropUnknownAddress.Add(1)
		return nil
	}
	return t
}

func (s *shard) handleSTUN(b []byte, from netip.AddrPort) {
	agent, resp, out := s.stun.Handle(b, from, s.e.lookup)
	switch out {
	case ice.Ignored:
		return
	case ice.Malformed:
		s.stats.DropSTUNMalformed.Add(1)
		return
	case ice.UnknownUfrag:
		s.stats.DropSTUNUnknown.Add(1)
		return
	case ice.BadRequest:
		s.stats.DropSTUNBadRequest.Add(1)
	case ice.Unauthorized:
		s.stats.DropSTUNAuth.Add(1)
	case ice.Answered, ice.Nominated:
		t := s.e.transportOf(agent.LocalUfrag)
		if t == nil || t.isClosed() {
			return
		}
		if _, known := s.peers[from]; !known {
			s.addresses.Add(1)
		}
		s.peers[from] = t
		addr := from
		t.checkedAddr.Store(&addr)
		t.io.Store(&s.io)
		t.lastRecv.Store(s.now)
		t.bytesIn.Add(uint64(len(b)))
		s.stats.STUNAnswered.Add(1)
		if out == ice.Nominated {
			s.stats.STUNNominations.Add(1)
		}
		if !t.checked.Swap(true) {
			t.checkedAt.Store(time.Now().UnixNano())
			if t.dtlsClient.Load() {
				t.startDTLSClient()
			}
		}
	}
	if resp != nil {
		slot := s.slot()
		s.sb.Commit(append(slot, resp...), from)
	}
}
