package node

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hayate-sfu/hayate/config"
	"github.com/hayate-sfu/hayate/internal/poll"
	"github.com/hayate-sfu/hayate/internal/sigclient"
)

// testLogger sends the node's warnings and errors to the test log, until
// the test's cleanups are done: goroutines that outlive a node's Close by a
// moment (raft's connection handlers log their shutdown) must not call
// t.Log after the test has ended, which panics.
func testLogger(t testing.TB) *slog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.stop) // registered first: runs after the nodes' own cleanups
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// startNode runs a node on loopback with free ports; edit adjusts its config.
func startNode(t testing.TB, edit func(*config.Config)) *Node {
	t.Helper()
	return startNodeLog(t, testLogger(t), edit)
}

// startNodeLog is startNode with the node's logger.
func startNodeLog(t testing.TB, log *slog.Logger, edit func(*config.Config)) *Node {
	t.Helper()
	cfg := config.Default()
	cfg.SignalingPort, cfg.APIPort, cfg.MediaPort = 0, 0, 0
	cfg.TURNUDPListenPort, cfg.TURNTCPListenPort, cfg.TURNTLSListenPort, cfg.ICETCPPort = 0, 0, 0, 0
	cfg.MediaSockets = 1
	// Tests with signaling-only clients answer with a made-up transport;
	// the media liveness timeout must not end them.
	cfg.ICEConnectionStateFailedTimeout = 5 * time.Minute
	// Clients that read nothing answer no ping: a test that runs long on a
	// loaded machine must not lose them to the pong timeout (the tests of
	// that timeout set their own).
	cfg.SignalingPongTimeout = time.Hour
	if edit != nil {
		edit(&cfg)
	}
	n, err := New(cfg, log)
	if err != nil {
		t.Fatalf("node.New: %v", err)
	}
	n.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		defer cancel()
		n.Close(ctx)
	})
	return n
}

func (n *Node) signalingURL() string { return "ws://" + n.SignalingAddr().String() + "/signaling" }
func (n *Node) apiURL() string       { return "http://" + n.APIAddr().String() + "/" }

// dial opens a signaling WebSocket to n.
func dial(t testing.TB, n *Node) *sigclient.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	c, err := sigclient.Dial(ctx, n.signalingURL())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func connectMsg(channel, role string) map[string]any {
	return map[string]any{"type": "connect", "role": role, "channel_id": channel, "sora_client": "hayate-test"}
}

// patience bounds every wait for something that should happen soon
// (poll.Patience: sized for a loaded machine; it costs nothing when the
// event comes early).
const patience = poll.Patience

func soon() time.Time { return time.Now().Add(patience) }

// join connects a client and completes the answer; the returned client is live.
func join(t testing.TB, n *Node, channel, role string) (*sigclient.Client, *sigclient.Offer) {
	t.Helper()
	c := dial(t, n)
	o, err := c.Connect(connectMsg(channel, role), soon())
	if err != nil {
		t.Fatalf("connect %s to %q: %v", role, channel, err)
	}
	answer(t, c, o)
	return c, o
}

func answer(t testing.TB, c *sigclient.Client, o *sigclient.Offer) {
	t.Helper()
	sdp, err := sigclient.Answer(o.SDP, sigclient.AnswerParams{Ufrag: "tufr", Pwd: "0123456789abcdef0123456789", Fingerprint: testFingerprint})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SendJSON(map[string]string{"type": "answer", "sdp": sdp}); err != nil {
		t.Fatal(err)
	}
}

const testFingerprint = "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF"

// expectClosed asserts that connecting is refused with code and reason.
func expectClosed(t testing.TB, err error, code int, reason string) {
	t.Helper()
	var cl *sigclient.Closed
	if !errors.As(err, &cl) {
		t.Fatalf("want close %d %s, got %v", code, reason, err)
	}
	if cl.Code != code || cl.Reason != reason {
		t.Fatalf("want close %d %q, got %d %q", code, reason, cl.Code, cl.Reason)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	poll.Until(t, what, d, cond)
}

// apiCall posts one API operation and returns the status and decoded body.
func apiCall(t testing.TB, n *Node, target string, body string) (int, map[string]any, []byte) {
	t.Helper()
	st, data := apiRaw(t, n, target, body)
	var m map[string]any
	_ = json.Unmarshal(data, &m)
	return st, m, data
}

func setMode(t testing.TB, n *Node, m string) {
	t.Helper()
	st, body, raw := apiCall(t, n, "Sora_20211215.ChangeMode", `{"mode":"`+m+`"}`)
	if st != 200 || body["mode"] != m {
		t.Fatalf("ChangeMode %s: %d %s", m, st, raw)
	}
}

// hookReceiver is a real HTTP webhook receiver that records every body.
type hookReceiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	got  []map[string]any
	hdrs []http.Header
	// strict lists the bodies that did not decode into Sora's strict
	// types (sorahooks_test.go); the test fails with them at its end.
	strict []string
	// respond, if set, writes the answer (auth webhook tests).
	respond func(w http.ResponseWriter, body map[string]any)
}

func newHookReceiver(t testing.TB) *hookReceiver {
	r := &hookReceiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		data, _ := io.ReadAll(req.Body)
		var m map[string]any
		_ = json.Unmarshal(data, &m)
		strictErr := checkSoraBody(data)
		r.mu.Lock()
		if strictErr != nil {
			r.strict = append(r.strict, fmt.Sprintf("%v in %s", strictErr, data))
		}
		r.got = append(r.got, m)
		r.hdrs = append(r.hdrs, req.Header.Clone())
		respond := r.respond
		r.mu.Unlock()
		if respond != nil {
			respond(w, m)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(func() {
		r.srv.Close()
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, e := range r.strict {
			t.Errorf("webhook body is not Sora's: %s", e)
		}
	})
	return r
}

func (r *hookReceiver) url() string { return r.srv.URL + "/hook" }

// ofType returns the received bodies whose type is typ.
func (r *hookReceiver) ofType(typ string) []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]any
	for _, m := range r.got {
		if m["type"] == typ {
			out = append(out, m)
		}
	}
	return out
}

func (r *hookReceiver) count(typ string) int { return len(r.ofType(typ)) }

func (r *hookReceiver) all() []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]map[string]any(nil), r.got...)
}

// goroutineBaseline records the goroutine count; check waits for it to come back.
func goroutineBaseline() int { return runtime.NumGoroutine() }

// Idle keep-alive connections of HTTP clients (the test's API client, the
// node's webhook senders) are closed first: they are a cache, not a leak.
func checkGoroutines(t testing.TB, base int, nodes ...*Node) {
	t.Helper()
	closeIdle := func() {
		http.DefaultClient.CloseIdleConnections()
		for _, n := range nodes {
			n.sessionQ.CloseIdleConnections()
			n.eventQ.CloseIdleConnections()
			n.auth.CloseIdleConnections()
		}
	}
	deadline := soon()
	for closeIdle(); runtime.NumGoroutine() > base; closeIdle() {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("goroutines: %d, baseline %d\n%s", runtime.NumGoroutine(), base, bytes.TrimSpace(buf[:n]))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// hangingAuth is an auth webhook that admits everyone at once, except
// connects to channel, which it holds until the test ends.
func hangingAuth(t testing.TB, channel string) *hookReceiver {
	release := make(chan struct{})
	r := newHookReceiver(t)
	r.respond = func(w http.ResponseWriter, body map[string]any) {
		if body["channel_id"] == channel {
			<-release
		}
		w.Write([]byte(`{"allowed":true}`))
	}
	t.Cleanup(func() { close(release) }) // runs before the receiver closes
	return r
}
