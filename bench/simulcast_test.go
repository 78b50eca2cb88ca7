//go:build linux

package bench

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkFanoutSimulcast: a simulcast publisher (VP8 r0/r1/r2 at 150
// kbit/s, 500 kbit/s and 1.5 Mbit/s, 30 fps, video only) and N recvonly
// subscribers spread over the three layers (simulcast_rid r0, r1, r2 in
// turn), the server on one core as in BenchmarkFanout. In the same run,
// the plain fanout at the same N (BenchmarkFanout's publisher, audio and
// video), for the cost per forwarded packet of the simulcast path (every
// packet rewritten per subscriber) against the plain one. Each iteration
// is one measurement window (HAYATE_BENCH_WINDOW, default 5s);
// HAYATE_BENCH_PLAIN=0 leaves the plain fanout out.
//
//	HAYATE_BENCH_SUBS=1000 go test -run '^$' -bench FanoutSimulcast -benchtime 1x -count 3 ./bench/
func BenchmarkFanoutSimulcast(b *testing.B) {
	window := envDuration("HAYATE_BENCH_WINDOW", 5*time.Second)
	for _, n := range envInts("HAYATE_BENCH_SUBS", []int{100, 1000}) {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			srv := startServer(b, "hayate")
			pub, err := StartSimulcastPublisher(srv.Signaling, "simulcast")
			if err != nil {
				b.Fatalf("%v\n%s", err, srv.Log())
			}
			b.Cleanup(pub.Stop)
			time.Sleep(time.Second)
			subs, join, err := JoinSimulcastSubscribers(srv.Signaling, "simulcast", n, 16)
			if err != nil {
				b.Fatalf("joining %d subscribers: %v\n%s", n, err, srv.Log())
			}
			r := &fanoutRun{srv: srv, subs: subs, join: join}
			b.Cleanup(r.closeSubs)
			r.settle()
			var sw Window
			for range b.N {
				w, err := MeasureSimulcast(srv, pub, subs, window)
				if err != nil {
					b.Fatal(err)
				}
				sw.merge(w)
			}
			b.ReportMetric(sw.NsPerForward(), "simulcast-ns/fwd")
			b.ReportMetric(sw.LossPercent, "simulcast-loss-%")
			b.ReportMetric(float64(sw.P99().Microseconds())/1000, "simulcast-p99-ms")
			b.ReportMetric(float64(sw.Received)/sw.Duration.Seconds(), "simulcast-fwd/s")
			b.ReportMetric(sw.Mallocs/float64(max(sw.Received, 1)), "simulcast-allocs/fwd")
			b.Logf("simulcast: %d packets from the publisher, %d forwards expected, %d received, CPU %v, p99 %v, join p50 %v",
				sw.PubPackets, sw.Expected, sw.Received, sw.ServerCPU, sw.P99(), percentile(join, 50))
			if envInts("HAYATE_BENCH_PLAIN", []int{1})[0] == 0 {
				return
			}
			r.closeSubs()
			pub.Stop()
			srv.Stop(30 * time.Second)
			time.Sleep(2 * time.Second) // the closed clients' sockets and the old server gone

			plain := startFanout(b, "hayate", n)
			pw := plain.measure(b, window)
			b.ReportMetric(pw.NsPerForward(), "plain-ns/fwd")
			b.ReportMetric(pw.LossPercent, "plain-loss-%")
			b.ReportMetric(sw.NsPerForward()/pw.NsPerForward(), "simulcast/plain")
		})
	}
}
