package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hayate-sfu/hayate/internal/poll"
	"github.com/hayate-sfu/hayate/internal/sigclient"
)

// exampleNames are the node names of examples/cluster.
var exampleNames = []string{"hayate-1@127.0.0.1:15691", "hayate-2@127.0.0.1:15692", "hayate-3@127.0.0.1:15693"}

// joinFollowing connects to a channel through url, follows a redirect as
// Sora's SDKs do (the same connect again with redirect: true), answers, and
// returns the live client and the signaling URL that serves it.
func joinFollowing(t *testing.T, url, channel string) (*sigclient.Client, string) {
	t.Helper()
	msg := map[string]any{"type": "connect", "role": "sendrecv", "channel_id": channel}
	for hop := 0; hop < 3; hop++ {
		ctx, cancel := context.WithTimeout(context.Background(), poll.Patience)
		c, err := sigclient.Dial(ctx, url)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		o, err := c.Connect(msg, soon())
		if err != nil {
			c.Close()
			t.Fatalf("connect %s at %s: %v", channel, url, err)
		}
		if o.Type == "redirect" {
			c.Close()
			url, msg["redirect"] = o.Location, true
			continue
		}
		t.Cleanup(func() { c.Close() })
		answerFake(t, c, o)
		return c, url
	}
	t.Fatalf("connect %s: more than 3 redirects", channel)
	return nil, ""
}

func apiJSON(t *testing.T, api, target, body string, out any) {
	t.Helper()
	var b any
	if body != "" {
		b = json.RawMessage(body)
	}
	data, err := call(api, "", target, b, poll.Patience)
	if err != nil {
		t.Fatalf("%s: %v", target, err)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s: %v: %s", target, err, data)
		}
	}
}

type clusterNodeStatus struct {
	Name        string `json:"cluster_node_name"`
	Mode        string `json:"mode"`
	Connected   bool   `json:"connected"`
	Connections int    `json:"connections"`
}

type clusterChannel struct {
	ChannelID string `json:"channel_id"`
	Owner     string `json:"cluster_node_name"`
}

// servingInterval is one "serving channel … stopped serving channel" pair
// from a node's log.
type servingInterval struct {
	node, channel string
	from, until   int64 // unix ns; until = 0: still serving
}

var (
	servingRE = regexp.MustCompile(`msg="cluster: serving channel".* channel_id=(\S+) served_from_unix_ns=(\d+)`)
	stoppedRE = regexp.MustCompile(`msg="cluster: stopped serving channel".* channel_id=(\S+) served_from_unix_ns=(\d+) served_until_unix_ns=(\d+)`)
)

// servingIntervals reads a node's exact serving history from its log; an
// interval still open ends at end (the node's death, or now).
func servingIntervals(node, log string, end int64) []servingInterval {
	open := map[string]int64{}
	var out []servingInterval
	for _, line := range strings.Split(log, "\n") {
		if m := servingRE.FindStringSubmatch(line); m != nil {
			from, _ := strconv.ParseInt(m[2], 10, 64)
			open[m[1]] = from
		} else if m := stoppedRE.FindStringSubmatch(line); m != nil {
			from, _ := strconv.ParseInt(m[2], 10, 64)
			until, _ := strconv.ParseInt(m[3], 10, 64)
			out = append(out, servingInterval{node, m[1], from, until})
			delete(open, m[1])
		}
	}
	for ch, from := range open {
		out = append(out, servingInterval{node, ch, from, end})
	}
	return out
}

// TestThreeProcessCluster runs the example cluster (examples/cluster, three
// processes on loopback, with shorter lease timings and test data
// directories): InitCluster, new channels spread by load, one node killed
// with SIGKILL, its channels served again by the others after its lease,
// and no channel ever served by two nodes at once (each node logs the
// exact interval in which it served each channel). It runs in a network
// namespace of its own: the example configs name fixed ports.
//
// It runs over plain loopback and with cluster credentials (mutual TLS).
func TestThreeProcessCluster(t *testing.T) {
	if !isolated(t) {
		return
	}
	t.Run("plain", func(t *testing.T) { threeProcessCluster(t, nil) })
	t.Run("tls", func(t *testing.T) { threeProcessCluster(t, clusterCerts(t, exampleNames...)) })
}

// threeProcessCluster is TestThreeProcessCluster; tlsFlags, if not nil,
// holds each node's cluster_tls_* flags.
func threeProcessCluster(t *testing.T, tlsFlags [][]string) {
	dir := t.TempDir()
	var procs []*proc
	for i := 1; i <= 3; i++ {
		args := []string{"-config", filepath.Join("..", "..", "examples", "cluster", fmt.Sprintf("node%d.conf", i)),
			"--cluster_data_dir=" + filepath.Join(dir, strconv.Itoa(i)), "--cluster_heartbeat_interval=250 ms",
			"--cluster_lease_ttl=3 s", "--cluster_lease_grace=1 s", "--ice_connection_state_failed_timeout=5 min"}
		if tlsFlags != nil {
			args = append(args, tlsFlags[i-1]...)
		}
		procs = append(procs, start(t, args...))
		if tlsFlags != nil && !strings.Contains(procs[i-1].logText(), "tls=true") {
			t.Fatalf("node %d runs its cluster without TLS", i)
		}
	}
	names, _ := json.Marshal(exampleNames)
	apiJSON(t, procs[0].api, "Sora_20221221.InitCluster", `{"node_name_list":`+string(names)+`}`, nil)
	nodes := func(p *proc) []clusterNodeStatus {
		var list []clusterNodeStatus
		apiJSON(t, p.api, "Sora_20211215.ListClusterNodes", "", &list)
		return list
	}
	poll.Soon(t, "three nodes connected in normal mode", func() bool {
		list := nodes(procs[0])
		ok := len(list) == 3
		for _, n := range list {
			ok = ok && n.Connected && n.Mode == "normal"
		}
		return ok
	})

	// Nine new channels, all asked of node 1: each goes to the least
	// loaded node once the loads are known (heartbeats carry them).
	owner := map[string]string{}
	for i := range 9 {
		ch := fmt.Sprintf("room-%d", i)
		_, served := joinFollowing(t, procs[0].signaling, ch)
		owner[ch] = served
		// Each node's load as replicated: read from another node's table
		// (a node lists its own live count). Seen there, the heartbeat that
		// carried it is in the log before the next claim.
		poll.Soon(t, "the loads replicated", func() bool {
			total := 0
			for j := range procs {
				for _, n := range nodes(procs[(j+1)%3]) {
					if n.Name == exampleNames[j] {
						total += n.Connections
					}
				}
			}
			return total == i+1
		})
	}
	perNode := map[string]int{}
	for _, u := range owner {
		perNode[u]++
	}
	for _, p := range procs {
		if perNode[p.signaling] != 3 {
			t.Fatalf("channels per node: %v, want 3 each", perNode)
		}
	}

	// Node 3 dies. Its clients lose their signaling; after its lease its
	// channels are expired and new connects to them land on the others.
	victim := procs[2]
	killedAt := time.Now().UnixNano()
	victim.cmd.Process.Kill()
	<-victim.done
	poll.Soon(t, "node 3 seen dead and its channels expired", func() bool {
		for _, p := range procs[:2] {
			var chans []clusterChannel
			apiJSON(t, p.api, "Sora_20211215.ListClusterChannels", "", &chans)
			for _, c := range chans {
				if c.Owner == exampleNames[2] {
					return false
				}
			}
			for _, n := range nodes(p) {
				if n.Name == exampleNames[2] && n.Connected {
					return false
				}
			}
		}
		return true
	})
	var victimChannels []string
	for ch, u := range owner {
		if u != victim.signaling {
			continue
		}
		victimChannels = append(victimChannels, ch)
		_, served := joinFollowing(t, procs[1].signaling, ch)
		if served == victim.signaling {
			t.Fatalf("%s still sent to the dead node", ch)
		}
		owner[ch] = served
	}

	// The history: per channel, no two serving intervals overlap. The
	// nodes' logs reach the test through pipes: wait until they show the
	// three moves.
	history := func() map[string][]servingInterval {
		now := time.Now().UnixNano()
		byChannel := map[string][]servingInterval{}
		for i, p := range procs {
			end := now
			if p == victim {
				end = killedAt
			}
			for _, iv := range servingIntervals(exampleNames[i], p.logText(), end) {
				byChannel[iv.channel] = append(byChannel[iv.channel], iv)
			}
		}
		return byChannel
	}
	servedBy := func(ivs []servingInterval) map[string]bool {
		m := map[string]bool{}
		for _, iv := range ivs {
			m[iv.node] = true
		}
		return m
	}
	poll.Soon(t, "the new owners' serving lines in their logs", func() bool {
		h := history()
		for _, ch := range victimChannels {
			if len(servedBy(h[ch])) < 2 {
				return false
			}
		}
		return true
	})
	byChannel := history()
	if len(byChannel) != 9 {
		t.Fatalf("serving history covers %d channels, want 9", len(byChannel))
	}
	moved := 0
	for ch, ivs := range byChannel {
		sort.Slice(ivs, func(i, j int) bool { return ivs[i].from < ivs[j].from })
		for i := 1; i < len(ivs); i++ {
			if ivs[i].from < ivs[i-1].until {
				t.Errorf("%s served by %s and %s at once: [%d, %d) and [%d, %d)", ch, ivs[i-1].node, ivs[i].node,
					ivs[i-1].from, ivs[i-1].until, ivs[i].from, ivs[i].until)
			}
			if ivs[i].node != ivs[i-1].node {
				moved++
				t.Logf("%s moved from %s to %s; gap %v", ch, ivs[i-1].node, ivs[i].node, time.Duration(ivs[i].from-ivs[i-1].until))
			}
		}
	}
	if moved != 3 {
		t.Fatalf("%d channels moved, want node 3's 3", moved)
	}
}
