//go:build linux

package bench

import (
	"fmt"
	"testing"
	"time"

	"github.com/hayate-sfu/hayate/internal/loadpeer"
)

// BenchmarkFanoutTransports: the server's CPU per forwarded packet to
// viewers that reach the node over each transport, in the same run, each
// against plain UDP viewers: one publisher (the fanout stream) on UDP and
// HAYATE_BENCH_TRANSPORT_SUBS recvonly viewers (default 50), the server on
// one core. The transports:
//
//   - udp: the viewers' own UDP sockets (the reference);
//   - turn-udp: TURN over UDP on the node's built-in server, relayed to
//     the media core in process (turn_relay_in_process = true, the
//     default);
//   - turn-udp-socket: the same through a UDP socket per allocation
//     (turn_relay_in_process = false): the trip through the kernel the
//     in-process relay saves;
//   - turn-tcp: TURN over TCP, in process;
//   - tcp: ICE-TCP.
//
// Every variant runs a server of its own with the same flags but the one
// that differs.
//
//	go test -run '^$' -bench FanoutTransports -benchtime 1x ./bench/
func BenchmarkFanoutTransports(b *testing.B) {
	window := envDuration("HAYATE_BENCH_WINDOW", 5*time.Second)
	n := 50
	if v := envInts("HAYATE_BENCH_TRANSPORT_SUBS", nil); len(v) == 1 {
		n = v[0]
	}
	b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
		ns := map[string]float64{}
		for _, v := range []struct {
			name, transport string
			extra           []string
		}{
			{"udp", loadpeer.TransportUDP, nil},
			{"turn-udp", loadpeer.TransportTURNUDP, nil},
			{"turn-udp-socket", loadpeer.TransportTURNUDP, []string{"--turn_relay_in_process=false"}},
			{"turn-tcp", loadpeer.TransportTURNTCP, nil},
			{"tcp", loadpeer.TransportTCP, nil},
		} {
			r := startFanoutOver(b, n, v.transport, append([]string{"--ice_tcp=true", "--ice_tcp_port=0"}, v.extra...)...)
			w := r.measure(b, window)
			ns[v.name] = w.NsPerForward()
			b.ReportMetric(w.NsPerForward(), v.name+"-ns/fwd")
			b.ReportMetric(w.LossPercent, v.name+"-loss-%")
			b.ReportMetric(w.Mallocs/float64(max(w.Received, 1)), v.name+"-allocs/fwd")
			b.Logf("%s: %d forwards expected, %d received, CPU %v, p99 %v; dropped by the server: %v link, %v TURN, %v ICE-TCP queue full",
				v.name, w.Expected, w.Received, w.ServerCPU, w.P99(),
				w.Counters["link_queue_full"], w.Counters["turn_queue_full"], w.Counters["ice_tcp_queue_full"])
			r.stop()
		}
		for _, name := range []string{"turn-udp", "turn-udp-socket", "turn-tcp", "tcp"} {
			b.ReportMetric(ns[name]/ns["udp"], name+"/udp")
		}
		b.ReportMetric(ns["turn-udp-socket"]/ns["turn-udp"], "socket/in-process")
	})
}

// startFanoutOver is startFanout with subscribers on transport.
func startFanoutOver(b *testing.B, n int, transport string, extra ...string) *fanoutRun {
	b.Helper()
	r := &fanoutRun{srv: startServer(b, "hayate", extra...)}
	var err error
	if r.pub, err = StartPublisher(r.srv.Signaling, "fanout"); err != nil {
		b.Fatalf("%v\n%s", err, r.srv.Log())
	}
	b.Cleanup(r.pub.Stop)
	r.subs, r.join, err = JoinSubscribersOver(r.srv.Signaling, "fanout", n, 16, r.pub.video, r.pub.audio, transport)
	if err != nil {
		b.Fatalf("joining %d subscribers over %s: %v\n%s", n, transport, err, r.srv.Log())
	}
	b.Cleanup(r.closeSubs)
	r.settle()
	return r
}
