package node

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/hayate-sfu/hayate/config"
	"github.com/hayate-sfu/hayate/internal/sigclient"
)

// BenchmarkConnectToOffer measures, on loopback, the time from sending
// connect to receiving the offer, one connect after another (each on a new
// WebSocket, disconnected before the next). Run it as
// go test -bench ConnectToOffer -benchtime 1000x ./node/ for the 1,000
// sequential connects of the issue; p50 and p99 are reported.
func BenchmarkConnectToOffer(b *testing.B) {
	n := startNode(b, func(c *config.Config) { c.SignalingNotify = false })
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	for b.Loop() {
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		c, err := sigclient.Dial(ctx, n.signalingURL())
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		o, err := c.Connect(connectMsg("bench", "sendrecv"), soon())
		if err != nil || o.Type != "offer" {
			b.Fatalf("connect: %v", err)
		}
		lat = append(lat, time.Since(start))
		if _, err := c.Disconnect(soon()); err != nil {
			b.Fatal(err)
		}
		c.Close()
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
