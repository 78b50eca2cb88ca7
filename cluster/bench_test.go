package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/hayate-sfu/hayate/mode"
)

// The cost of mutual TLS on the cluster (issue 11), each benchmark over
// plain loopback and over TLS in the same run, on a three-node cluster on
// loopback with the default timings (heartbeat 1 s, so raft's commit
// timeout is 50 ms). fastCommit sets raft's commit timeout to 1 ms: a
// follower then learns of a commit at once instead of with the next
// heartbeat-driven append, so that the transport's own cost shows.

func benchCluster(b *testing.B, secure, fastCommit bool) []*testNode {
	b.Helper()
	tc := newTestCluster(b, false)
	if secure {
		tc.pki = newTestPKI(b)
	}
	return tc.startN(3, func(cfg *Config) {
		cfg.Heartbeat, cfg.LeaseTTL, cfg.Grace = DefaultHeartbeat, DefaultLeaseTTL, DefaultGrace
		cfg.hooks.serve = nil
		if fastCommit {
			cfg.hooks.raftConfig = func(rc *raft.Config) { rc.CommitTimeout = time.Millisecond }
		}
	})
}

func benchTransports(b *testing.B, f func(b *testing.B, secure bool)) {
	b.Run("plain", func(b *testing.B) { f(b, false) })
	b.Run("tls", func(b *testing.B) { f(b, true) })
}

// follower returns a node that is not the leader.
func follower(b *testing.B, nodes []*testNode) *testNode {
	for {
		for _, n := range nodes {
			if n.RaftStats().State == "follower" {
				return n
			}
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkClaim is the latency of placing a new channel through a
// follower: Route, the claim over the RPC to the leader, the raft commit,
// and the wait for the follower's own state machine. The RPC connection is
// kept alive between claims, as in production. Default timings.
func BenchmarkClaim(b *testing.B) { benchClaims(b, false, false) }

// BenchmarkClaimFastCommit is BenchmarkClaim with a 1 ms commit timeout.
func BenchmarkClaimFastCommit(b *testing.B) { benchClaims(b, true, false) }

// BenchmarkClaimNewConnection is BenchmarkClaimFastCommit with the
// follower's idle RPC connections closed before every claim: each claim
// pays for a new TCP connection (and, with TLS, a full handshake with both
// certificates).
func BenchmarkClaimNewConnection(b *testing.B) { benchClaims(b, true, true) }

func benchClaims(b *testing.B, fastCommit, newConn bool) {
	benchTransports(b, func(b *testing.B, secure bool) {
		nodes := benchCluster(b, secure, fastCommit)
		f := follower(b, nodes)
		ctx := context.Background()
		i := 0
		for b.Loop() {
			i++
			if newConn {
				f.httpTr.CloseIdleConnections()
			}
			if _, err := f.Route(ctx, fmt.Sprintf("bench-%d", i)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRPC is one RPC round trip from a follower to the leader (the
// info request: no raft work) on a kept-alive connection.
func BenchmarkRPC(b *testing.B) { benchRPC(b, false) }

// BenchmarkRPCNewConnection is BenchmarkRPC on a new connection each time:
// TCP and, with TLS, a full handshake (ECDSA P-256 certificates both ways).
func BenchmarkRPCNewConnection(b *testing.B) { benchRPC(b, true) }

func benchRPC(b *testing.B, newConn bool) {
	benchTransports(b, func(b *testing.B, secure bool) {
		nodes := benchCluster(b, secure, false)
		f := follower(b, nodes)
		addr, err := f.leaderRPCAddr()
		for err != nil {
			addr, err = f.leaderRPCAddr()
		}
		ctx := context.Background()
		for b.Loop() {
			if newConn {
				f.httpTr.CloseIdleConnections()
			}
			var info infoResp
			if err := f.call(ctx, addr, pathInfo, struct{}{}, &info, ""); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkRaftApply is raft's throughput: 32 goroutines apply 1 KiB
// commands on the leader (replicated to both followers over the raft
// transport and committed) as fast as they can; applies/s counts from the
// first apply to the last commit.
func BenchmarkRaftApply(b *testing.B) {
	benchTransports(b, func(b *testing.B, secure bool) {
		nodes := benchCluster(b, secure, false)
		leader := nodes[0]
		for leader.RaftStats().State != "leader" {
			for _, n := range nodes {
				if n.RaftStats().State == "leader" {
					leader = n
				}
			}
		}
		// A mode change of the leader to its own mode, padded: the state
		// machine's work is trivial, the bytes cross the transport.
		data, _ := json.Marshal(command{Op: opSetMode, Node: leader.name, Mode: mode.Normal, APIURL: strings.Repeat("x", 1024)})
		b.SetBytes(int64(len(data)))
		work := make(chan struct{}, 32)
		var wg sync.WaitGroup
		for range 32 {
			wg.Go(func() {
				for range work {
					if err := leader.raft.Apply(data, 5*time.Second).Error(); err != nil {
						b.Error(err)
					}
				}
			})
		}
		start := time.Now()
		for b.Loop() {
			work <- struct{}{}
		}
		close(work)
		wg.Wait()
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "applies/s")
	})
}
