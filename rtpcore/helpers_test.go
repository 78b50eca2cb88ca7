//go:build linux

package rtpcore

import (
	"crypto/rand"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
	"golang.org/x/sys/unix"

	"github.com/hayate-sfu/hayate/internal/cert"
	"github.com/hayate-sfu/hayate/media"
)

// testEngine is an engine on one real loopback socket whose receive loop
// does not run: the test drives the shard itself.
func testEngine(tb testing.TB) *Engine { return testEngineOn(tb, 1) }

// testEngineOn is testEngine with n sockets (shards).
func testEngineOn(tb testing.TB, n int) *Engine {
	tb.Helper()
	c, err := cert.Generate()
	if err != nil {
		tb.Fatal(err)
	}
	socks, err := listenMedia(netip.MustParseAddrPort("127.0.0.1:0"), n)
	if err != nil {
		tb.Fatal(err)
	}
	ios := make([]PacketIO, n)
	for i, s := range socks {
		ios[i] = s
	}
	e, err := newEngine(Config{Addr: netip.MustParseAddrPort("127.0.0.1:0"), Sockets: n, Certificate: c.TLS,
		Fingerprint: c.Fingerprint, FailedTimeout: time.Minute, ReportInterval: time.Second,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, ios, false)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close() })
	return e
}

// keys is one direction's SRTP master key and salt.
type keys struct{ key, salt []byte }

func newKeys(tb testing.TB, p srtp.ProtectionProfile) keys {
	kl, _ := p.KeyLen()
	sl, _ := p.SaltLen()
	k := keys{make([]byte, kl), make([]byte, sl)}
	rand.Read(k.key)
	rand.Read(k.salt)
	return k
}

func (k keys) context(tb testing.TB, p srtp.ProtectionProfile, opts ...srtp.ContextOption) *srtp.Context {
	tb.Helper()
	c, err := srtp.CreateContext(k.key, k.salt, p, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// readyTransport opens a transport and puts it in the connected state with
// SRTP keys set directly (no DTLS), sending to peer.
func readyTransport(tb testing.TB, e *Engine, p srtp.ProtectionProfile, in, out keys, peer netip.AddrPort) *Transport {
	tb.Helper()
	mt, err := e.Open("test", nil)
	if err != nil {
		tb.Fatal(err)
	}
	t := mt.(*Transport)
	t.dec = in.context(tb, p, srtp.SRTPReplayProtection(128), srtp.SRTCPReplayProtection(128))
	t.enc = out.context(tb, p)
	t.checkedAddr.Store(&peer)
	t.io.Store(&e.shards[0].io)
	t.profile.Store(uint32(p))
	t.state.Store(stConnected)
	t.ready.Store(true)
	return t
}

// sinks are loopback UDP sockets drained by one goroutine, standing for
// subscribers (newIdleSinks: sockets nothing reads).
type sinks struct {
	conns []*net.UDPConn
	addrs []netip.AddrPort
	stop  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex
	got   int
}

func newSinks(tb testing.TB, n int) *sinks {
	tb.Helper()
	return openSinks(tb, n, true)
}

// newIdleSinks are sinks without the goroutine that drains them, for a
// load that never sends to them (BenchmarkForwardCongestionUser): it would
// spin on the other core for nothing. received stays 0.
func newIdleSinks(tb testing.TB, n int) *sinks {
	tb.Helper()
	return openSinks(tb, n, false)
}

func openSinks(tb testing.TB, n int, drain bool) *sinks {
	tb.Helper()
	s := &sinks{stop: make(chan struct{})}
	for range n {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			tb.Fatal(err)
		}
		c.SetReadBuffer(4 << 20)
		s.conns = append(s.conns, c)
		ap, _ := netip.ParseAddrPort(c.LocalAddr().String())
		s.addrs = append(s.addrs, ap)
	}
	if drain {
		s.wg.Add(1)
		go s.drain()
	}
	tb.Cleanup(s.close)
	return s
}

// drain empties every sink with non-blocking recvmmsg, round robin. It
// allocates nothing after it starts, so benchmarks' allocs/op count the
// server's allocations only.
func (s *sinks) drain() {
	defer s.wg.Done()
	const batch = 64
	var hdrs [batch]unix.Mmsghdr
	var iovs [batch]unix.Iovec
	mem := make([]byte, batch*2048)
	for i := range batch {
		iovs[i].Base = &mem[i*2048]
		iovs[i].SetLen(2048)
		hdrs[i].Hdr.Iov = &iovs[i]
		hdrs[i].Hdr.Iovlen = 1
	}
	raws := make([]syscall.RawConn, len(s.conns))
	for i, c := range s.conns {
		raws[i], _ = c.SyscallConn()
	}
	var got int
	read := func(fd uintptr) {
		for {
			n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&hdrs[0])), batch, unix.MSG_DONTWAIT, 0, 0)
			if errno != 0 || n == 0 {
				return
			}
			got += int(n)
		}
	}
	for {
		before := got
		for _, rc := range raws {
			_ = rc.Control(read)
		}
		if got != before {
			s.mu.Lock()
			s.got = got
			s.mu.Unlock()
		}
		select {
		case <-s.stop:
			return
		default:
		}
		if got == before {
			syscall.Nanosleep(&syscall.Timespec{Nsec: 200_000}, nil)
		}
	}
}

// queued is how many sinks have a datagram waiting.
func (s *sinks) queued() int {
	q := 0
	for _, c := range s.conns {
		rc, err := c.SyscallConn()
		if err != nil {
			continue
		}
		_ = rc.Control(func(fd uintptr) {
			if n, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ); err == nil && n > 0 {
				q++
			}
		})
	}
	return q
}

func (s *sinks) received() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got
}

func (s *sinks) close() {
	select {
	case <-s.stop:
		return
	default:
	}
	close(s.stop)
	s.wg.Wait()
	for _, c := range s.conns {
		c.Close()
	}
}

// encryptedStream pre-encrypts count packets of one SSRC with payload size.
func encryptedStream(tb testing.TB, enc *srtp.Context, ssrc uint32, pt uint8, size, count int) [][]byte {
	tb.Helper()
	pkts := make([]*rtp.Packet, count)
	payload := make([]byte, size)
	rand.Read(payload)
	for i := range pkts {
		pkts[i] = &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: uint16(i), Timestamp: uint32(i) * 3000, SSRC: ssrc}, Payload: payload}
	}
	return encryptPackets(tb, enc, pkts)
}

// encryptPackets marshals and encrypts pkts.
func encryptPackets(tb testing.TB, enc *srtp.Context, pkts []*rtp.Packet) [][]byte {
	tb.Helper()
	out := make([][]byte, len(pkts))
	for i, pkt := range pkts {
		raw, _ := pkt.Marshal()
		b, err := enc.EncryptRTP(nil, raw, nil)
		if err != nil {
			tb.Fatal(err)
		}
		out[i] = b
	}
	return out
}

// fanout is a publisher transport with n subscriber transports, each
// sending to its own sink.
type fanout struct {
	e     *Engine
	pub   *Transport
	subs  []*Transport
	sinks *sinks
	// pubKeys encrypt what the publisher sends; subKeys decrypt what each
	// subscriber gets.
	pubKeys keys
	pubOut  keys
	subKeys []keys
	subIn   []keys // what each subscriber sends (RTCP)
	prof    srtp.ProtectionProfile
	ssrc    uint32
}

func newFanout(tb testing.TB, p srtp.ProtectionProfile, n int) *fanout {
	tb.Helper()
	return newFanoutOn(tb, p, n, 1)
}

// newFanoutOn is newFanout on an engine of shards shards: the publisher's
// home is shard 0, the subscribers' homes are spread over all of them.
func newFanoutOn(tb testing.TB, p srtp.ProtectionProfile, n, shards int) *fanout {
	tb.Helper()
	f := &fanout{e: testEngineOn(tb, shards), sinks: newSinks(tb, n), prof: p, ssrc: 0x1234}
	f.pubKeys, f.pubOut = newKeys(tb, p), newKeys(tb, p)
	f.pub = readyTransport(tb, f.e, p, f.pubKeys, f.pubOut, netip.MustParseAddrPort("127.0.0.1:9"))
	tr := media.Track{Kind: media.Video, SSRC: f.ssrc, PayloadType: 96, ClockRate: 90000}
	f.pub.Publish([]media.Track{tr})
	for i := range n {
		k, in := newKeys(tb, p), newKeys(tb, p)
		f.subKeys, f.subIn = append(f.subKeys, k), append(f.subIn, in)
		sub := readyTransport(tb, f.e, p, in, k, f.sinks.addrs[i])
		sub.Subscribe(f.pub, []media.Track{tr})
		f.subs = append(f.subs, sub)
	}
	return f
}

// pubAddr registers the publisher's address on shard s, as a passed ICE
// check would, and returns it.
func (f *fanout) pubAddr(s *shard) netip.AddrPort {
	a := netip.MustParseAddrPort("127.0.0.1:9")
	s.peers[a] = f.pub
	return a
}
