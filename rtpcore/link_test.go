//go:build linux

package rtpcore

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pion/srtp/v3"
	"github.com/pion/stun/v4"

	"github.com/hayate-sfu/hayate/internal/poll"
	"github.com/hayate-sfu/hayate/media"
)

// linkSink records what the core sends to a link.
type linkSink struct {
	mu  sync.Mutex
	got [][]byte
}

func (k *linkSink) out(p []byte) {
	k.mu.Lock()
	k.got = append(k.got, append([]byte(nil), p...))
	k.mu.Unlock()
}

func (k *linkSink) take() [][]byte {
	k.mu.Lock()
	defer k.mu.Unlock()
	g := k.got
	k.got = nil
	return g
}

// bindingRequest is an ICE check to transport t, from a controlling peer
// whose ufrag is "peer".
func bindingRequest(tb testing.TB, t *Transport, nominate bool) []byte {
	tb.Helper()
	ufrag, pwd := t.LocalCredentials()
	setters := []stun.Setter{stun.BindingRequest, stun.TransactionID, stun.NewUsername(ufrag + ":peer"),
		rawAttr{stun.AttrPriority, []byte{0x6e, 0x7f, 0x1e, 0xff}}}
	if nominate {
		setters = append(setters, rawAttr{stun.AttrUseCandidate, nil})
	}
	setters = append(setters, stun.NewShortTermIntegrity(pwd), stun.Fingerprint)
	m, err := stun.Build(setters...)
	if err != nil {
		tb.Fatal(err)
	}
	return m.Raw
}

type rawAttr struct {
	t stun.AttrType
	v []byte
}

func (a rawAttr) AddTo(m *stun.Message) error { m.Add(a.t, a.v); return nil }

// TestLinkICE: an ICE check handed in through a link is answered through
// the link (not the socket) with the peer's real address, nominates the
// link's address, and the transport reports the link's kind as its path.
func TestLinkICE(t *testing.T) {
	e := testEngine(t)
	s := e.shards[0]
	mt, err := e.Open("c1", nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := mt.(*Transport)
	tr.Start(media.Remote{Ufrag: "peer", Pwd: "x"})
	var sink linkSink
	remote := netip.MustParseAddrPort("127.0.0.1:40000")
	l, err := e.Link(LinkTURNTCP, remote, sink.out)
	if err != nil {
		t.Fatal(err)
	}
	if !l.Send(bindingRequest(t, tr, true)) {
		t.Fatal("Send refused a datagram")
	}
	s.handleLinked()
	got := sink.take()
	if len(got) != 1 {
		t.Fatalf("the link got %d datagrams, want the Binding success", len(got))
	}
	m := &stun.Message{Raw: got[0]}
	if err := m.Decode(); err != nil || m.Type != stun.BindingSuccess {
		t.Fatalf("answer %v (%v), want a Binding success", m.Type, err)
	}
	var xor stun.XORMappedAddress
	if err := xor.GetFrom(m); err != nil || xor.String() != remote.String() {
		t.Fatalf("XOR-MAPPED-ADDRESS %v (%v), want the peer's real address %v", xor, err, remote)
	}
	if p := tr.Path(); p != LinkTURNTCP {
		t.Fatalf("Path %q, want %q", p, LinkTURNTCP)
	}
	if !l.Answered() {
		t.Fatal("the link does not know it was answered")
	}
	if s.peers[l.Addr()] != tr {
		t.Fatal("the shard did not learn the link's address")
	}
	// The socket sent nothing: the answer went in process.
	if n := s.stats.PacketsOut.Load(); n != 1 || s.sb.Sent != 0 {
		t.Fatalf("%d datagrams out, %d send calls; want 1 datagram and no socket call", n, s.sb.Sent)
	}
}

// TestLinkAddresses: a link's address is no UDP address, is taken until
// the link closes, and datagrams to or from a closed link are dropped and
// counted.
func TestLinkAddresses(t *testing.T) {
	e := testEngine(t)
	remote := netip.MustParseAddrPort("127.0.0.1:40000")
	var sink linkSink
	l, err := e.Link(LinkTURNUDP, remote, sink.out)
	if err != nil {
		t.Fatal(err)
	}
	if !isLinkAddr(l.Addr()) || isLinkAddr(remote) || l.Addr().Addr().Unmap() != remote.Addr() {
		t.Fatalf("link address %v for %v", l.Addr(), remote)
	}
	if _, err := e.Link(LinkTURNUDP, remote, sink.out); !errors.Is(err, ErrLinkAddrInUse) {
		t.Fatalf("a second link on %v: %v, want ErrLinkAddrInUse", remote, err)
	}
	// Another kind on the same address is another link.
	other, err := e.Link(LinkICETCP, remote, sink.out)
	if err != nil {
		t.Fatal(err)
	}
	other.Close()
	l.Close()
	if l.Send([]byte{0x80, 1, 2}) {
		t.Fatal("a closed link took a datagram")
	}
	e.shards[0].io.WriteTo([]byte{0x80}, l.Addr())
	if len(sink.take()) != 0 {
		t.Fatal("a closed link got a datagram")
	}
	st := e.Stats()
	if st.Links.Closed != 2 || st.Links.Open != 0 || st.Links.Opened != 2 {
		t.Fatalf("link stats %+v", st.Links)
	}
	if _, err := e.Link(LinkTURNUDP, remote, sink.out); err != nil {
		t.Fatalf("the address is free again after Close: %v", err)
	}
}

// TestLinkQueueBound: a shard's in-process queue holds inQueueLen
// datagrams; more are refused and counted, never queued without bound.
func TestLinkQueueBound(t *testing.T) {
	e := testEngine(t)
	l, err := e.Link(LinkICETCP, netip.MustParseAddrPort("127.0.0.1:40000"), func([]byte) {})
	if err != nil {
		t.Fatal(err)
	}
	for i := range inQueueLen {
		if !l.Send([]byte{0x80, byte(i)}) {
			t.Fatalf("datagram %d refused below the bound", i)
		}
	}
	if l.Send([]byte{0x80}) {
		t.Fatal("the queue took a datagram over its bound")
	}
	if n := e.Stats().Links.QueueFull; n != 1 {
		t.Fatalf("queue_full %d, want 1", n)
	}
	e.shards[0].handleLinked()
	if !l.Send([]byte{0x80}) {
		t.Fatal("the queue did not make room after the loop took a batch")
	}
}

// TestForwardToLinks: a publisher on the socket is forwarded to
// subscribers on UDP and on links in one batch; the link subscribers get
// their packets in process, the UDP ones from the socket, each once and
// decryptable with its own keys; and the other way, a publisher on a link
// reaches UDP subscribers through the socket.
func TestForwardToLinks(t *testing.T) {
	const udpSubs, linkSubs = 3, 3
	p := srtp.ProtectionProfileAeadAes128Gcm
	f := newFanout(t, p, udpSubs)
	s := f.e.shards[0]
	tr := media.Track{Kind: media.Video, SSRC: f.ssrc, PayloadType: 96, ClockRate: 90000}
	sinks := make([]*linkSink, linkSubs)
	keysOf := make([]keys, linkSubs)
	for i := range linkSubs {
		sinks[i] = &linkSink{}
		l, err := f.e.Link(LinkTURNUDP, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(41000+i)), sinks[i].out)
		if err != nil {
			t.Fatal(err)
		}
		keysOf[i] = newKeys(t, p)
		sub := readyTransport(t, f.e, p, newKeys(t, p), keysOf[i], l.Addr())
		sub.Subscribe(f.pub, []media.Track{tr})
	}
	pkts := encryptedStream(t, f.pubKeys.context(t, p), f.ssrc, 96, 1000, 4)
	from := f.pubAddr(s)
	for _, pkt := range pkts {
		s.handle(append([]byte(nil), pkt...), from)
	}
	s.flush()
	for i, k := range sinks {
		got := k.take()
		// The first packet of a subscription asks the publisher for a key
		// frame: that PLI went to the publisher's (UDP) address.
		if len(got) != len(pkts) {
			t.Fatalf("link subscriber %d got %d packets, want %d", i, len(got), len(pkts))
		}
		dec := keysOf[i].context(t, p)
		for _, g := range got {
			if _, err := dec.DecryptRTP(nil, g, nil); err != nil {
				t.Fatalf("link subscriber %d: %v", i, err)
			}
		}
	}
	poll.Soon(t, "the UDP subscribers' packets", func() bool { return f.sinks.received() == udpSubs*len(pkts) })
	if got := s.stats.PacketsOut.Load(); got != uint64((udpSubs+linkSubs)*len(pkts)+1) {
		t.Fatalf("%d datagrams counted out, want %d forwards and a PLI", got, (udpSubs+linkSubs)*len(pkts))
	}

	// A publisher on a link: its packets come in through the queue and
	// leave through the socket to the UDP subscribers.
	g := newFanout(t, p, udpSubs)
	gs := g.e.shards[0]
	l, err := g.e.Link(LinkTURNTLS, netip.MustParseAddrPort("127.0.0.1:42000"), func([]byte) {})
	if err != nil {
		t.Fatal(err)
	}
	gs.peers[l.Addr()] = g.pub
	g.pub.checkedAddr.Store(ptr(l.Addr()))
	for _, pkt := range encryptedStream(t, g.pubKeys.context(t, p), g.ssrc, 96, 1000, 4) {
		l.Send(pkt)
	}
	gs.handleLinked()
	poll.Soon(t, "the UDP subscribers' packets from a link publisher", func() bool { return g.sinks.received() == udpSubs*4 })
}

func ptr[T any](v T) *T { return &v }

// TestForwardToLinksZeroAllocs: forwarding to link subscribers allocates
// nothing per packet when the link's owner does not.
func TestForwardToLinksZeroAllocs(t *testing.T) {
	p := srtp.ProtectionProfileAeadAes128Gcm
	f := newFanout(t, p, 1)
	s := f.e.shards[0]
	tr := media.Track{Kind: media.Video, SSRC: f.ssrc, PayloadType: 96, ClockRate: 90000}
	buf := make([]byte, 2048)
	var n int
	for i := range 4 {
		l, err := f.e.Link(LinkTURNUDP, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(41000+i)), func(p []byte) { n += copy(buf, p) })
		if err != nil {
			t.Fatal(err)
		}
		sub := readyTransport(t, f.e, p, newKeys(t, p), newKeys(t, p), l.Addr())
		sub.Subscribe(f.pub, []media.Track{tr})
	}
	pkts := encryptedStream(t, f.pubKeys.context(t, p), f.ssrc, 96, 1000, 300)
	from := f.pubAddr(s)
	in := make([]byte, 2048)
	i := 0
	step := func() {
		pkt := pkts[i%len(pkts)]
		i++
		s.handle(in[:copy(in, pkt)], from)
		s.flush()
	}
	for range 10 {
		step()
	}
	if a := testing.AllocsPerRun(200, step); a != 0 {
		t.Fatalf("%v allocations per forwarded packet to links", a)
	}
	if n == 0 {
		t.Fatal("nothing reached the links")
	}
}

// TestWakeEndsRecv: Wake makes a Recv blocked on an hour's deadline
// return at once, on both backends (links rely on it to be served without
// waiting for the receive deadline); and a Recv whose deadline has passed
// still returns what the socket holds, so links cannot starve UDP peers.
func TestWakeEndsRecv(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			s := be.listen(t, loopback, 1)[0]
			w, ok := s.(waker)
			if !ok {
				t.Fatalf("%T cannot be woken", s)
			}
			rb := NewRecvBatch()
			res := make(chan error, 1)
			go func() {
				_, err := s.Recv(rb, time.Now().Add(time.Hour))
				res <- err
			}()
			w.Wake()
			select {
			case err := <-res:
				if !errors.Is(err, ErrTimeout) {
					t.Fatalf("woken Recv: %v, want ErrTimeout", err)
				}
			case <-time.After(poll.Patience):
				t.Fatal("Wake did not end Recv (its deadline is an hour away)")
			}

			c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(s.LocalAddr()))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			poll.Soon(t, "a past-deadline Recv returns the waiting datagram", func() bool {
				n, _ := s.Recv(rb, time.Now().Add(-time.Second))
				return n == 1
			})
		})
	}
}
