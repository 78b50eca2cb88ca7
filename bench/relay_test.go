//go:build linux

package bench

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hayate-sfu/hayate/internal/loadpeer"
)

// The DataChannel benchmarks (issue 14): messages relayed on a `#` label
// from one sender to N receivers, and the idle cost of a connection with
// DataChannels. Clients are loadpeers with SCTP (package datachan).

// dcPeer joins channel with DataChannel signaling and the given labels;
// onData receives its messages.
func dcPeer(url, channel, role string, audioVideo bool, labels []map[string]any, onData func(string, []byte, bool)) (*loadpeer.Peer, error) {
	msg := connectMsg(channel, role)
	msg["data_channel_signaling"] = true
	if !audioVideo {
		msg["audio"], msg["video"] = false, false
	}
	if len(labels) > 0 {
		msg["data_channels"] = labels
	}
	p, err := loadpeer.Dial(context.Background(), loadpeer.Options{URL: url, Connect: msg, Timeout: 30 * time.Second, DataChannels: true, OnData: onData})
	if err != nil {
		return nil, err
	}
	// The server opens its channels right after SCTP is up.
	want := 4 + len(labels)
	deadline := time.Now().Add(20 * time.Second)
	for len(p.DataLabels()) < want {
		if time.Now().After(deadline) {
			p.Close()
			return nil, fmt.Errorf("only %v of %d DataChannels opened", p.DataLabels(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return p, nil
}

// joinDC connects n DataChannel clients, at most concurrency at once.
func joinDC(n, concurrency int, join func(i int) (*loadpeer.Peer, error)) ([]*loadpeer.Peer, error) {
	return JoinAll(n, concurrency, join, (*loadpeer.Peer).Close)
}

// relayReceiver records what one receiver got: sequence numbers and the
// delay of each message (its send time is in the message).
type relayReceiver struct {
	mu     sync.Mutex
	got    map[uint64]bool
	delays []time.Duration
}

func (r *relayReceiver) onData(_ string, msg []byte, _ bool) {
	if len(msg) < 16 {
		return
	}
	now := time.Now().UnixNano()
	seq := binary.BigEndian.Uint64(msg)
	sent := int64(binary.BigEndian.Uint64(msg[8:]))
	r.mu.Lock()
	r.got[seq] = true
	r.delays = append(r.delays, time.Duration(now-sent))
	r.mu.Unlock()
}

// BenchmarkRelay: one sender, HAYATE_BENCH_RELAY_SUBS receivers (default
// 100), one `#bench` label, messaging-only connections, server on one core
// (CPU 0, GOMAXPROCS=1), clients on the other. For each rate in
// HAYATE_BENCH_RELAY_RATES (messages/s from the sender, default
// 100,250,500,1000,2000) the sender sends 64-byte messages, paced, for
// HAYATE_BENCH_RELAY_WINDOW (default 5s); reported: messages delivered per
// second over all receivers, loss, p50 and p99 delivery delay, the
// server's CPU per delivered message and its and the clients' CPU use.
//
//	go test -run '^$' -bench 'Relay$' -benchtime 1x ./bench/
func BenchmarkRelay(b *testing.B) {
	subs := 100
	if v := envInts("HAYATE_BENCH_RELAY_SUBS", nil); len(v) == 1 {
		subs = v[0]
	}
	rates := envInts("HAYATE_BENCH_RELAY_RATES", []int{100, 250, 500, 1000, 2000})
	window := envDuration("HAYATE_BENCH_RELAY_WINDOW", 5*time.Second)
	for range b.N {
		srv := startServer(b, "hayate", "--data_channel_messages_per_second=0", "--data_channel_queue_bytes=16777216", "--debug_pprof=true")
		recv := make([]*relayReceiver, subs)
		peers, err := joinDC(subs, 16, func(i int) (*loadpeer.Peer, error) {
			recv[i] = &relayReceiver{got: map[uint64]bool{}}
			return dcPeer(srv.Signaling, "relay", "recvonly", false, []map[string]any{{"label": "#bench", "direction": "recvonly"}}, recv[i].onData)
		})
		if err != nil {
			b.Fatalf("receivers: %v", err)
		}
		sender, err := dcPeer(srv.Signaling, "relay", "sendonly", false, []map[string]any{{"label": "#bench", "direction": "sendonly"}}, nil)
		if err != nil {
			b.Fatalf("sender: %v", err)
		}
		var seq atomic.Uint64
		msg := make([]byte, 64)
		send := func() {
			s := seq.Add(1)
			binary.BigEndian.PutUint64(msg, s)
			binary.BigEndian.PutUint64(msg[8:], uint64(time.Now().UnixNano()))
			if err := sender.SendData("#bench", msg, true); err != nil {
				b.Errorf("send: %v", err)
			}
		}
		for _, rate := range rates {
			b.Run(fmt.Sprintf("subs=%d/rate=%d", subs, rate), func(b *testing.B) {
				for _, r := range recv {
					r.mu.Lock()
					r.got, r.delays = map[uint64]bool{}, r.delays[:0]
					r.mu.Unlock()
				}
				first := seq.Load() + 1
				if path := os.Getenv("HAYATE_BENCH_RELAY_PROFILE"); path != "" && rate == rates[len(rates)-1] {
					go profile(srv, path, window-time.Second)
				}
				cpu0, _ := srv.CPUTime()
				gen0 := processCPU()
				start := time.Now()
				sent := 0
				for time.Since(start) < window {
					for due := int(time.Since(start).Seconds() * float64(rate)); sent < due; sent++ {
						send()
					}
					time.Sleep(time.Millisecond)
				}
				elapsed := time.Since(start)
				cpu1, _ := srv.CPUTime()
				gen1 := processCPU()
				last := seq.Load()
				time.Sleep(time.Second) // let the last messages land
				var delivered uint64
				var delays []time.Duration
				for _, r := range recv {
					r.mu.Lock()
					for s := first; s <= last; s++ {
						if r.got[s] {
							delivered++
						}
					}
					delays = append(delays, r.delays...)
					r.mu.Unlock()
				}
				expected := (last - first + 1) * uint64(subs)
				slices.Sort(delays)
				pct := func(p int) time.Duration {
					if len(delays) == 0 {
						return 0
					}
					return delays[min(len(delays)-1, len(delays)*p/100)]
				}
				b.ReportMetric(float64(delivered)/elapsed.Seconds(), "delivered/s")
				b.ReportMetric(100*(1-float64(delivered)/float64(max(expected, 1))), "loss-%")
				b.ReportMetric(float64(pct(50).Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(pct(99).Microseconds())/1000, "p99-ms")
				b.ReportMetric(float64((cpu1-cpu0).Nanoseconds())/float64(max(delivered, 1))/1000, "server-µs/msg")
				b.ReportMetric(100*(cpu1-cpu0).Seconds()/elapsed.Seconds(), "server-cpu-%")
				// The load generator (sender and receivers) has one core too:
				// near 100% it, not the server, limits the delay.
				b.ReportMetric(100*(gen1-gen0).Seconds()/elapsed.Seconds(), "clients-cpu-%")
			})
		}
		sender.Close()
		for _, p := range peers {
			p.Close()
		}
	}
}

// profile writes the server's CPU profile over d to path (debug_pprof).
func profile(srv *Server, path string, d time.Duration) {
	resp, err := http.Get(fmt.Sprintf("%sdebug/pprof/profile?seconds=%d", srv.API, int(d.Seconds())))
	if err != nil {
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = io.Copy(f, resp.Body)
}

// processCPU is the CPU time of this process (the load generator).
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
