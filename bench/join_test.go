//go:build linux

package bench

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkJoin: joins per second and join time (connect to SRTP ready:
// signaling, ICE and DTLS) of recvonly clients, HAYATE_BENCH_JOINS of them
// (default 200) with 8 joining at once, the server on one core.
//
//	go test -run '^$' -bench Join -benchtime 1x ./bench/
func BenchmarkJoin(b *testing.B) {
	n := 200
	if v := envInts("HAYATE_BENCH_JOINS", nil); len(v) == 1 {
		n = v[0]
	}
	const concurrency = 8
	b.Run(fmt.Sprintf("joins=%d", n), func(b *testing.B) {
		var all []time.Duration
		var wall, cpu time.Duration
		for range b.N {
			srv := startServer(b, "hayate")
			cpu0, _ := srv.CPUTime()
			start := time.Now()
			subs, lat, err := JoinSubscribers(srv.Signaling, "join", n, concurrency, 0, 0)
			if err != nil {
				b.Fatal(err)
			}
			wall += time.Since(start)
			cpu1, _ := srv.CPUTime()
			cpu += cpu1 - cpu0
			all = append(all, lat...)
			for _, s := range subs {
				s.Close()
			}
		}
		joins := float64(len(all))
		b.ReportMetric(joins/wall.Seconds(), "joins/s")
		b.ReportMetric(float64(percentile(all, 50).Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(percentile(all, 99).Microseconds())/1000, "p99-ms")
		b.ReportMetric(float64(cpu.Microseconds())/joins, "server-µs/join")
	})
}
