package turn

import (
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/transport/v5/deadline"

	"github.com/hayate-sfu/hayate/rtpcore"
)

// relayQueueLen bounds the datagrams the core has sent to one allocation
// that pion has not relayed to the client yet (at most relayQueueLen ×
// 2 KiB, allocated as first used); more are dropped and counted.
const relayQueueLen = 64

// relayBufSize is the room of one queued datagram.
const relayBufSize = 2048

// relay is the relayed transport address of one allocation (RFC 8656
// §2.2), the net.PacketConn pion/turn relays through. Its only peer is the
// node's media address: datagrams the client sends to any other address
// are dropped (never an open relay), and ICE checks are passed only for
// the ufrag of the connection whose credentials made the allocation.
//
// In process (the default), the relay is a link of the media core: what
// the client sends enters the core's receive loops, what the core sends
// to the relayed address is queued here for pion to read. Otherwise it is
// a UDP socket of its own that sends to and hears from the media socket
// through the kernel (turn_relay_in_process = false, for comparison).
type relay struct {
	s    *Server
	cred *cred
	kind string
	addr netip.AddrPort // the relayed transport address the client is told
	// media is the node's media address as pion wants a source: every
	// datagram read here comes from it.
	media *net.UDPAddr

	link *rtpcore.Link // in process
	sock *net.UDPConn  // through the kernel

	// The in-process queue: datagrams from the core for pion's reader.
	mu    sync.Mutex
	bufs  [relayQueueLen][]byte
	lens  [relayQueueLen]int
	head  int
	n     int
	ready chan struct{}
	rd    *deadline.Deadline

	lastActive atomic.Int64 // wall ns of the last datagram either way
	closed     chan struct{}
	closeOnce  sync.Once
}

func newRelay(s *Server, c *cred, kind string) *relay {
	r := &relay{s: s, cred: c, kind: kind, media: net.UDPAddrFromAddrPort(s.cfg.Media),
		ready: make(chan struct{}, 1), rd: deadline.New(), closed: make(chan struct{})}
	r.lastActive.Store(time.Now().UnixNano())
	return r
}

// fromCore receives what the core sends to the relayed address (on a
// media goroutine): queued for pion's reader, or dropped when it lags.
func (r *relay) fromCore(p []byte) {
	r.mu.Lock()
	if r.n == relayQueueLen {
		r.mu.Unlock()
		r.s.st.queueFull.Add(1)
		return
	}
	i := (r.head + r.n) % relayQueueLen
	if r.bufs[i] == nil {
		r.bufs[i] = make([]byte, relayBufSize)
	}
	r.lens[i] = copy(r.bufs[i], p)
	r.n++
	r.mu.Unlock()
	r.lastActive.Store(time.Now().UnixNano())
	select {
	case r.ready <- struct{}{}:
	default:
	}
}

// ReadFrom implements net.PacketConn: the next datagram from the node's
// media address to the client.
func (r *relay) ReadFrom(p []byte) (int, net.Addr, error) {
	if r.sock != nil {
		for {
			n, from, err := r.sock.ReadFromUDPAddrPort(p)
			if err != nil {
				return 0, nil, err
			}
			if from != r.s.cfg.Media {
				r.s.st.wrongPeer.Add(1)
				continue
			}
			r.lastActive.Store(time.Now().UnixNano())
			r.s.st.relayedOut.Add(1)
			return n, r.media, nil
		}
	}
	for {
		r.mu.Lock()
		if r.n > 0 {
			n := copy(p, r.bufs[r.head][:r.lens[r.head]])
			r.head = (r.head + 1) % relayQueueLen
			r.n--
			r.mu.Unlock()
			r.s.st.relayedOut.Add(1)
			return n, r.media, nil
		}
		r.mu.Unlock()
		select {
		case <-r.ready:
		case <-r.closed:
			return 0, nil, net.ErrClosed
		case <-r.rd.Done():
			return 0, nil, os.ErrDeadlineExceeded
		}
	}
}

// WriteTo implements net.PacketConn: a datagram the client relays (Send
// indication or ChannelData) to addr, which must be the node's media
// address.
func (r *relay) WriteTo(p []byte, addr net.Addr) (int, error) {
	select {
	case <-r.closed:
		return 0, net.ErrClosed
	default:
	}
	if a, ok := addr.(*net.UDPAddr); !ok || unmapped(a) != r.s.cfg.Media {
		r.s.st.wrongPeer.Add(1)
		return 0, ErrNotMedia
	}
	if len(p) > 0 && p[0] < 4 && !r.ownCheck(p) {
		r.s.st.foreignUfrag.Add(1)
		return 0, ErrForeignUfrag
	}
	r.lastActive.Store(time.Now().UnixNano())
	r.s.st.relayedIn.Add(1)
	if r.sock != nil {
		return r.sock.WriteToUDPAddrPort(p, r.s.cfg.Media)
	}
	if !r.link.Send(p) {
		return 0, ErrClosed
	}
	return len(p), nil
}

// ownCheck reports whether a STUN datagram is not an ICE check for another
// connection: a Binding request's USERNAME must start with the ufrag of
// the connection whose credentials made the allocation (RFC 8445 §7.2.2:
// "remote ufrag:local ufrag", ours first). An allocation therefore reaches
// only its own connection's transport.
func (r *relay) ownCheck(p []byte) bool {
	m := stun.Message{Raw: p}
	if m.Decode() != nil {
		return true // not STUN after all: the core drops what it cannot parse
	}
	u, err := m.Get(stun.AttrUsername)
	if err != nil {
		return true // no USERNAME: the core refuses it (400)
	}
	uf := r.cred.ufrag
	return len(u) > len(uf) && string(u[:len(uf)]) == uf && u[len(uf)] == ':'
}

// Close implements net.PacketConn. pion closes it when the allocation
// ends; Hayate closes it (and pion then deletes the allocation) at idle
// timeout and when the connection's credentials are revoked.
func (r *relay) Close() error {
	r.closeOnce.Do(func() {
		close(r.closed)
		if r.link != nil {
			r.link.Close()
		}
		if r.sock != nil {
			r.s.cfg.Core.Unmark(r.addr)
			r.sock.Close()
		}
		r.s.forget(r)
	})
	return nil
}

// LocalAddr implements net.PacketConn: the relayed transport address.
func (r *relay) LocalAddr() net.Addr { return net.UDPAddrFromAddrPort(r.addr) }

// SetDeadline implements net.PacketConn (reads only).
func (r *relay) SetDeadline(t time.Time) error { return r.SetReadDeadline(t) }

// SetReadDeadline implements net.PacketConn.
func (r *relay) SetReadDeadline(t time.Time) error {
	if r.sock != nil {
		return r.sock.SetReadDeadline(t)
	}
	r.rd.Set(t)
	return nil
}

// SetWriteDeadline implements net.PacketConn; writes do not block.
func (r *relay) SetWriteDeadline(time.Time) error { return nil }

// unmapped is a UDP address with its IP in IPv4 form where it has one.
func unmapped(a *net.UDPAddr) netip.AddrPort {
	ap := a.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}
