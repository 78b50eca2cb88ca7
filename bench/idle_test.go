package bench

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkIdle: the server's resident memory per idle connection (signaling,
// ICE, DTLS and SRTP up, no media) at HAYATE_BENCH_IDLE connections
// (default 1000).
//
//	go test -run '^$' -bench Idle -benchtime 1x ./bench/
func BenchmarkIdle(b *testing.B) {
	n := 1000
	if v := envInts("HAYATE_BENCH_IDLE", nil); len(v) == 1 {
		n = v[0]
	}
	b.Run(fmt.Sprintf("conns=%d", n), func(b *testing.B) {
		for range b.N {
			srv := startServer(b, "hayate")
			time.Sleep(500 * time.Millisecond)
			rss0, err := srv.RSS()
			if err != nil {
				b.Fatal(err)
			}
			subs, _, err := JoinSubscribers(srv.Signaling, "idle", n, 16, 0, 0)
			if err != nil {
				b.Fatalf("joining: %v", err)
			}
			time.Sleep(3 * time.Second) // a few consent checks, receiver reports and pings
			rss1, _ := srv.RSS()
			st, _ := srv.Stats()
			rt, _ := st["runtime"].(map[string]any)
			b.ReportMetric(float64(rss1-rss0)/float64(n)/1024, "KiB/conn")
			b.ReportMetric(rt["heap_inuse_bytes"].(float64)/float64(n)/1024, "heap-KiB/conn")
			b.ReportMetric(rt["goroutines"].(float64)/float64(n), "goroutines/conn")
			b.ReportMetric(rt["stack_inuse_bytes"].(float64)/float64(n)/1024, "stack-KiB/conn")
			b.Logf("RSS %d MiB → %d MiB for %d connections; runtime %v", rss0>>20, rss1>>20, n, rt)
			for _, s := range subs {
				s.Close()
			}
		}
	})
}
