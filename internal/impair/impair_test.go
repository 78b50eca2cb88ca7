package impair

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/hayate-sfu/hayate/internal/poll"
)

// echo is a UDP server that sends every datagram back to its sender and
// remembers the addresses it heard from.
type echo struct {
	conn *net.UDPConn
	mu   sync.Mutex
	from map[netip.AddrPort]int
}

func newEcho(t *testing.T) *echo {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadBuffer(4 << 20)
	e := &echo{conn: c, from: map[netip.AddrPort]int{}}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			e.mu.Lock()
			e.from[from]++
			e.mu.Unlock()
			c.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	return e
}

func (e *echo) addr() netip.AddrPort {
	ap, _ := netip.ParseAddrPort(e.conn.LocalAddr().String())
	return ap
}

// client sends numbered datagrams through the relay and records the
// numbers that come back, in order, with their arrival times.
type client struct {
	conn *net.UDPConn
	mu   sync.Mutex
	got  []uint32
	at   []time.Time
}

func newClient(t *testing.T) *client {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadBuffer(4 << 20)
	cl := &client{conn: c}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			n, _, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if n >= 4 {
				cl.mu.Lock()
				cl.got = append(cl.got, binary.BigEndian.Uint32(buf))
				cl.at = append(cl.at, time.Now())
				cl.mu.Unlock()
			}
		}
	}()
	return cl
}

func (c *client) send(t *testing.T, to netip.AddrPort, i uint32, size int) {
	b := make([]byte, size)
	binary.BigEndian.PutUint32(b, i)
	if _, err := c.conn.WriteToUDPAddrPort(b, to); err != nil {
		t.Fatal(err)
	}
}

func (c *client) received() []uint32 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]uint32(nil), c.got...)
}

func newRelay(t *testing.T, server netip.AddrPort) *Relay {
	r, err := New(server, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// TestPassThrough: datagrams go both ways unchanged, and each client is a
// distinct address at the server.
func TestPassThrough(t *testing.T) {
	e := newEcho(t)
	r := newRelay(t, e.addr())
	a, b := newClient(t), newClient(t)
	for i := range uint32(20) {
		a.send(t, r.Addr(), i, 100)
		b.send(t, r.Addr(), 1000+i, 100)
	}
	poll.Until(t, "every echo", poll.Patience, func() bool { return len(a.received()) == 20 && len(b.received()) == 20 })
	if got := a.received(); got[0] != 0 || got[19] != 19 {
		t.Fatalf("a got %v", got)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.from) != 2 || len(r.Flows()) != 2 {
		t.Fatalf("server heard %d addresses, relay has %d flows", len(e.from), len(r.Flows()))
	}
	for _, f := range r.Flows() {
		if e.from[f.Upstream()] != 20 {
			t.Fatalf("flow %v upstream %v: %d datagrams", f.Client, f.Upstream(), e.from[f.Upstream()])
		}
	}
}

// TestLoss: random and burst loss drop about their share (the generator
// is seeded, so the counts are repeatable), and the counters add up.
func TestLoss(t *testing.T) {
	for _, c := range []struct {
		name string
		p    Profile
	}{
		{"random 10%", Profile{Loss: 0.1}},
		{"burst 10%", Profile{BurstLoss: 0.1, BurstLen: 5}},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEcho(t)
			r := newRelay(t, e.addr())
			r.SetDefault(c.p, Profile{})
			cl := newClient(t)
			const n = 4000
			for i := range uint32(n) {
				cl.send(t, r.Addr(), i, 50)
				if i%100 == 0 {
					time.Sleep(time.Millisecond) // do not overrun socket buffers
				}
			}
			f := r.Flows()[0]
			poll.Until(t, "every datagram handled", poll.Patience, func() bool {
				s := f.Up()
				return s.Offered == n && s.Lost+s.Delivered == n && uint64(len(cl.received())) == s.Delivered
			})
			lost := f.Up().Lost
			if lost < n*7/100 || lost > n*13/100 {
				t.Fatalf("lost %d of %d", lost, n)
			}
			// Burst loss comes in runs.
			got := cl.received()
			runs, longest := 0, 0
			for i := 1; i < len(got); i++ {
				if gap := int(got[i] - got[i-1] - 1); gap > 0 {
					runs++
					longest = max(longest, gap)
				}
			}
			if c.p.BurstLen > 0 && float64(lost)/float64(runs) < 3 {
				t.Fatalf("burst loss: %d lost in %d runs (longest %d)", lost, runs, longest)
			}
			if c.p.BurstLen == 0 && float64(lost)/float64(runs) > 1.5 {
				t.Fatalf("random loss in runs: %d lost in %d runs", lost, runs)
			}
		})
	}
}

// TestDelayReorderDuplicate: delay holds every datagram back at least that
// long; reordering and jitter change the order; duplication sends twice.
func TestDelayReorderDuplicate(t *testing.T) {
	e := newEcho(t)
	r := newRelay(t, e.addr())
	r.SetDefault(Profile{}, Profile{Delay: 40 * time.Millisecond})
	cl := newClient(t)
	start := time.Now()
	cl.send(t, r.Addr(), 7, 10)
	poll.Until(t, "the delayed echo", poll.Patience, func() bool { return len(cl.received()) == 1 })
	if d := cl.at[0].Sub(start); d < 40*time.Millisecond {
		t.Fatalf("echo after %v, under the 40 ms delay", d)
	}
	f := r.Flows()[0]
	f.Set(Profile{Reorder: 0.3, ReorderBy: 20 * time.Millisecond, Jitter: 2 * time.Millisecond}, Profile{Duplicate: 1})
	for i := range uint32(200) {
		cl.send(t, r.Addr(), 100+i, 10)
		time.Sleep(500 * time.Microsecond)
	}
	poll.Until(t, "200 datagrams, each twice", poll.Patience, func() bool { return len(cl.received()) == 1+400 })
	got := cl.received()[1:]
	count := map[uint32]int{}
	late := 0
	for i, v := range got {
		count[v]++
		if i > 0 && v < got[i-1] {
			late++
		}
	}
	if len(count) != 200 || late == 0 {
		t.Fatalf("%d distinct, %d out of order", len(count), late)
	}
	for v, k := range count {
		if k != 2 {
			t.Fatalf("%d arrived %d times", v, k)
		}
	}
}

// TestRateCap: a burst far over the cap fills the bounded queue and the
// rest is dropped; what passes never beats the rate.
func TestRateCap(t *testing.T) {
	e := newEcho(t)
	r := newRelay(t, e.addr())
	const rate, queue, size = 1_000_000, 20_000, 1000
	r.SetDefault(Profile{}, Profile{Rate: rate, Queue: queue})
	cl := newClient(t)
	cl.send(t, r.Addr(), 0, size)
	poll.Until(t, "the first echo", poll.Patience, func() bool { return len(cl.received()) == 1 })
	start := time.Now()
	for i := range uint32(200) { // 200 kB at once: 1.6 s at the rate
		cl.send(t, r.Addr(), 1+i, size)
	}
	f := r.Flows()[0]
	poll.Until(t, "the burst handled", poll.Patience, func() bool {
		s := f.Down()
		return s.Offered == 201 && s.QueueDrops+s.Delivered == 201 && len(cl.received()) == int(s.Delivered)
	})
	s := f.Down()
	if s.QueueDrops == 0 {
		t.Fatal("a burst ten times the queue lost nothing")
	}
	// The delivered bytes left at the rate: the last arrived no sooner
	// than their wire size allows after the first.
	cl.mu.Lock()
	elapsed := cl.at[len(cl.at)-1].Sub(start)
	cl.mu.Unlock()
	wire := time.Duration(int64(s.Delivered-2)*(size+udpIPv4)*8) * time.Second / rate
	if elapsed < wire {
		t.Fatalf("%d datagrams in %v, faster than %v at the rate", s.Delivered-1, elapsed, wire)
	}
}
