package rtpcore

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/hayate-sfu/hayate/internal/cert"
	"github.com/hayate-sfu/hayate/internal/poll"
)

// backend is one PacketIO implementation under test.
type backend struct {
	name string
	// listen binds n sockets to addr; they are closed when the test ends.
	listen func(tb testing.TB, addr netip.AddrPort, n int) []PacketIO
}

// backends are the socket backends the table-driven tests run on.
var backends = []backend{
	{"epoll", func(tb testing.TB, addr netip.AddrPort, n int) []PacketIO {
		tb.Helper()
		socks, err := listenMedia(addr, n)
		if err != nil {
			tb.Fatal(err)
		}
		out := make([]PacketIO, len(socks))
		for i, s := range socks {
			out[i] = s
		}
		return closeAtEnd(tb, out)
	}},
	{"uring", func(tb testing.TB, addr netip.AddrPort, n int) []PacketIO {
		tb.Helper()
		requireUring(tb)
		socks, err := listenMediaUring(addr, n)
		if err != nil {
			tb.Fatal(err)
		}
		return closeAtEnd(tb, socks)
	}},
}

// requireUring fails (never skips) a test of the io_uring backend on a
// machine where io_uring cannot be used.
func requireUring(tb testing.TB) {
	tb.Helper()
	if err := UringAvailable(); err != nil {
		tb.Fatalf("the io_uring backend cannot run on this machine: %v", err)
	}
}

func closeAtEnd(tb testing.TB, socks []PacketIO) []PacketIO {
	tb.Cleanup(func() {
		for _, s := range socks {
			s.Close()
		}
	})
	return socks
}

// layout is the send layout of either backend.
func layout(p PacketIO) *sendMsgs {
	return p.(interface{ sendLayout() *sendMsgs }).sendLayout()
}

// sockFD runs f on the socket descriptor of either backend.
func sockFD(t *testing.T, p PacketIO, f func(fd int)) {
	t.Helper()
	switch s := p.(type) {
	case *mmsgIO:
		if err := s.raw.Control(func(fd uintptr) { f(int(fd)) }); err != nil {
			t.Fatal(err)
		}
	case *uringIO:
		f(int(s.fd))
	default:
		t.Fatalf("unknown backend %T", p)
	}
}

var loopback = netip.MustParseAddrPort("127.0.0.1:0")

func udpSink(t testing.TB) (*net.UDPConn, netip.AddrPort) {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	a, _ := netip.ParseAddrPort(c.LocalAddr().String())
	return c, a
}

// readAll reads n datagrams from c, then checks that no more come.
func readAll(t *testing.T, c *net.UDPConn, n int) [][]byte {
	t.Helper()
	var out [][]byte
	for len(out) < n {
		buf := make([]byte, 2048)
		c.SetReadDeadline(time.Now().Add(poll.Patience))
		k, _, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("datagram %d of %d: %v", len(out), n, err)
		}
		out = append(out, buf[:k])
	}
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if k, _, err := c.ReadFromUDPAddrPort(make([]byte, 2048)); err == nil {
		t.Fatalf("a datagram more than the %d expected (%d bytes)", n, k)
	}
	return out
}

// TestSendGSOFallback: when the kernel refuses GSO (EINVAL here: a socket
// with SO_NO_CHECK), the backend turns GSO off and every datagram arrives
// once, in order per destination, none counted as an error.
func TestSendGSOFallback(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			s := be.listen(t, loopback, 1)[0]
			sockFD(t, s, func(fd int) {
				if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_NO_CHECK, 1); err != nil {
					t.Fatal(err)
				}
			})
			c0, a0 := udpSink(t)
			c1, a1 := udpSink(t)
			b := NewSendBatch()
			add := func(to netip.AddrPort, size int, tag byte) {
				b.Commit(append(b.Slot(), bytes.Repeat([]byte{tag}, size)...), to)
			}
			// A plain message first: the epoll backend used to send it
			// twice when the GSO message after it failed.
			add(a1, 500, 1)
			add(a0, 1000, 2)
			add(a0, 1000, 3)
			add(a0, 1000, 4)
			add(a1, 600, 5)
			add(a1, 600, 6)
			if err := s.Send(b); err != nil {
				t.Fatal(err)
			}
			if layout(s).gso {
				t.Fatal("GSO still on after the kernel refused it")
			}
			if b.Datagrams != 6 || b.Errors != 0 {
				t.Fatalf("datagrams %d errors %d, want 6 and 0", b.Datagrams, b.Errors)
			}
			for i, want := range [][]byte{{2, 3, 4}, {1, 5, 6}} {
				got := readAll(t, []*net.UDPConn{c0, c1}[i], 3)
				for k := range got {
					if got[k][0] != want[k] {
						t.Fatalf("destination %d datagram %d: tag %d, want %d", i, k, got[k][0], want[k])
					}
				}
			}
		})
	}
}

// TestCloseWakesRecv: Close wakes a Recv blocked on a far deadline, which
// returns ErrClosed; later calls return ErrClosed too.
func TestCloseWakesRecv(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			s := be.listen(t, loopback, 1)[0]
			rb := NewRecvBatch()
			started := make(chan struct{})
			res := make(chan error, 1)
			go func() {
				close(started)
				_, err := s.Recv(rb, time.Now().Add(time.Hour))
				res <- err
			}()
			<-started
			// Most likely blocked by now; if not, Recv starts on a closed
			// socket, which must return ErrClosed just the same.
			time.Sleep(50 * time.Millisecond)
			s.Close()
			select {
			case err := <-res:
				if !errors.Is(err, ErrClosed) {
					t.Fatalf("Recv after Close: %v, want ErrClosed", err)
				}
			case <-time.After(poll.Patience):
				t.Fatal("Close did not wake Recv (its deadline is an hour away)")
			}
			if _, err := s.Recv(rb, time.Now().Add(10*time.Millisecond)); !errors.Is(err, ErrClosed) {
				t.Fatalf("Recv on a closed socket: %v", err)
			}
			sb := NewSendBatch()
			sb.Commit(append(sb.Slot(), 1), netip.MustParseAddrPort("127.0.0.1:9"))
			if err := s.Send(sb); err == nil {
				t.Fatal("Send on a closed socket succeeded")
			}
			if err := s.WriteTo([]byte{1}, netip.MustParseAddrPort("127.0.0.1:9")); err == nil {
				t.Fatal("WriteTo on a closed socket succeeded")
			}
		})
	}
}

// TestRecvTimeout: with nothing to receive, Recv returns ErrTimeout at the
// deadline, and a deadline in the past still returns what is there.
func TestRecvTimeout(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			s := be.listen(t, loopback, 1)[0]
			rb := NewRecvBatch()
			start := time.Now()
			n, err := s.Recv(rb, start.Add(30*time.Millisecond))
			if n != 0 || err != ErrTimeout {
				t.Fatalf("Recv: %d, %v; want ErrTimeout", n, err)
			}
			if d := time.Since(start); d < 25*time.Millisecond {
				t.Fatalf("timed out after %v, before the 30 ms deadline", d)
			}
		})
	}
}

// TestBackendZeroAllocs: a Send and the Recv calls that take its datagrams
// allocate nothing in steady state.
func TestBackendZeroAllocs(t *testing.T) {
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			s := be.listen(t, loopback, 1)[0]
			c := be.listen(t, loopback, 1)[0]
			sb, rb := NewSendBatch(), NewRecvBatch()
			to := s.LocalAddr()
			step := func() {
				for i := range 8 {
					sb.Commit(append(sb.Slot(), byte(i), 1, 2, 3, 4, 5, 6, 7), to)
				}
				if err := c.Send(sb); err != nil {
					t.Fatal(err)
				}
				for got := 0; got < 8; {
					n, err := s.Recv(rb, time.Now().Add(poll.Patience))
					if err != nil {
						t.Fatal(err)
					}
					got += n
				}
			}
			for range 10 {
				step()
			}
			if a := testing.AllocsPerRun(200, step); a != 0 {
				t.Fatalf("%v allocations per send and receive", a)
			}
		})
	}
}

// TestUringRecvOrder: a stream of datagrams of varying size arrives whole
// and in order over many Recv calls, each Bufs[i] the i-th datagram's own
// buffer, distinct from the other slices of the batch.
func TestUringRecvOrder(t *testing.T) {
	requireUring(t)
	s := backends[1].listen(t, loopback, 1)[0]
	c := backends[0].listen(t, loopback, 1)[0]
	sb, rb := NewSendBatch(), NewRecvBatch()
	const total = 2000
	next, sent := 0, 0
	deadline := time.Now().Add(poll.Patience)
	payload := func(seq int) []byte {
		p := make([]byte, 4+seq%300)
		p[0], p[1] = byte(seq>>8), byte(seq)
		for i := 2; i < len(p); i++ {
			p[i] = byte(seq + i)
		}
		return p
	}
	calls := 0
	for next < total {
		if time.Now().After(deadline) {
			t.Fatalf("received %d of %d", next, total)
		}
		// Bursts small enough for the socket buffer: nothing is dropped.
		for sent < total && sent-next < 200 {
			sb.Commit(append(sb.Slot(), payload(sent)...), s.LocalAddr())
			sent++
		}
		if err := c.Send(sb); err != nil {
			t.Fatal(err)
		}
		n, err := s.Recv(rb, time.Now().Add(poll.Patience))
		if err != nil {
			t.Fatal(err)
		}
		calls++
		seen := map[*byte]bool{}
		for i := range recvBatch {
			p := unsafe.SliceData(rb.Bufs[i])
			if seen[p] || len(rb.Bufs[i]) != bufSize {
				t.Fatalf("call %d: Bufs[%d] repeats a buffer or has length %d", calls, i, len(rb.Bufs[i]))
			}
			seen[p] = true
		}
		for i := range n {
			if want := payload(next); !bytes.Equal(rb.Bufs[i][:rb.Lens[i]], want) {
				t.Fatalf("call %d datagram %d: got % x..., want sequence %d", calls, i, rb.Bufs[i][:min(8, rb.Lens[i])], next)
			}
			if rb.Addrs[i] != c.LocalAddr() {
				t.Fatalf("source %v, want %v", rb.Addrs[i], c.LocalAddr())
			}
			next++
		}
	}
	t.Logf("%d datagrams in %d calls", total, calls)
}

// TestUringRebind: Recv with another batch, or with the batch's slices
// changed, moves the armed receives over without losing a datagram; a batch
// armed by another open socket is refused until that socket closes.
func TestUringRebind(t *testing.T) {
	requireUring(t)
	s1 := backends[1].listen(t, loopback, 1)[0]
	s2 := backends[1].listen(t, loopback, 1)[0]
	c, caddr := udpSink(t)
	seq := 0
	send := func(n int) {
		for range n {
			c.WriteToUDPAddrPort([]byte{byte(seq), byte(seq), byte(seq)}, s1.LocalAddr())
			seq++
		}
	}
	got := 0
	recv := func(rb *RecvBatch, n int) {
		t.Helper()
		for want := got + n; got < want; {
			k, err := s1.Recv(rb, time.Now().Add(poll.Patience))
			if err != nil {
				t.Fatalf("at %d: %v", got, err)
			}
			for i := range k {
				if rb.Lens[i] != 3 || rb.Bufs[i][0] != byte(got) || rb.Bufs[i][2] != byte(got) {
					t.Fatalf("datagram %d: % x", got, rb.Bufs[i][:rb.Lens[i]])
				}
				got++
			}
		}
	}
	a, b := NewRecvBatch(), NewRecvBatch()
	send(3)
	recv(a, 3)
	send(3)
	recv(b, 3)
	if a.armedBy.Load() != nil || b.armedBy.Load() == nil {
		t.Fatal("the old batch still held, or the new one not")
	}
	// Datagrams complete into b's buffers, then a Send (which reaps the
	// completions) and a Recv with a: they are copied into a.
	send(5)
	time.Sleep(20 * time.Millisecond)
	sb := NewSendBatch()
	sb.Commit(append(sb.Slot(), 0xff), caddr)
	if err := s1.Send(sb); err != nil {
		t.Fatal(err)
	}
	recv(a, 5)
	// The same batch with two armed buffers swapped.
	a.Bufs[recvBatch-1], a.Bufs[recvBatch-2] = a.Bufs[recvBatch-2], a.Bufs[recvBatch-1]
	send(4)
	time.Sleep(20 * time.Millisecond)
	recv(a, 4)
	// a is s1's: s2 refuses it until s1 closes.
	if _, err := s2.Recv(a, time.Now().Add(10*time.Millisecond)); !errors.Is(err, errBatchInUse) {
		t.Fatalf("a batch of another socket: %v", err)
	}
	s1.Close()
	if _, err := s2.Recv(a, time.Now().Add(10*time.Millisecond)); err != ErrTimeout {
		t.Fatalf("a batch released by Close: %v", err)
	}
}

// TestUringABI: the Go structs match the kernel's layout.
func TestUringABI(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want uintptr
	}{
		{"io_uring_sqe", unsafe.Sizeof(uringSQE{}), 64},
		{"io_uring_sqe.user_data", unsafe.Offsetof(uringSQE{}.userData), 32},
		{"io_uring_sqe.addr3", unsafe.Offsetof(uringSQE{}.addr3), 48},
		{"io_uring_cqe", unsafe.Sizeof(uringCQE{}), 16},
		{"io_uring_params", unsafe.Sizeof(uringParams{}), 120},
		{"io_uring_params.sq_off", unsafe.Offsetof(uringParams{}.sqOff), 40},
		{"io_uring_getevents_arg", unsafe.Sizeof(uringGeteventsArg{}), 24},
	} {
		if c.got != c.want {
			t.Errorf("%s: %d, want %d", c.name, c.got, c.want)
		}
	}
}

// TestUringEngine: an engine's receive loops run on the io_uring backend
// and stop promptly on Close.
func TestUringEngine(t *testing.T) {
	requireUring(t)
	crt, err := cert.Generate()
	if err != nil {
		t.Fatal(err)
	}
	ios, err := ListenMediaUring(loopback, 2)
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewWithIO(Config{Addr: loopback, Sockets: 2, Certificate: crt.TLS, Fingerprint: crt.Fingerprint,
		FailedTimeout: time.Minute, ReportInterval: time.Second,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, ios)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := udpSink(t)
	for range 10 {
		c.WriteToUDPAddrPort([]byte{0xff, 1, 2, 3}, ios[0].LocalAddr()) // malformed: counted, dropped
	}
	poll.Soon(t, "the engine to receive 10 datagrams", func() bool { return e.Stats().PacketsIn >= 10 })
	if n := e.Stats().PacketsIn; n != 10 {
		t.Fatalf("engine received %d of 10", n)
	}
	e.Close() // returns once both receive loops have stopped
}

// BenchmarkBackend compares the backends on loopback, in one run:
//
//   - send: batches of 64 datagrams of 1200 bytes, one to each of 64
//     sinks (which are not read: once full, the kernel drops for them).
//   - recv: a stream of 1200-byte datagrams that another goroutine sends
//     as fast as it can, received in batches; one op is one datagram.
//   - echo: one datagram in, one out (a client sends, the backend receives
//     it and sends it back): the per-datagram cost when traffic is light.
func BenchmarkBackend(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			b.Run("send", func(b *testing.B) { benchSend(b, be) })
			b.Run("recv", func(b *testing.B) { benchRecv(b, be) })
			b.Run("echo", func(b *testing.B) { benchEcho(b, be) })
		})
	}
}

func benchSend(b *testing.B, be backend) {
	s := be.listen(b, loopback, 1)[0]
	var sinks [64]netip.AddrPort
	for i := range sinks {
		_, sinks[i] = udpSink(b)
	}
	sb := NewSendBatch()
	payload := bytes.Repeat([]byte{0x80}, 1200)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		for _, to := range sinks {
			sb.Commit(append(sb.Slot(), payload...), to)
		}
		if err := s.Send(sb); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if sb.Errors != 0 {
		b.Fatalf("%d send errors", sb.Errors)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(sinks)), "ns/packet")
	b.ReportMetric(float64(sb.Sent)/float64(b.N), "syscalls/op")
}

func benchRecv(b *testing.B, be backend) {
	s := be.listen(b, loopback, 1)[0]
	src := backends[0].listen(b, loopback, 1)[0]
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		sb := NewSendBatch()
		payload := bytes.Repeat([]byte{0x80}, 1200)
		limit := time.Now().Add(time.Minute)
		for !stop.Load() && time.Now().Before(limit) {
			for range recvBatch {
				sb.Commit(append(sb.Slot(), payload...), s.LocalAddr())
			}
			if src.Send(sb) != nil {
				return
			}
		}
	}()
	defer func() {
		stop.Store(true)
		wg.Wait()
	}()
	rb := NewRecvBatch()
	// The receiving goroutine keeps its thread, whose CPU time (user and
	// kernel, io_uring's task work included: it runs on the submitting
	// thread) is the receive cost apart from the sender's.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// Wait for the stream.
	if _, err := s.Recv(rb, time.Now().Add(5*time.Second)); err != nil {
		b.Fatal(err)
	}
	cpu0 := threadCPU(b)
	b.ReportAllocs()
	b.ResetTimer()
	got, calls := 0, 0
	for got < b.N {
		n, err := s.Recv(rb, time.Now().Add(5*time.Second))
		if err != nil {
			b.Fatal(err)
		}
		got += n
		calls++
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(got), "ns/packet")
	b.ReportMetric(float64(threadCPU(b)-cpu0)/float64(got), "cpu-ns/packet")
	b.ReportMetric(float64(got)/float64(calls), "packets/call")
}

// threadCPU is the CPU time of the calling thread, in nanoseconds.
func threadCPU(b *testing.B) int64 {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_THREAD, &ru); err != nil {
		b.Fatal(err)
	}
	return unix.TimevalToNsec(ru.Utime) + unix.TimevalToNsec(ru.Stime)
}

func benchEcho(b *testing.B, be backend) {
	s := be.listen(b, loopback, 1)[0]
	c := backends[0].listen(b, loopback, 1)[0]
	csb, ssb := NewSendBatch(), NewSendBatch()
	crb, srb := NewRecvBatch(), NewRecvBatch()
	payload := bytes.Repeat([]byte{0x80}, 1200)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		csb.Commit(append(csb.Slot(), payload...), s.LocalAddr())
		if err := c.Send(csb); err != nil {
			b.Fatal(err)
		}
		n, err := s.Recv(srb, time.Now().Add(time.Second))
		if err != nil || n != 1 {
			b.Fatalf("server receive: %d, %v", n, err)
		}
		ssb.Commit(append(ssb.Slot(), srb.Bufs[0][:srb.Lens[0]]...), srb.Addrs[0])
		if err := s.Send(ssb); err != nil {
			b.Fatal(err)
		}
		if n, err := c.Recv(crb, time.Now().Add(time.Second)); err != nil || n != 1 {
			b.Fatalf("client receive: %d, %v", n, err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/packet")
}
