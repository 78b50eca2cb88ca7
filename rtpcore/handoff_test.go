//go:build linux

package rtpcore

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"github.com/pion/stun/v4"

	"github.com/hayate-sfu/hayate/internal/cert"
	"github.com/hayate-sfu/hayate/internal/poll"
	"github.com/hayate-sfu/hayate/media"
)

// TestBroadcastOnEveryShard: on an engine of three sockets with running
// receive loops, one publisher's packets reach subscribers whose home is
// every one of the shards, each subscriber's stream complete and in order,
// and every shard sends exactly the packets of its own subscribers.
func TestBroadcastOnEveryShard(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) { testBroadcastOnEveryShard(t, be) })
	}
}

func testBroadcastOnEveryShard(t *testing.T, be backend) {
	const shards, nsubs, npkts, step = 3, 9, 300, 20
	crt, err := cert.Generate()
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewWithIO(Config{Addr: loopback, Sockets: shards, Certificate: crt.TLS, Fingerprint: crt.Fingerprint,
		FailedTimeout: time.Minute, ReportInterval: time.Second,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, be.listen(t, loopback, shards))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	prof := srtp.ProtectionProfileAeadAes128Gcm
	pc, paddr := udpSink(t)
	pubIn := newKeys(t, prof)
	pub := readyTransport(t, e, prof, pubIn, newKeys(t, prof), paddr)
	tr := media.Track{Kind: media.Video, SSRC: 0x1234, PayloadType: 96, ClockRate: 90000}
	pub.Publish([]media.Track{tr})

	homes := make([]int, shards)
	views := make([]*viewer, nsubs)
	for i := range views {
		c, addr := udpSink(t)
		k := newKeys(t, prof)
		sub := readyTransport(t, e, prof, newKeys(t, prof), k, addr)
		sub.Subscribe(pub, []media.Track{tr})
		homes[sub.home]++
		views[i] = startViewer(t, c, k.context(t, prof))
	}
	// Homes are balanced: the publisher took shard 0, the subscribers
	// spread evenly over the three.
	for i, n := range homes {
		if n != nsubs/shards {
			t.Fatalf("shard %d is home to %d subscribers, want %d (homes %v)", i, n, nsubs/shards, homes)
		}
	}

	// ICE: the publisher's address passes a check on the socket the
	// kernel picks for it; the answer says the check was handled.
	pub.agent.SetRemoteUfrag("peer")
	req, err := stun.Build(stun.BindingRequest, stun.TransactionID, stun.NewUsername(pub.agent.LocalUfrag+":peer"),
		rawAttrSetter{stun.AttrPriority, []byte{1, 2, 3, 4}}, stun.NewShortTermIntegrity(pub.agent.LocalPwd), stun.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc.WriteToUDPAddrPort(req.Raw, e.Bound()); err != nil {
		t.Fatal(err)
	}
	pc.SetReadDeadline(time.Now().Add(poll.Patience))
	if _, _, err := pc.ReadFromUDPAddrPort(make([]byte, 1500)); err != nil {
		t.Fatalf("no STUN answer: %v", err)
	}

	// The stream, step packets at a time, each step waited for so that no
	// socket buffer overflows on a loaded machine.
	stream := encryptedStream(t, pubIn.context(t, prof), tr.SSRC, 96, 1000, npkts)
	for i := 0; i < npkts; i += step {
		for _, p := range stream[i : i+step] {
			if _, err := pc.WriteToUDPAddrPort(p, e.Bound()); err != nil {
				t.Fatal(err)
			}
		}
		poll.Soon(t, fmt.Sprintf("every subscriber to get %d packets", i+step), func() bool {
			for _, v := range views {
				if v.got.Load() < int64(i+step) {
					return false
				}
			}
			return true
		})
	}
	for i, v := range views {
		if err := v.stop(); err != nil {
			t.Fatalf("subscriber %d: %v", i, err)
		}
	}
	for i, s := range e.shards {
		if got, want := s.stats.Forwarded.Load(), uint64(npkts*homes[i]); got != want {
			t.Errorf("shard %d forwarded %d packets, want %d (its %d subscribers')", i, got, want, homes[i])
		}
	}
	if st := e.Stats(); st.HandedOff == 0 || st.Dropped["handoff_full"] != 0 {
		t.Errorf("handed off %d, dropped %d", st.HandedOff, st.Dropped["handoff_full"])
	}
}

// rawAttrSetter adds one attribute as it is.
type rawAttrSetter struct {
	t stun.AttrType
	v []byte
}

func (a rawAttrSetter) AddTo(m *stun.Message) error { m.Add(a.t, a.v); return nil }

// viewer reads one subscriber's socket, decrypts and checks that the
// sequence numbers come as 0, 1, 2, ... without gap or reordering.
type viewer struct {
	c    *net.UDPConn
	got  atomic.Int64
	err  error
	done chan struct{}
}

func startViewer(t *testing.T, c *net.UDPConn, dec *srtp.Context) *viewer {
	v := &viewer{c: c, done: make(chan struct{})}
	go func() {
		defer close(v.done)
		buf := make([]byte, 2048)
		var h rtp.Header
		for {
			n, _, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return // closed by stop
			}
			if _, err := dec.DecryptRTP(nil, buf[:n], &h); err != nil {
				v.err = fmt.Errorf("decrypt: %w", err)
				return
			}
			if want := uint16(v.got.Load()); h.SequenceNumber != want || h.SSRC != 0x1234 {
				v.err = fmt.Errorf("got sequence %d (SSRC %x), want %d", h.SequenceNumber, h.SSRC, want)
				return
			}
			v.got.Add(1)
		}
	}()
	t.Cleanup(func() { v.stop() })
	return v
}

// stop ends the reader and returns what it found wrong.
func (v *viewer) stop() error {
	v.c.SetReadDeadline(time.Now())
	<-v.done
	return v.err
}

// TestHandoffPoolReleased: handed packets keep no track alive once every
// shard has forwarded them, and the pool goes after a housekeeping period
// without handoffs (the node's heap comes back when the media stop).
func TestHandoffPoolReleased(t *testing.T) {
	f := newFanoutOn(t, srtp.ProtectionProfileAeadAes128Gcm, 4, 2)
	s := f.e.shards[0]
	stream := encryptedStream(t, f.pubKeys.context(t, f.prof), f.ssrc, 96, 1100, 10)
	from := f.pubAddr(s)
	for _, p := range stream {
		s.handle(append([]byte(nil), p...), from)
		for _, o := range f.e.shards {
			o.flush()
		}
	}
	if s.pool == nil || s.stats.HandedOff.Load() != 10 {
		t.Fatalf("pool %v, handed off %d of 10", s.pool != nil, s.stats.HandedOff.Load())
	}
	s.sweepPool() // handoffs since the last sweep: the pool stays, cleared
	if s.pool == nil {
		t.Fatal("pool released while in use")
	}
	for i := range s.pool {
		if s.pool[i].p.pt != nil {
			t.Fatalf("pooled packet %d still holds its track", i)
		}
	}
	s.sweepPool() // a period without handoffs
	if s.pool != nil {
		t.Fatal("pool kept after a period without handoffs")
	}
}

// BenchmarkForwardShards: BenchmarkForward's packet to N subscribers
// spread over 1 or 2 shards, both driven by the benchmark's goroutine one
// after the other: the CPU a forwarded packet costs in all, with the
// handoff between shards (copy to a pooled buffer, ring, reference count)
// against none.
//
//	go test -run '^$' -bench ForwardShards -benchmem ./rtpcore/
func BenchmarkForwardShards(b *testing.B) {
	for _, n := range []int{10, 100} {
		for _, shards := range []int{1, 2} {
			b.Run(fmt.Sprintf("subs=%d/shards=%d", n, shards), func(b *testing.B) {
				benchForwardOn(b, srtp.ProtectionProfileAeadAes128Gcm, n, shards)
			})
		}
	}
}
