//go:build linux

package bench

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hayate-sfu/hayate/internal/loadpeer"
)

// BenchmarkIdle: the server's resident memory per idle connection at
// HAYATE_BENCH_IDLE connections (default 1000), for each kind in
// HAYATE_BENCH_IDLE_KINDS (default all):
//
//   - media: recvonly, signaling, ICE, DTLS and SRTP up, no media (DTLS is
//     released after the handshake);
//
//   - media+datachannels: the same with DataChannel signaling (DTLS kept,
//     SCTP and the four signaling channels up);
//
//   - messaging: audio and video false, DataChannel signaling and one `#`
//     label (Sora.messaging()).
//
//     go test -run '^$' -bench Idle -benchtime 1x ./bench/
func BenchmarkIdle(b *testing.B) {
	n := 1000
	if v := envInts("HAYATE_BENCH_IDLE", nil); len(v) == 1 {
		n = v[0]
	}
	kinds := []string{"media", "media+datachannels", "messaging"}
	if k := envStrings("HAYATE_BENCH_IDLE_KINDS"); len(k) > 0 {
		kinds = k
	}
	for _, kind := range kinds {
		b.Run(fmt.Sprintf("conns=%d/%s", n, kind), func(b *testing.B) {
			for range b.N {
				srv := startServer(b, "hayate", "--debug_pprof=true")
				time.Sleep(500 * time.Millisecond)
				rss0, err := srv.RSS()
				if err != nil {
					b.Fatal(err)
				}
				closers, err := joinIdle(srv.Signaling, kind, n)
				if err != nil {
					b.Fatalf("joining: %v", err)
				}
				time.Sleep(3 * time.Second) // a few consent checks, receiver reports and pings
				rss1, _ := srv.RSS()
				if path := os.Getenv("HAYATE_BENCH_IDLE_HEAP"); path != "" {
					heapProfile(srv, strings.ReplaceAll(path, "KIND", strings.ReplaceAll(kind, "+", "-")))
				}
				st, _ := srv.Stats()
				rt, _ := st["runtime"].(map[string]any)
				b.ReportMetric(float64(rss1-rss0)/float64(n)/1024, "KiB/conn")
				b.ReportMetric(rt["heap_inuse_bytes"].(float64)/float64(n)/1024, "heap-KiB/conn")
				b.ReportMetric(rt["goroutines"].(float64)/float64(n), "goroutines/conn")
				b.ReportMetric(rt["stack_inuse_bytes"].(float64)/float64(n)/1024, "stack-KiB/conn")
				b.Logf("%s: RSS %d MiB → %d MiB for %d connections; runtime %v", kind, rss0>>20, rss1>>20, n, rt)
				for _, c := range closers {
					c.Close()
				}
			}
		})
	}
}

// joinIdle connects n idle clients of a kind.
func joinIdle(url, kind string, n int) ([]io.Closer, error) {
	var out []io.Closer
	switch kind {
	case "media":
		subs, _, err := JoinSubscribers(url, "idle", n, 16, 0, 0)
		for _, s := range subs {
			out = append(out, closer(s.Close))
		}
		return out, err
	case "media+datachannels", "messaging":
		peers, err := joinDC(n, 16, func(int) (*loadpeer.Peer, error) {
			if kind == "messaging" {
				return dcPeer(url, "idle", "sendonly", false, []map[string]any{{"label": "#chat", "direction": "sendrecv"}}, nil)
			}
			return dcPeer(url, "idle", "recvonly", true, nil, nil)
		})
		for _, p := range peers {
			out = append(out, closer(func() { p.Close() }))
		}
		return out, err
	}
	return nil, fmt.Errorf("unknown kind %q", kind)
}

type closer func()

func (c closer) Close() error { c(); return nil }

func envStrings(name string) []string {
	var out []string
	for _, f := range strings.Split(os.Getenv(name), ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// heapProfile writes the server's heap profile to path (debug_pprof).
func heapProfile(srv *Server, path string) {
	resp, err := http.Get(srv.API + "debug/pprof/heap?gc=1")
	if err != nil {
		return
	}
	defer resp.Body.Close()
	if f, err := os.Create(path); err == nil {
		_, _ = io.Copy(f, resp.Body)
		f.Close()
	}
}
