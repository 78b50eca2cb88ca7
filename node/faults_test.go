//go:build unix

package node

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hayate-sfu/hayate/config"
	"github.com/hayate-sfu/hayate/internal/clientproc"
)

func TestMain(m *testing.M) {
	clientproc.Serve()
	os.Exit(m.Run())
}

// startClientProcess starts a client process (package clientproc) in
// channel and returns it with its connection_id once it is connected.
func startClientProcess(t *testing.T, n *Node, channel string) (*exec.Cmd, string) {
	t.Helper()
	return clientproc.Start(t, n.signalingURL(), channel)
}

// destroyedReason returns the reason of connection.destroyed for id, or "".
func destroyedReason(r *hookReceiver, id string) string {
	for _, d := range r.ofType("connection.destroyed") {
		if d["connection_id"] == id {
			return d["data"].(map[string]any)["reason"].(string)
		}
	}
	return ""
}

// TestClientProcessVanishes: a client whose process is killed, and one
// whose process is stopped (its TCP and UDP go silent without any close),
// are each cleaned up with connection.destroyed; the stopped one after
// ice_connection_state_failed_timeout. The channel's other client stays.
func TestClientProcessVanishes(t *testing.T) {
	ev := newHookReceiver(t)
	n := startNode(t, func(c *config.Config) {
		c.ICEConnectionStateFailedTimeout = time.Second
		c.SignalingPongTimeout = time.Minute
		c.EventWebhookURL = ev.url()
	})
	stay := newCall(t, n, "vanish")
	killed, killedID := startClientProcess(t, n, "vanish")
	stopped, stoppedID := startClientProcess(t, n, "vanish")
	waitFor(t, "four connections", patience, func() bool { return len(n.hub.ListConnections("vanish")) == 4 })

	killed.Process.Kill()
	waitFor(t, "connection.destroyed of the killed client", patience, func() bool { return destroyedReason(ev, killedID) != "" })

	stopped.Process.Signal(syscall.SIGSTOP)
	start := time.Now()
	waitFor(t, "connection.destroyed of the stopped client", patience, func() bool { return destroyedReason(ev, stoppedID) != "" })
	if d := time.Since(start); d < 800*time.Millisecond {
		t.Fatalf("stopped client destroyed after %v, before the liveness timeout", d)
	}
	if r := destroyedReason(ev, stoppedID); r != "ICE-CONNECTION-STATE-FAILED" {
		t.Fatalf("stopped client destroyed with %q", r)
	}
	if got := len(n.hub.ListConnections("vanish")); got != 2 {
		t.Fatalf("%d connections left, want the 2 that stayed", got)
	}
	// The clients that stayed still exchange media.
	stay.expectFlow(t, "media after the clean-up")
}

// TestSlowAuthForOneChannel: an auth webhook that hangs for one channel
// delays only that channel's connects; connects to other channels are
// admitted meanwhile, all of them while the slow ones still wait.
func TestSlowAuthForOneChannel(t *testing.T) {
	release := make(chan struct{})
	auth := newHookReceiver(t)
	auth.respond = func(w http.ResponseWriter, body map[string]any) {
		if body["channel_id"] == "slow" {
			<-release
		}
		w.Write([]byte(`{"allowed":true}`))
	}
	n := startNode(t, func(c *config.Config) {
		c.AuthWebhookURL = auth.url()
		c.WebhookResponseTimeout = patience
	})
	var wg sync.WaitGroup
	var slowDone atomic.Int32
	slowErr := make([]error, 5)
	for i := range slowErr {
		wg.Go(func() {
			cl := dial(t, n)
			_, slowErr[i] = cl.Connect(connectMsg("slow", "sendrecv"), soon())
			slowDone.Add(1)
		})
	}
	waitFor(t, "the slow connects to reach the webhook", patience, func() bool { return n.hub.Pending() == 5 })
	for i := range 20 {
		join(t, n, fmt.Sprintf("fast-%d", i%4), "sendrecv")
	}
	if d := slowDone.Load(); d != 0 || n.hub.Pending() != 5 {
		t.Fatalf("%d slow connects answered before the fast ones were all admitted (pending %d)", d, n.hub.Pending())
	}
	close(release)
	wg.Wait()
	for _, err := range slowErr {
		if err != nil {
			t.Fatalf("slow connect, once the webhook answered: %v", err)
		}
	}
}

// TestSlowHookReceivers: session and event receivers that hang never slow
// a connect; what does not fit the queue is dropped and counted, and every
// event is accounted for: delivered, failed or dropped.
func TestSlowHookReceivers(t *testing.T) {
	release := make(chan struct{})
	hook := newHookReceiver(t)
	hook.respond = func(w http.ResponseWriter, _ map[string]any) { <-release }
	n := startNode(t, func(c *config.Config) {
		c.EventWebhookURL, c.SessionWebhookURL = hook.url()+"?events", hook.url()+"?sessions"
		c.WebhookQueueSize, c.WebhookWorkers = 4, 1
		c.WebhookResponseTimeout = 30 * time.Second
	})
	// The receivers answer nothing until release: every join and leave
	// completing before it shows none waits for them.
	for i := range 20 {
		c, _ := join(t, n, fmt.Sprintf("ch-%d", i), "sendrecv")
		if _, err := c.Disconnect(soon()); err != nil {
			t.Fatal(err)
		}
	}
	stats := func() map[string]any { _, s, _ := apiCall(t, n, "Sora_20171010.GetStatsReport", ""); return s }
	s := stats()
	if s["total_ignored_event_webhook"].(float64) == 0 || s["total_ignored_session_webhook"].(float64) == 0 {
		t.Fatalf("nothing dropped with a queue of 4: %v", s)
	}
	close(release)
	// 20 connections: created + destroyed each; 20 sessions: created + destroyed each.
	for _, kind := range []string{"event", "session"} {
		waitFor(t, kind+" webhooks accounted for", patience, func() bool {
			s := stats()
			sum := s["total_successful_"+kind+"_webhook"].(float64) + s["total_failed_"+kind+"_webhook"].(float64) +
				s["total_ignored_"+kind+"_webhook"].(float64)
			return sum == 40
		})
	}
	s = stats()
	if got := float64(hook.count("connection.created") + hook.count("connection.destroyed")); got != s["total_successful_event_webhook"].(float64) {
		t.Fatalf("receiver got %v events, node counts %v delivered", got, s["total_successful_event_webhook"])
	}
}
