//go:build unix

package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hayate-sfu/hayate/internal/clientproc"
	"github.com/hayate-sfu/hayate/internal/poll"
)

// eventReceiver records connection.destroyed reasons by connection_id.
type eventReceiver struct {
	srv       *httptest.Server
	mu        sync.Mutex
	destroyed map[string]string
}

func newEventReceiver(t *testing.T) *eventReceiver {
	r := &eventReceiver{destroyed: map[string]string{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var ev struct {
			Type         string `json:"type"`
			ConnectionID string `json:"connection_id"`
			Data         struct {
				Reason string `json:"reason"`
			} `json:"data"`
		}
		_ = json.NewDecoder(req.Body).Decode(&ev)
		if ev.Type == "connection.destroyed" {
			r.mu.Lock()
			r.destroyed[ev.ConnectionID] = ev.Data.Reason
			r.mu.Unlock()
		}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *eventReceiver) reason(id string) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	reason, ok := r.destroyed[id]
	return reason, ok
}

func (r *eventReceiver) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.destroyed)
}

var (
	stallRE      = regexp.MustCompile(`msg="node stalled: [^"]*".* late=(\S+)`)
	stallEndedRE = regexp.MustCompile(`msg="node stall ended: [^"]*"`)
)

// TestNodeStallKeepsPeers: a node stopped with SIGSTOP for 3 s, three times
// its 1 s liveness timeout and longer than its 2 s pong timeout, and
// continued, keeps every client: none is failed for the node's own
// silence, media flows again, and the stall is logged and counted. A
// client stopped right after is closed with ICE-CONNECTION-STATE-FAILED
// (the stall does not delay the verdict on it).
func TestNodeStallKeepsPeers(t *testing.T) {
	ev := newEventReceiver(t)
	p := start(t, freeArgs("--ice_connection_state_failed_timeout=1 s", "--signaling_ping_interval=500 ms",
		"--signaling_pong_timeout=2 s", "--event_webhook_url="+ev.srv.URL)...)
	call := newMediaCall(t, p.signaling, "stall")
	client, clientID := clientproc.Start(t, p.signaling, "stall")
	poll.Soon(t, "three connections", func() bool { return len(listConnections(t, p.api)) == 3 })

	p.cmd.Process.Signal(syscall.SIGSTOP)
	time.Sleep(3 * time.Second) // the stall itself: what the test is about
	p.cmd.Process.Signal(syscall.SIGCONT)

	late := stallRE.FindStringSubmatch(p.waitLog(t, stallRE))[1]
	p.waitLog(t, stallEndedRE) // a janitor wake after the stall: liveness was judged
	if got := call.send(t, 50); got != 50 {
		t.Fatalf("after the stall %d of 50 packets arrived", got)
	}
	if n := len(listConnections(t, p.api)); n != 3 || ev.count() != 0 {
		t.Fatalf("after the node's stall: %d connections, %d destroyed (%v); want all 3 kept", n, ev.count(), ev.destroyed)
	}
	media := stats(t, p.api)["media"].(map[string]any)
	// At least this stall: a loaded machine may starve the node for more
	// than 250 ms at other times too, and those count.
	if media["total_node_stalls"].(float64) < 1 || media["longest_node_stall_ms"].(float64) < 2500 {
		t.Fatalf("stall counters: total_node_stalls %v, longest_node_stall_ms %v (logged late=%s)",
			media["total_node_stalls"], media["longest_node_stall_ms"], late)
	}

	// A client that stops is still failed: its silence is its own.
	client.Process.Signal(syscall.SIGSTOP)
	poll.Soon(t, "connection.destroyed of the stopped client", func() bool { _, ok := ev.reason(clientID); return ok })
	if r, _ := ev.reason(clientID); r != "ICE-CONNECTION-STATE-FAILED" {
		t.Fatalf("stopped client destroyed with %q, want ICE-CONNECTION-STATE-FAILED", r)
	}
	if got := call.send(t, 50); got != 50 {
		t.Fatalf("the call after the client's failure: %d of 50 packets arrived", got)
	}
	if ev.count() != 1 {
		t.Fatalf("destroyed: %v, want only the stopped client", ev.destroyed)
	}
}

func listConnections(t *testing.T, api string) []map[string]any {
	t.Helper()
	data, err := call(api, "", "Sora_20201013.ListConnections", nil, poll.Patience)
	if err != nil {
		t.Fatal(err)
	}
	var list []map[string]any
	if err := json.Unmarshal(data, &list); err != nil {
		t.Fatalf("ListConnections: %v: %s", err, data)
	}
	return list
}

func stats(t *testing.T, api string) map[string]any {
	t.Helper()
	data, err := call(api, "", "Sora_20171010.GetStatsReport", nil, poll.Patience)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("GetStatsReport: %v: %s", err, data)
	}
	return m
}
