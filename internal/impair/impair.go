// Package impair is a UDP relay that impairs what it carries, for tests
// and benchmarks on machines without tc netem: random and burst loss,
// delay, jitter, reordering, duplication, and a rate cap with a bounded
// queue. It sits between clients and a server: clients send to the
// relay's address (a server advertises it, e.g. Hayate's
// media_advertised_address), and each client gets a socket of its own
// towards the server, so the server sees one address per client, as
// through a NAT.
//
// Each client is a Flow with one Profile per direction, set for new flows
// by the relay's default and changed at any time. Randomness comes from a
// seeded generator per link, so a run is repeatable packet for packet.
package impair

import (
	"container/heap"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Profile is the impairment of one direction of a flow.
type Profile struct {
	// Loss drops each packet with this probability.
	Loss float64
	// BurstLoss is the average loss of a two-state (Gilbert-Elliott)
	// channel whose bad state drops everything and lasts BurstLen packets
	// on average.
	BurstLoss float64
	BurstLen  float64
	// Delay is added to every packet, plus a uniform jitter in
	// [0, Jitter) (which reorders packets closer together than it).
	Delay  time.Duration
	Jitter time.Duration
	// Reorder holds a packet back by ReorderBy with this probability.
	Reorder   float64
	ReorderBy time.Duration
	// Duplicate sends a packet twice with this probability.
	Duplicate float64
	// Rate caps the link in bits per second (0: none). Packets wait in a
	// FIFO queue of at most Queue bytes (a full queue drops them) and
	// leave at the rate, counting UDP and IPv4 headers.
	Rate  int64
	Queue int
}

// Stats count one direction of a flow.
type Stats struct {
	Offered    uint64 // packets that reached the relay
	Lost       uint64 // dropped by Loss or BurstLoss
	QueueDrops uint64 // dropped by a full queue
	Delivered  uint64 // packets sent on (duplicates included)
	Duplicated uint64
	Bytes      uint64 // bytes delivered
}

// Relay is the relay.
type Relay struct {
	conn   *net.UDPConn
	server atomic.Pointer[netip.AddrPort]
	seed   uint64

	mu       sync.Mutex
	flows    map[netip.AddrPort]*Flow
	order    []*Flow
	up, down Profile
	closed   bool
	wg       sync.WaitGroup
}

// ErrClosed is returned by operations on a closed relay.
var ErrClosed = errors.New("impair: relay closed")

// New starts a relay on 127.0.0.1 (a free port) towards server. seed
// makes its random choices repeatable.
func New(server netip.AddrPort, seed uint64) (*Relay, error) {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	c.SetReadBuffer(4 << 20)
	c.SetWriteBuffer(4 << 20)
	r := &Relay{conn: c, seed: seed, flows: map[netip.AddrPort]*Flow{}}
	r.server.Store(&server)
	r.wg.Add(1)
	go r.readClients()
	return r, nil
}

// SetServer changes where the relay forwards to (for a server started
// after the relay, which it must advertise).
func (r *Relay) SetServer(server netip.AddrPort) { r.server.Store(&server) }

// Addr is where clients send.
func (r *Relay) Addr() netip.AddrPort {
	ap, _ := netip.ParseAddrPort(r.conn.LocalAddr().String())
	return ap
}

// SetDefault sets the profiles of flows created from now on: up is client
// to server, down server to client.
func (r *Relay) SetDefault(up, down Profile) {
	r.mu.Lock()
	r.up, r.down = up, down
	r.mu.Unlock()
}

// Flows returns the flows in the order their clients first sent.
func (r *Relay) Flows() []*Flow {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*Flow(nil), r.order...)
}

// Close stops the relay and every flow.
func (r *Relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	flows := r.order
	r.mu.Unlock()
	err := r.conn.Close()
	for _, f := range flows {
		f.close()
	}
	r.wg.Wait()
	return err
}

// readClients reads what clients send and hands it to their flows.
func (r *Relay) readClients() {
	defer r.wg.Done()
	buf := make([]byte, 65536)
	for {
		n, from, err := r.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		f := r.flow(from)
		if f == nil {
			continue
		}
		f.upLink.offer(buf[:n])
	}
}

// flow returns the flow of a client, creating it.
func (r *Relay) flow(client netip.AddrPort) *Flow {
	r.mu.Lock()
	defer r.mu.Unlock()
	if f := r.flows[client]; f != nil {
		return f
	}
	if r.closed {
		return nil
	}
	up, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil
	}
	up.SetReadBuffer(4 << 20)
	up.SetWriteBuffer(4 << 20)
	i := uint64(len(r.order))
	f := &Flow{Client: client, sock: up}
	f.upLink = newLink(r.up, r.seed+2*i, func(b []byte) { up.WriteToUDPAddrPort(b, *r.server.Load()) }, &r.wg)
	f.downLink = newLink(r.down, r.seed+2*i+1, func(b []byte) { r.conn.WriteToUDPAddrPort(b, client) }, &r.wg)
	r.flows[client] = f
	r.order = append(r.order, f)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		buf := make([]byte, 65536)
		for {
			n, from, err := up.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if from == *r.server.Load() {
				f.downLink.offer(buf[:n])
			}
		}
	}()
	return f
}

// Flow is one client's traffic through the relay.
type Flow struct {
	// Client is the client's address.
	Client           netip.AddrPort
	sock             *net.UDPConn
	upLink, downLink *link
}

// Set changes both directions' profiles.
func (f *Flow) Set(up, down Profile) {
	f.upLink.set(up)
	f.downLink.set(down)
}

// SetUp changes the client-to-server profile.
func (f *Flow) SetUp(p Profile) { f.upLink.set(p) }

// SetDown changes the server-to-client profile.
func (f *Flow) SetDown(p Profile) { f.downLink.set(p) }

// Up and Down are the counters of each direction.
func (f *Flow) Up() Stats   { return f.upLink.stats() }
func (f *Flow) Down() Stats { return f.downLink.stats() }

// Upstream is the flow's address as the server sees it.
func (f *Flow) Upstream() netip.AddrPort {
	ap, _ := netip.ParseAddrPort(f.sock.LocalAddr().String())
	return ap
}

func (f *Flow) close() {
	f.sock.Close()
	f.upLink.close()
	f.downLink.close()
}

// udpIPv4 is what UDP and IPv4 add to a datagram on the wire.
const udpIPv4 = 28

// link is one direction: it decides each packet's fate and time and
// sends it then, from one goroutine.
type link struct {
	send func([]byte)

	mu      sync.Mutex
	p       Profile
	rnd     *rand.Rand
	bad     bool // burst loss state
	pending pq
	// Rate cap: when the link is next free, and the departures of the
	// packets queued, to know the backlog.
	busyUntil time.Time
	queued    []queued
	seq       uint64
	wake      chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	offered, lost, qdrops, delivered, duplicated, bytes atomic.Uint64
}

type queued struct {
	depart time.Time
	size   int
}

func newLink(p Profile, seed uint64, send func([]byte), wg *sync.WaitGroup) *link {
	l := &link{send: send, p: p, rnd: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	wg.Add(1)
	go func() {
		defer wg.Done()
		l.run()
	}()
	return l
}

func (l *link) set(p Profile) {
	l.mu.Lock()
	l.p = p
	l.mu.Unlock()
}

func (l *link) stats() Stats {
	return Stats{Offered: l.offered.Load(), Lost: l.lost.Load(), QueueDrops: l.qdrops.Load(),
		Delivered: l.delivered.Load(), Duplicated: l.duplicated.Load(), Bytes: l.bytes.Load()}
}

func (l *link) close() { l.closeOnce.Do(func() { close(l.done) }) }

// offer takes a packet (copied) and schedules its delivery.
func (l *link) offer(b []byte) {
	l.offered.Add(1)
	now := time.Now()
	l.mu.Lock()
	p := l.p
	if l.dropped(p) {
		l.mu.Unlock()
		l.lost.Add(1)
		return
	}
	at := now
	if p.Rate > 0 {
		k := 0
		backlog := 0
		for _, q := range l.queued {
			if q.depart.After(now) {
				l.queued[k] = q
				k++
				backlog += q.size
			}
		}
		l.queued = l.queued[:k]
		if backlog+len(b) > p.Queue {
			l.mu.Unlock()
			l.qdrops.Add(1)
			return
		}
		start := now
		if l.busyUntil.After(now) {
			start = l.busyUntil
		}
		l.busyUntil = start.Add(time.Duration(int64(len(b)+udpIPv4) * 8 * int64(time.Second) / p.Rate))
		l.queued = append(l.queued, queued{l.busyUntil, len(b)})
		at = l.busyUntil
	}
	at = at.Add(p.Delay)
	if p.Jitter > 0 {
		at = at.Add(time.Duration(l.rnd.Int64N(int64(p.Jitter))))
	}
	if p.Reorder > 0 && l.rnd.Float64() < p.Reorder {
		at = at.Add(p.ReorderBy)
	}
	copies := 1
	if p.Duplicate > 0 && l.rnd.Float64() < p.Duplicate {
		copies = 2
		l.duplicated.Add(1)
	}
	pkt := append([]byte(nil), b...)
	for range copies {
		l.seq++
		heap.Push(&l.pending, item{at: at, seq: l.seq, b: pkt})
	}
	l.mu.Unlock()
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// dropped draws random and burst loss; called with l.mu held.
func (l *link) dropped(p Profile) bool {
	if p.BurstLoss > 0 && p.BurstLen >= 1 {
		// Stationary bad-state share = BurstLoss; bad lasts BurstLen on
		// average.
		toGood := 1 / p.BurstLen
		toBad := p.BurstLoss * toGood / (1 - p.BurstLoss)
		if l.bad {
			l.bad = l.rnd.Float64() >= toGood
		} else {
			l.bad = l.rnd.Float64() < toBad
		}
		if l.bad {
			return true
		}
	}
	return p.Loss > 0 && l.rnd.Float64() < p.Loss
}

// run sends packets when they are due.
func (l *link) run() {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		l.mu.Lock()
		var due []item
		now := time.Now()
		for l.pending.Len() > 0 && !l.pending[0].at.After(now) {
			due = append(due, heap.Pop(&l.pending).(item))
		}
		wait := time.Hour
		if l.pending.Len() > 0 {
			wait = l.pending[0].at.Sub(now)
		}
		l.mu.Unlock()
		for _, it := range due {
			l.send(it.b)
			l.delivered.Add(1)
			l.bytes.Add(uint64(len(it.b)))
		}
		t.Reset(wait)
		select {
		case <-l.done:
			return
		case <-l.wake:
		case <-t.C:
		}
	}
}

// item is a packet due at at; seq keeps equal times in arrival order.
type item struct {
	at  time.Time
	seq uint64
	b   []byte
}

type pq []item

func (q pq) Len() int { return len(q) }
func (q pq) Less(i, j int) bool {
	if q[i].at.Equal(q[j].at) {
		return q[i].seq < q[j].seq
	}
	return q[i].at.Before(q[j].at)
}
func (q pq) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *pq) Push(x any)   { *q = append(*q, x.(item)) }
func (q *pq) Pop() any {
	old := *q
	it := old[len(old)-1]
	*q = old[:len(old)-1]
	return it
}
