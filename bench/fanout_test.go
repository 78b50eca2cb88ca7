//go:build linux

package bench

import (
	"bytes"
	"cmp"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Binaries built once for the whole run.
var hayateBin, baselineBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hayate-bench")
	if err != nil {
		panic(err)
	}
	if hayateBin, err = Build(dir, "./cmd/hayate", "hayate"); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if _, err := os.Stat("baseline"); err == nil {
		if baselineBin, err = Build(dir, "./bench/baseline", "baseline"); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	// The server gets CPU 0 and the load generator the others.
	if runtime.NumCPU() >= 2 {
		if err := PinSelf(cpuRange(1, runtime.NumCPU()-1)...); err != nil {
			fmt.Fprintln(os.Stderr, "pin:", err)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func cpuRange(from, to int) []int {
	var c []int
	for i := from; i <= to; i++ {
		c = append(c, i)
	}
	return c
}

// Settings from the environment, so one command can size a run.
func envInts(name string, def []int) []int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err == nil {
			out = append(out, n)
		}
	}
	return out
}

func envDuration(name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv(name)); err == nil {
		return d
	}
	return def
}

// serverLimits is one core for the server: taskset CPU 0 and GOMAXPROCS=1.
var serverLimits = Limits{CPUs: "0", GOMAXPROCS: 1}

func startServer(b *testing.B, kind string, extra ...string) *Server {
	b.Helper()
	return startServerOn(b, kind, serverLimits, extra...)
}

// startServerOn is startServer under lim (extra flags after the defaults
// override them).
func startServerOn(b *testing.B, kind string, lim Limits, extra ...string) *Server {
	b.Helper()
	var s *Server
	var err error
	switch kind {
	case "hayate":
		// The fanout compares with the floor, which sends with the epoll
		// backend's sendmmsg: Hayate runs on the same backend unless
		// HAYATE_BENCH_BACKEND says otherwise (BenchmarkFanoutBackend
		// compares the backends).
		backend := os.Getenv("HAYATE_BENCH_BACKEND")
		if backend == "" {
			backend = "epoll"
		}
		args := append([]string{"--signaling_port=0", "--api_port=0", "--media_port=0", "--media_sockets=1", "--log_level=warn",
			"--turn_udp_listen_port=0", "--turn_tcp_listen_port=0",
			"--media_backend=" + backend}, extra...)
		s, err = Start("hayate", hayateBin, lim, args...)
	case "baseline":
		s, err = Start("baseline", baselineBin, lim, "--signaling_port=0")
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := s.Stop(30 * time.Second); err != nil {
			b.Logf("%s: %v", kind, err)
		}
	})
	return s
}

// fanoutRun is one server under the fanout load.
type fanoutRun struct {
	srv  *Server
	pub  *Publisher
	subs []*Subscriber
	join []time.Duration
	tap  *Tap     // receives the subscribers' media, if they do not read it themselves
	cnt  *Counter // or counts it in the kernel
}

func startFanout(b *testing.B, kind string, n int, extra ...string) *fanoutRun {
	b.Helper()
	return startFanoutOn(b, kind, n, serverLimits, extra...)
}

// startFanoutOn is startFanout with the server under lim.
func startFanoutOn(b *testing.B, kind string, n int, lim Limits, extra ...string) *fanoutRun {
	b.Helper()
	return startFanoutSink(b, kind, n, lim, sinkSockets, extra...)
}

// Where a fanout run's subscribers' media goes (HAYATE_BENCH_SINK).
const (
	sinkSockets = "sockets" // every subscriber reads its own socket
	sinkTap     = "tap"     // one Tap receives all of it; the sockets drop it
	sinkCount   = "count"   // a Counter counts it in the kernel and drops it
)

// startFanoutSink is startFanoutOn with the subscribers' media going to sink.
func startFanoutSink(b *testing.B, kind string, n int, lim Limits, sink string, extra ...string) *fanoutRun {
	b.Helper()
	r := &fanoutRun{srv: startServerOn(b, kind, lim, extra...)}
	var err error
	if r.pub, err = StartPublisher(r.srv.Signaling, "fanout"); err != nil {
		b.Fatalf("%s: %v\n%s", kind, err, r.srv.Log())
	}
	b.Cleanup(r.pub.Stop)
	// Let the stream run before anyone joins: the pion baseline gives a
	// subscriber only the tracks that exist when it joins.
	time.Sleep(time.Second)
	// With a sink the run is a capacity measurement: the subscribers join
	// with the publisher paused, since near the limit a saturated core
	// would time out the joiners' DTLS handshakes (4408), which is a
	// question of admission, not of forwarding capacity (BenchmarkJoin).
	if sink != sinkSockets {
		r.pub.Pause()
	}
	switch sink {
	case sinkTap:
		if r.tap, err = NewTap(r.pub.Peer.Server.Port(), TapRing); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(r.tap.Close)
		r.subs, r.join, err = JoinSubscribersSink(r.srv.Signaling, "fanout", n, 16, r.pub.video, r.pub.audio, r.tap)
	case sinkCount:
		if r.cnt, err = NewCounter(n); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(r.cnt.Close)
		r.subs, r.join, err = JoinSubscribersSink(r.srv.Signaling, "fanout", n, 16, r.pub.video, r.pub.audio, r.cnt)
	case sinkSockets:
		r.subs, r.join, err = JoinSubscribers(r.srv.Signaling, "fanout", n, 16, r.pub.video, r.pub.audio)
	default:
		b.Fatalf("HAYATE_BENCH_SINK=%q: want %s, %s or %s", sink, sinkTap, sinkCount, sinkSockets)
	}
	if err != nil {
		b.Fatalf("%s: joining %d subscribers: %v\n%s", kind, n, err, r.srv.Log())
	}
	b.Cleanup(r.closeSubs)
	r.pub.Resume()
	r.settle()
	return r
}

// settle waits until every subscriber receives, then one more second.
func (r *fanoutRun) settle() {
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range r.subs {
		for s.Packets() == 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	time.Sleep(time.Second)
}

// closeSubs disconnects the subscribers (once).
func (r *fanoutRun) closeSubs() {
	for _, s := range r.subs {
		s.Close()
	}
	r.subs = nil
}

// stop ends the run before the next one starts on the server's core.
func (r *fanoutRun) stop() {
	r.pub.Stop()
	r.closeSubs()
	r.srv.Stop(30 * time.Second)
}

// idleAllocsPerSecond pauses the publisher and measures the server's
// allocation rate with every connection up and no media: keepalive only.
func (r *fanoutRun) idleAllocsPerSecond(b *testing.B, d time.Duration) float64 {
	r.pub.Pause()
	defer func() {
		r.pub.Resume()
		time.Sleep(time.Second) // a key frame and steady media again
	}()
	time.Sleep(500 * time.Millisecond)
	m0, err := r.srv.Mallocs()
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Now()
	time.Sleep(d)
	m1, _ := r.srv.Mallocs()
	return (m1 - m0) / time.Since(t0).Seconds()
}

// measure runs b.N windows and merges them.
func (r *fanoutRun) measure(b *testing.B, window time.Duration) Window {
	var total Window
	for range b.N {
		w, err := Measure(r.srv, r.pub, r.subs, window)
		if err != nil {
			b.Fatal(err)
		}
		total.merge(w)
	}
	return total
}

// BenchmarkFanout: one publisher (1.5 Mbit/s video at 30 fps plus 32 kbit/s
// Opus) and N recvonly subscribers, the server on one core (taskset CPU 0,
// GOMAXPROCS=1), the load generator on the other. In the same run: Hayate,
// the floor (only encrypting and sendmmsg-ing the same packets to the same
// sockets) and the pion baseline (bench/baseline). Each iteration is one
// measurement window (HAYATE_BENCH_WINDOW, default 5s); run with
// -benchtime=1x or more.
//
//	go test -run '^$' -bench Fanout -benchtime 1x ./bench/
//	HAYATE_BENCH_SUBS=1000 HAYATE_BENCH_BASELINE_MAX=0 go test ...   (Hayate alone)
func BenchmarkFanout(b *testing.B) {
	window := envDuration("HAYATE_BENCH_WINDOW", 5*time.Second)
	baselineMax := 500
	if v := envInts("HAYATE_BENCH_BASELINE_MAX", nil); len(v) == 1 {
		baselineMax = v[0]
	}
	for _, n := range envInts("HAYATE_BENCH_SUBS", []int{10, 100, 500, 1000}) {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			h := startFanout(b, "hayate", n)
			idleAllocs := h.idleAllocsPerSecond(b, 3*time.Second)
			hw := h.measure(b, window)
			h.pub.Stop() // the server's core is idle for the floor
			floor, err := floorOnServerCore(h.subs, window, false)
			if err != nil {
				b.Fatal(err)
			}
			floorFrame, err := floorOnServerCore(h.subs, window, true)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(hw.NsPerForward(), "hayate-ns/fwd")
			b.ReportMetric(hw.Mallocs/float64(hw.Expected), "hayate-allocs/fwd")
			// Allocations the media add over the same connections idle:
			// what forwarding itself allocates per packet.
			liveAllocs := hw.Mallocs / hw.Duration.Seconds()
			b.ReportMetric((liveAllocs-idleAllocs)*hw.Duration.Seconds()/float64(hw.Expected), "hayate-media-allocs/fwd")
			b.ReportMetric(hw.LossPercent, "hayate-loss-%")
			b.ReportMetric(float64(hw.P99().Microseconds())/1000, "hayate-p99-ms")
			b.ReportMetric(float64(hw.Expected)/hw.Duration.Seconds(), "fwd/s")
			b.ReportMetric(floor, "floor-ns/fwd")
			b.ReportMetric(hw.NsPerForward()/floor, "hayate/floor")
			b.ReportMetric(floorFrame, "floor-frame-ns/fwd")
			b.ReportMetric(hw.NsPerForward()/floorFrame, "hayate/floor-frame")
			c := hw.Counters
			b.Logf("hayate batches: %.1f packets per receive call, %.1f datagrams per send call, %.2f datagrams per message (GSO)",
				c["packets_in"]/c["recv_calls"], c["packets_out"]/c["send_calls"], c["packets_out"]/c["send_messages"])
			b.Logf("hayate: %d packets from the publisher, %d forwards expected, %d received, CPU %v, p99 %v, join p50 %v",
				hw.PubPackets, hw.Expected, hw.Received, hw.ServerCPU, hw.P99(), percentile(h.join, 50))
			if n > baselineMax {
				return
			}
			base := startFanout(b, "baseline", n)
			bw := base.measure(b, window)
			b.ReportMetric(bw.NsPerForward(), "baseline-ns/fwd")
			b.ReportMetric(bw.LossPercent, "baseline-loss-%")
			b.ReportMetric(float64(bw.P99().Microseconds())/1000, "baseline-p99-ms")
			b.ReportMetric(bw.NsPerForward()/hw.NsPerForward(), "baseline/hayate")
		})
	}
}

// BenchmarkFanoutBackend compares the socket backends under the fanout
// load in the same run: Hayate with media_backend epoll, then io_uring, at
// HAYATE_BENCH_BACKEND_SUBS subscribers (default 500), one core.
//
//	go test -run '^$' -bench FanoutBackend -benchtime 1x ./bench/
func BenchmarkFanoutBackend(b *testing.B) {
	window := envDuration("HAYATE_BENCH_WINDOW", 5*time.Second)
	n := 500
	if v := envInts("HAYATE_BENCH_BACKEND_SUBS", nil); len(v) == 1 {
		n = v[0]
	}
	b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
		ns := map[string]float64{}
		for _, backend := range []string{"epoll", "io_uring"} {
			r := startFanout(b, "hayate", n, "--media_backend="+backend)
			w := r.measure(b, window)
			ns[backend] = w.NsPerForward()
			b.ReportMetric(w.NsPerForward(), backend+"-ns/fwd")
			b.ReportMetric(w.LossPercent, backend+"-loss-%")
			r.stop()
		}
		b.ReportMetric(ns["io_uring"]/ns["epoll"], "io_uring/epoll")
	})
}

// BenchmarkFanoutCores: BenchmarkFanout's load (one publisher, N
// subscribers) with Hayate on one core (taskset CPU 0, GOMAXPROCS=1,
// media_sockets=1) and then on two (taskset CPUs 0-1, GOMAXPROCS=2,
// media_sockets=2), in the same run. The load generator is not pinned: it
// runs on CPU 1 beside a 1-core server and shares the two CPUs with a
// 2-core one, so the benchmark reports the
// load generator's CPU in the window (loadgen-cores) and the share of the
// two cores the server itself used (server-cores), besides loss, CPU per
// forwarded packet and allocations per forwarded packet. On a machine
// shared with other work, HAYATE_BENCH_NICE (e.g. -10) runs the server and
// the load generator at that niceness, so that what is measured is the
// server rather than its share of a crowded scheduler; HAYATE_BENCH_CORES
// (default 1,2) chooses the configurations.
//
// The subscribers' media is counted in the kernel by a Counter (an eBPF
// socket filter on each subscriber socket counts the window's sequence
// numbers and drops the datagram), so the load generator spends nothing on
// it and the 2-core server can have nearly all of both cores; there is no
// p99 then. HAYATE_BENCH_SINK=tap receives it with a Tap instead (one
// packet socket with a ring for all of them; tap-drops counts what the ring
// missed, as loss; p99 reported), and HAYATE_BENCH_SINK=sockets makes every
// subscriber read its own socket, as the other fanout benchmarks do (about
// as much CPU per packet as the server's). With a Counter or a Tap the
// subscribers join while the publisher is paused (see startFanoutSink).
// HAYATE_BENCH_PERF=dir records the server's CPU profile in the window.
//
//	HAYATE_BENCH_SUBS=1000,1500,2000 go test -run '^$' -bench FanoutCores -benchtime 1x ./bench/
func BenchmarkFanoutCores(b *testing.B) {
	window := envDuration("HAYATE_BENCH_WINDOW", 5*time.Second)
	nice := 0
	if v := envInts("HAYATE_BENCH_NICE", nil); len(v) == 1 {
		nice = v[0]
		if err := NiceSelf(nice); err != nil {
			b.Fatal(err)
		}
	}
	sink := cmp.Or(os.Getenv("HAYATE_BENCH_SINK"), sinkCount)
	for _, n := range envInts("HAYATE_BENCH_SUBS", []int{500, 1000, 1500, 2000}) {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			ns := map[int]float64{}
			for _, cores := range envInts("HAYATE_BENCH_CORES", []int{1, 2}) {
				lim := Limits{CPUs: "0", GOMAXPROCS: 1, Nice: nice}
				if cores == 2 {
					lim = Limits{CPUs: "0,1", GOMAXPROCS: 2, Nice: nice}
				}
				r := startFanoutSink(b, "hayate", n, lim, sink, fmt.Sprintf("--media_sockets=%d", cores))
				idleAllocs := r.idleAllocsPerSecond(b, 3*time.Second)
				var drops0 uint64
				if r.tap != nil {
					var err error
					if drops0, err = r.tap.Drops(); err != nil {
						b.Fatal(err)
					}
				}
				prof := profileServer(b, r.srv, fmt.Sprintf("subs=%d-%dcore", n, cores), window)
				lg0 := processCPU()
				w := r.measure(b, window)
				lg := processCPU() - lg0
				prof()
				rss, _ := r.srv.RSS()
				name := fmt.Sprintf("%dcore-", cores)
				ns[cores] = w.NsPerForward()
				b.ReportMetric(w.NsPerForward(), name+"ns/fwd")
				b.ReportMetric(w.LossPercent, name+"loss-%")
				b.ReportMetric(w.Mallocs/float64(max(w.Received, 1)), name+"allocs/fwd")
				// What the media add over the same connections idle.
				b.ReportMetric((w.Mallocs-idleAllocs*w.Duration.Seconds())/float64(max(w.Received, 1)), name+"media-allocs/fwd")
				if sink != sinkCount {
					b.ReportMetric(float64(w.P99().Microseconds())/1000, name+"p99-ms")
				}
				b.ReportMetric(w.ServerCPU.Seconds()/w.Duration.Seconds(), name+"server-cores")
				b.ReportMetric(lg.Seconds()/w.Duration.Seconds(), name+"loadgen-cores")
				b.ReportMetric(float64(rss)/(1<<20), name+"rss-MiB")
				if r.tap != nil {
					drops, err := r.tap.Drops()
					if err != nil {
						b.Fatal(err)
					}
					// What the ring missed in the window (counted as loss).
					b.ReportMetric(float64(drops-drops0), name+"tap-drops")
				}
				c := w.Counters
				busiest := w.ThreadRun[:min(len(w.ThreadRun), 4)]
				busy := make([]string, len(busiest))
				for i, t := range busiest {
					busy[i] = fmt.Sprintf("%.2f", t.Seconds()/w.Duration.Seconds())
				}
				b.Logf("%d core(s): busiest threads %s cores, run-queue wait %.2f cores",
					cores, strings.Join(busy, " "), w.RunQueueWait.Seconds()/w.Duration.Seconds())
				b.Logf("%d core(s): %d forwards expected, %d received, server CPU %v, %.0f handed off, %.0f handoff drops, %.0f receive buffer drops, %.1f datagrams per send call",
					cores, w.Expected, w.Received, w.ServerCPU, c["handed_off"], c["handoff_full"], c["receive_buffer_full"], c["packets_out"]/max(c["send_calls"], 1))
				r.close()
			}
			if ns[1] > 0 && ns[2] > 0 {
				b.ReportMetric(ns[2]/ns[1], "2core/1core-ns")
			}
		})
	}
}

// profileServer, when HAYATE_BENCH_PERF names a directory, records the
// CPU profile of the server and of the load generator (perf, kernel and
// user stacks, 499 Hz; `perf report --sort comm,...` separates them) for
// the window into dir/name.data, to see where their time goes; the returned
// function waits for the recording. perf costs the server a little, so
// runs with it are for profiles, not for the figures.
func profileServer(b *testing.B, srv *Server, name string, window time.Duration) func() {
	dir := os.Getenv("HAYATE_BENCH_PERF")
	if dir == "" {
		return func() {}
	}
	out := filepath.Join(dir, name+".data")
	// The server, and the load generator (this process) beside it.
	pids := strconv.Itoa(srv.PID()) + "," + strconv.Itoa(os.Getpid())
	cmd := exec.Command("perf", "record", "-q", "-F", "499", "-g", "-p", pids,
		"-o", out, "--", "sleep", strconv.FormatFloat(window.Seconds(), 'f', 3, 64))
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		b.Fatalf("perf: %v", err)
	}
	return func() {
		if err := cmd.Wait(); err != nil {
			b.Fatalf("perf: %v\n%s", err, log.String())
		}
		b.Logf("server profile: %s", out)
	}
}

// close stops the run's publisher, subscribers, tap and server.
func (r *fanoutRun) close() {
	r.pub.Stop()
	for _, s := range r.subs {
		s.Close()
	}
	r.subs = nil
	if r.tap != nil {
		r.tap.Close()
	}
	if r.cnt != nil {
		r.cnt.Close()
	}
	r.srv.Stop(30 * time.Second)
}

// floorOnServerCore runs Floor on a goroutine of its own (its locked,
// pinned thread is discarded with it) on the server's CPU.
func floorOnServerCore(subs []*Subscriber, d time.Duration, perFrame bool) (float64, error) {
	type res struct {
		ns  float64
		err error
	}
	out := make(chan res, 1)
	go func() {
		ns, _, err := Floor(subs, d, 0, perFrame)
		out <- res{ns, err}
	}()
	r := <-out
	return r.ns, r.err
}

func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, len(s)*p/100)]
}
