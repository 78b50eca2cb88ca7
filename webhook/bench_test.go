package webhook

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkQueueThroughput: 1,000 short sessions (a created and a destroyed
// webhook each, queued back to back) to a receiver that answers after a
// random delay of 0 to HAYATE_WEBHOOK_DELAY_MS ms (default 200), with the
// default 5 senders: webhooks delivered per second.
func BenchmarkQueueThroughput(b *testing.B) {
	maxDelay := 200
	if v, err := strconv.Atoi(os.Getenv("HAYATE_WEBHOOK_DELAY_MS")); err == nil {
		maxDelay = v
	}
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		io.Copy(io.Discard, req.Body)
		time.Sleep(time.Duration(rand.IntN(maxDelay+1)) * time.Millisecond)
		got.Add(1)
	}))
	defer srv.Close()
	const sessions = 1000
	for b.Loop() {
		got.Store(0)
		q := NewQueue("bench", srv.URL, Options{Workers: 5, Size: 4096, Timeout: time.Minute}, slog.New(slog.DiscardHandler))
		start := time.Now()
		for i := range sessions {
			key := fmt.Sprint("ch-", i)
			q.Send(key, map[string]any{"type": "session.created", "channel_id": key})
			q.Send(key, map[string]any{"type": "session.destroyed", "channel_id": key})
		}
		for got.Load() < 2*sessions {
			time.Sleep(time.Millisecond)
		}
		b.ReportMetric(float64(2*sessions)/time.Since(start).Seconds(), "webhooks/s")
		q.Close(context.Background())
	}
}
