package node

import (
	"context"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hayate-sfu/hayate/config"
	"github.com/hayate-sfu/hayate/internal/sigclient"
)

// pipeListener is a net.Listener of in-memory connections: a benchmark
// process may hold 20,000 descriptors, and 10,000 signaling connections
// over loopback TCP take two each.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1} }

func (l *pipeListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// discard is a ResponseWriter that keeps nothing, so that a benchmark
// counts the handler's allocations and not a recorder's.
type discard struct {
	h http.Header
	n int
}

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) WriteHeader(int)             {}
func (d *discard) Write(p []byte) (int, error) { d.n = len(p); return len(p), nil }

// BenchmarkScrape measures one GET /metrics through the API port's real
// handler on a node with no connection and on the same node with 10,000
// admitted connections (real signaling connections with an answer and a
// media transport each; the WebSockets run over in-memory pipes), and then
// with 10,000 more open descriptors, as a node serving them over TCP has.
// Run:
//
//	go test -run '^$' -bench Scrape -benchmem -count 6 ./node/
func BenchmarkScrape(b *testing.B) {
	n := startNode(b, func(c *config.Config) {
		c.MaxConnections, c.MaxPendingConnections = 0, 20000
		c.SignalingNotify = false
		c.SignalingPingInterval, c.SignalingPongTimeout = time.Hour, 2*time.Hour
		c.AnswerTimeout = time.Hour
	})
	ln := newPipeListener()
	srv := &http.Server{Handler: n.signalingHandler()}
	go srv.Serve(ln) //nolint:errcheck // closed below
	b.Cleanup(func() { srv.Close(); ln.Close() })
	handler := n.apiSrv.Handler
	scrape := func(b *testing.B) {
		req, _ := http.NewRequest(http.MethodGet, "/metrics", nil)
		w := &discard{h: http.Header{}}
		handler.ServeHTTP(w, req)
		b.ReportAllocs()
		for b.Loop() {
			clear(w.h)
			handler.ServeHTTP(w, req)
		}
		b.ReportMetric(float64(w.n), "bytes/scrape")
	}
	b.Run("conns=0", scrape)

	const total, workers = 10000, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	clients := make(chan *sigclient.Client, total)
	for w := range workers {
		wg.Go(func() {
			for i := w; i < total; i += workers {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				c, err := sigclient.DialWith(ctx, "ws://127.0.0.1:1/signaling", ln.dial)
				cancel()
				if err != nil {
					errs <- err
					return
				}
				clients <- c
				msg := connectMsg("bench-"+string(rune('a'+i%26))+string(rune('a'+i/26%26)), "sendrecv")
				o, err := c.Connect(msg, time.Now().Add(30*time.Second))
				if err != nil {
					errs <- err
					return
				}
				answer(b, c, o)
				// Keep reading (re-offers as others join the channel): a
				// real client does, and a pipe blocks the writer otherwise.
				go func() {
					for {
						if _, err := c.ReadMessage(time.Now().Add(time.Hour)); err != nil {
							return
						}
					}
				}()
			}
		})
	}
	wg.Wait()
	close(clients)
	select {
	case err := <-errs:
		b.Fatal(err)
	default:
	}
	b.Cleanup(func() {
		for c := range clients {
			c.Close()
		}
	})
	var conns, transports int
	b.Cleanup(func() {
		if b.Failed() {
			b.Logf("%d connections, %d transports", conns, transports)
		}
	})
	waitFor(b, "10,000 connections admitted with transports", 60*time.Second, func() bool {
		conns, transports = n.hub.Connections(), n.media.Stats().Transports
		return conns == total && transports == total
	})
	b.Run("conns=10000", scrape)

	// Over TCP each of those connections would also be a descriptor, which
	// process_open_fds counts: hold 10,000 more and scrape again.
	for range total {
		f, err := os.Open(os.DevNull)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { f.Close() })
	}
	b.Run("conns=10000,fds=10000", scrape)
}
