package datachan

import (
	"context"
	"errors"
	"net"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/pion/datachannel"
	"github.com/pion/logging"
	"github.com/pion/sctp"

	"github.com/hayate-sfu/hayate/internal/poll"
)

// packetPipe is one end of an in-memory datagram link: each Write is one
// Read on the other end, as over DTLS.
type packetPipe struct {
	in, out   chan []byte
	done      chan struct{}
	closeOnce *sync.Once
}

func newPacketPipe() (*packetPipe, *packetPipe) {
	a2b, b2a := make(chan []byte, 256), make(chan []byte, 256)
	done, once := make(chan struct{}), &sync.Once{}
	return &packetPipe{in: b2a, out: a2b, done: done, closeOnce: once},
		&packetPipe{in: a2b, out: b2a, done: done, closeOnce: once}
}

func (p *packetPipe) Read(b []byte) (int, error) {
	select {
	case m := <-p.in:
		return copy(b, m), nil
	case <-p.done:
		return 0, net.ErrClosed
	}
}

func (p *packetPipe) Write(b []byte) (int, error) {
	select {
	case p.out <- append([]byte(nil), b...):
		return len(b), nil
	case <-p.done:
		return 0, net.ErrClosed
	}
}

func (p *packetPipe) Close() error                     { p.closeOnce.Do(func() { close(p.done) }); return nil }
func (p *packetPipe) LocalAddr() net.Addr              { return &net.UDPAddr{} }
func (p *packetPipe) RemoteAddr() net.Addr             { return &net.UDPAddr{} }
func (p *packetPipe) SetDeadline(time.Time) error      { return nil }
func (p *packetPipe) SetReadDeadline(time.Time) error  { return nil }
func (p *packetPipe) SetWriteDeadline(time.Time) error { return nil }

// recorder is a Handler that records what happens.
type recorder struct {
	mu     sync.Mutex
	opened []string
	msgs   []string
	binary []bool
	closed []string
	ended  bool
}

func (r *recorder) Opened(ch *Channel) {
	r.mu.Lock()
	r.opened = append(r.opened, ch.Label())
	r.mu.Unlock()
}
func (r *recorder) Message(ch *Channel, msg []byte, binary bool) {
	r.mu.Lock()
	r.msgs = append(r.msgs, ch.Label()+":"+string(msg))
	r.binary = append(r.binary, binary)
	r.mu.Unlock()
}
func (r *recorder) Closed(ch *Channel) {
	r.mu.Lock()
	r.closed = append(r.closed, ch.Label())
	r.mu.Unlock()
}
func (r *recorder) Ended() { r.mu.Lock(); r.ended = true; r.mu.Unlock() }

func (r *recorder) snapshot() (opened, msgs, closed []string, ended bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.opened...), append([]string(nil), r.msgs...), append([]string(nil), r.closed...), r.ended
}

// pair starts an Association (ours, DTLS server side) and a plain pion SCTP
// association on the other end of a pipe.
func pair(t *testing.T, cfg Config) (*Association, *recorder, *sctp.Association) {
	t.Helper()
	a, b := newPacketPipe()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	type res struct {
		sa  *sctp.Association
		err error
	}
	peer := make(chan res, 1)
	go func() {
		sa, err := sctp.ClientContext(ctx, sctp.WithNetConn(b), sctp.WithLoggerFactory(logging.NewDefaultLoggerFactory()))
		peer <- res{sa, err}
	}()
	rec := &recorder{}
	ours, err := Start(ctx, a, false, cfg, rec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	p := <-peer
	if p.err != nil {
		t.Fatalf("peer: %v", p.err)
	}
	t.Cleanup(func() { ours.Close(); p.sa.Close() })
	return ours, rec, p.sa
}

func u32(v uint32) *uint32 { return &v }

// TestOpenOptionsReachPion: channels opened here arrive at pion's
// DataChannel implementation with their label, protocol, ordering and
// partial reliability, on odd stream ids (we are the DTLS server), and are
// acknowledged.
func TestOpenOptionsReachPion(t *testing.T) {
	ours, rec, peer := pair(t, Config{MaxMessageSize: 1024})
	opts := []Options{
		{Label: "signaling"},
		{Label: "#unordered", Unordered: true},
		{Label: "#rexmit", Unordered: true, MaxRetransmits: u32(0), Protocol: "p1"},
		{Label: "#timed", MaxPacketLifeTime: u32(150)},
	}
	want := []struct {
		typ datachannel.ChannelType
		rel uint32
	}{
		{datachannel.ChannelTypeReliable, 0},
		{datachannel.ChannelTypeReliableUnordered, 0},
		{datachannel.ChannelTypePartialReliableRexmitUnordered, 0},
		{datachannel.ChannelTypePartialReliableTimed, 150},
	}
	for _, o := range opts {
		if _, err := ours.Open(o); err != nil {
			t.Fatal(err)
		}
	}
	for range opts {
		dc, err := datachannel.Accept(peer, &datachannel.Config{LoggerFactory: logging.NewDefaultLoggerFactory()})
		if err != nil {
			t.Fatal(err)
		}
		i := -1
		for j, o := range opts {
			if o.Label == dc.Label {
				i = j
			}
		}
		if i < 0 || dc.Protocol != opts[i].Protocol || dc.ChannelType != want[i].typ || dc.ReliabilityParameter != want[i].rel {
			t.Fatalf("accepted %q %q type %v rel %d", dc.Label, dc.Protocol, dc.ChannelType, dc.ReliabilityParameter)
		}
		if dc.StreamIdentifier() != uint16(2*i+1) {
			t.Errorf("channel %q on stream %d, want %d (odd ids for the DTLS server)", dc.Label, dc.StreamIdentifier(), 2*i+1)
		}
	}
	poll.Until(t, "four ACKs", 10*time.Second, func() bool { o, _, _, _ := rec.snapshot(); return len(o) == 4 })
}

// TestMessagesBothWays: text, binary and empty messages in both
// directions, and a message larger than a small buffer.
func TestMessagesBothWays(t *testing.T) {
	ours, rec, peer := pair(t, Config{MaxMessageSize: 8192})
	ch, err := ours.Open(Options{Label: "#chat"})
	if err != nil {
		t.Fatal(err)
	}
	dc, err := datachannel.Accept(peer, &datachannel.Config{LoggerFactory: logging.NewDefaultLoggerFactory()})
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 5000)
	for i := range big {
		big[i] = 'a' + byte(i%26)
	}
	for _, m := range []struct {
		data   []byte
		binary bool
	}{{[]byte("hello"), false}, {[]byte{1, 2, 3}, true}, {nil, true}, {big, true}} {
		if _, err := dc.WriteDataChannel(m.data, !m.binary); err != nil {
			t.Fatal(err)
		}
	}
	poll.Until(t, "four messages", 10*time.Second, func() bool { _, m, _, _ := rec.snapshot(); return len(m) == 4 })
	_, msgs, _, _ := rec.snapshot()
	if msgs[0] != "#chat:hello" || msgs[1] != "#chat:\x01\x02\x03" || msgs[2] != "#chat:" || msgs[3] != "#chat:"+string(big) {
		t.Fatalf("messages: %q", msgs[:3])
	}
	rec.mu.Lock()
	if got := rec.binary; got[0] || !got[1] || !got[2] || !got[3] {
		t.Errorf("binary flags %v", got)
	}
	rec.mu.Unlock()

	for _, m := range []struct {
		data   string
		binary bool
	}{{"text", false}, {"bin", true}, {"", false}} {
		if err := ch.Send([]byte(m.data), m.binary); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 100)
		n, isString, err := dc.ReadDataChannel(buf)
		if err != nil || string(buf[:n]) != m.data || isString == m.binary {
			t.Fatalf("peer read %q string=%v err=%v, want %q", buf[:n], isString, err, m.data)
		}
	}
}

// TestLimits: a message over the peer's max-message-size is refused, a
// send over the queue bound is refused, and a message over ours is
// dropped and counted.
func TestLimits(t *testing.T) {
	cnt := &Counters{}
	ours, rec, peer := pair(t, Config{MaxMessageSize: 100, RemoteMaxMessageSize: 200, QueueBytes: 150, Counters: cnt})
	ch, err := ours.Open(Options{Label: "#x"})
	if err != nil {
		t.Fatal(err)
	}
	dc, err := datachannel.Accept(peer, &datachannel.Config{LoggerFactory: logging.NewDefaultLoggerFactory()})
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Send(make([]byte, 201), true); !errors.Is(err, ErrTooLarge) {
		t.Errorf("201 bytes to a peer that takes 200: %v", err)
	}
	if err := ch.Send(make([]byte, 151), true); !errors.Is(err, ErrQueueFull) {
		t.Errorf("151 bytes with a 150-byte queue: %v", err)
	}
	if _, err := dc.WriteDataChannel(make([]byte, 101), false); err != nil {
		t.Fatal(err)
	}
	if _, err := dc.WriteDataChannel([]byte("ok"), false); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the small message", 10*time.Second, func() bool { _, m, _, _ := rec.snapshot(); return len(m) == 1 })
	if cnt.DropTooLarge.Load() != 1 {
		t.Errorf("DropTooLarge %d", cnt.DropTooLarge.Load())
	}
	if cnt.PacketsIn.Load() == 0 || cnt.PacketsOut.Load() == 0 || cnt.BytesIn.Load() == 0 {
		t.Errorf("SCTP packets not counted: %+v", cnt)
	}
}

// TestPeerOpenedRefusedAndClose: a channel the peer opens is reset, a
// channel the peer closes is reported, and closing ends everything.
func TestPeerOpenedRefusedAndClose(t *testing.T) {
	cnt := &Counters{}
	ours, rec, peer := pair(t, Config{MaxMessageSize: 100, Counters: cnt})
	if _, err := ours.Open(Options{Label: "#x"}); err != nil {
		t.Fatal(err)
	}
	dc, err := datachannel.Accept(peer, &datachannel.Config{LoggerFactory: logging.NewDefaultLoggerFactory()})
	if err != nil {
		t.Fatal(err)
	}
	mine, err := datachannel.Dial(peer, 0, &datachannel.Config{Label: "#mine", LoggerFactory: logging.NewDefaultLoggerFactory()})
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the refusal", 10*time.Second, func() bool { return cnt.RefusedStreams.Load() == 1 })
	if _, err := mine.Read(make([]byte, 10)); err == nil {
		t.Error("a refused channel reads without error")
	}
	if err := dc.Close(); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "#x closed", 10*time.Second, func() bool { _, _, c, _ := rec.snapshot(); return len(c) == 1 })
	if cnt.Associations.Load() != 1 {
		t.Errorf("associations %d", cnt.Associations.Load())
	}
	ours.Close()
	poll.Until(t, "the end", 10*time.Second, func() bool { _, _, _, e := rec.snapshot(); return e })
	if cnt.Associations.Load() != 0 {
		t.Errorf("associations %d after close", cnt.Associations.Load())
	}
}

// TestSendOnly: a send-only channel has no reader (one goroutine less
// than a channel with one) and no Opened, and sends.
func TestSendOnly(t *testing.T) {
	ours, rec, peer := pair(t, Config{MaxMessageSize: 1024})
	before := runtime.NumGoroutine()
	ch, err := ours.Open(Options{Label: "notify", SendOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	// pion's timers may run a goroutine for a moment; a reader would stay.
	poll.Until(t, "no goroutine more than before the send-only channel", 10*time.Second, func() bool {
		return runtime.NumGoroutine() <= before
	})
	dc, err := datachannel.Accept(peer, &datachannel.Config{LoggerFactory: logging.NewDefaultLoggerFactory()})
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Send([]byte(`{"type":"notify"}`), false); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	n, _, err := dc.ReadDataChannel(buf)
	if err != nil || string(buf[:n]) != `{"type":"notify"}` {
		t.Fatalf("%q %v", buf[:n], err)
	}
	if o, _, _, _ := rec.snapshot(); len(o) != 0 {
		t.Errorf("Opened for a send-only channel: %v", o)
	}
}

// TestAcceptChannels: with AcceptChannels, channels the peer opens are
// acknowledged and served: two of our associations talk to each other.
func TestAcceptChannels(t *testing.T) {
	a, b := newPacketPipe()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	client := &recorder{}
	done := make(chan *Association, 1)
	go func() {
		c, err := Start(ctx, b, true, Config{MaxMessageSize: 1024, AcceptChannels: true}, client)
		if err != nil {
			t.Error(err)
		}
		done <- c
	}()
	server := &recorder{}
	srv, err := Start(ctx, a, false, Config{MaxMessageSize: 1024}, server)
	if err != nil {
		t.Fatal(err)
	}
	cli := <-done
	defer cli.Close()
	defer srv.Close()
	ch, err := srv.Open(Options{Label: "#x", Unordered: true, MaxRetransmits: u32(2)})
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "both sides open", 10*time.Second, func() bool {
		o1, _, _, _ := client.snapshot()
		o2, _, _, _ := server.snapshot()
		return len(o1) == 1 && len(o2) == 1
	})
	if err := ch.Send([]byte("hi"), false); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the message", 10*time.Second, func() bool { _, m, _, _ := client.snapshot(); return len(m) == 1 })
	cli.mu.Lock()
	got := cli.channels[0]
	cli.mu.Unlock()
	if o := got.Options(); o.Label != "#x" || !o.Unordered || o.MaxRetransmits == nil || *o.MaxRetransmits != 2 || got.StreamID() != 1 {
		t.Errorf("accepted %+v on stream %d", o, got.StreamID())
	}
	if err := got.Send([]byte("back"), true); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "the answer", 10*time.Second, func() bool { _, m, _, _ := server.snapshot(); return len(m) == 1 })
}

func TestMain(m *testing.M) { os.Exit(m.Run()) }
