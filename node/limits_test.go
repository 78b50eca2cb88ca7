package node

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hayate-sfu/hayate/config"
	"github.com/hayate-sfu/hayate/internal/logbuf"
	"github.com/hayate-sfu/hayate/internal/sigclient"
)

// refusedLimit reads refused_connections.LIMIT from GetStatsReport.
func refusedLimit(t *testing.T, n *Node) float64 {
	t.Helper()
	_, s, _ := apiCall(t, n, "Sora_20171010.GetStatsReport", "")
	return s["refused_connections"].(map[string]any)["LIMIT"].(float64)
}

// TestMaxConnections: the node admits max_connections at once, refuses the
// next with 4429 MAX-CONNECTIONS (counted, with connection.failed), and
// admits again once one has left.
func TestMaxConnections(t *testing.T) {
	ev := newHookReceiver(t)
	n := startNode(t, func(c *config.Config) { c.MaxConnections = 3; c.EventWebhookURL = ev.url() })
	var live []*sigclient.Client
	for i := range 3 {
		c, _ := join(t, n, []string{"a", "b", "a"}[i], "sendrecv")
		live = append(live, c)
	}
	for _, ch := range []string{"a", "c"} { // a live channel and a new one
		_, err := dial(t, n).Connect(connectMsg(ch, "sendrecv"), soon())
		expectClosed(t, err, 4429, "MAX-CONNECTIONS")
	}
	if got := refusedLimit(t, n); got != 2 {
		t.Fatalf("refused_connections.LIMIT = %v, want 2", got)
	}
	waitFor(t, "connection.failed for both refusals", patience, func() bool { return ev.count("connection.failed") == 2 })
	if _, err := live[0].Disconnect(soon()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the connection to leave", patience, func() bool { return n.hub.Connections() == 2 })
	join(t, n, "c", "recvonly")
}

// TestMaxChannelConnections: one channel is capped, the others are not.
func TestMaxChannelConnections(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.MaxChannelConnections = 2 })
	join(t, n, "full", "sendrecv")
	c2, _ := join(t, n, "full", "recvonly")
	_, err := dial(t, n).Connect(connectMsg("full", "sendrecv"), soon())
	expectClosed(t, err, 4429, "MAX-CHANNEL-CONNECTIONS")
	for range 2 {
		join(t, n, "other", "sendrecv")
	}
	if _, err := c2.Disconnect(soon()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a seat in the channel", patience, func() bool { return len(n.hub.ListConnections("full")) == 1 })
	join(t, n, "full", "recvonly")
}

// TestMaxPendingConnections: WebSockets that never send connect (or wait
// for a slow auth webhook) are bounded; the next is closed at once with
// 4429 TOO-MANY-PENDING-CONNECTIONS, admitted connections do not count,
// and a freed slot is reused.
func TestMaxPendingConnections(t *testing.T) {
	auth := hangingAuth(t, "slow")
	n := startNode(t, func(c *config.Config) {
		c.MaxPendingConnections = 2
		c.AuthWebhookURL = auth.url()
		c.WebhookResponseTimeout = 30 * time.Second
	})
	// Admitted connections are not pending.
	for range 3 {
		join(t, n, "live", "sendrecv")
	}
	silent := dial(t, n) // opens the WebSocket, sends nothing
	slow := dial(t, n)
	if err := slow.SendJSON(connectMsg("slow", "sendrecv")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two pending sockets", patience, func() bool { return n.hub.Pending() == 2 })
	cl, err := dial(t, n).AwaitClose(soon())
	if err != nil || cl.Code != 4429 || cl.Reason != "TOO-MANY-PENDING-CONNECTIONS" {
		t.Fatalf("third pending socket: %v %v", cl, err)
	}
	if got := refusedLimit(t, n); got != 1 {
		t.Fatalf("refused_connections.LIMIT = %v", got)
	}
	silent.Close()
	waitFor(t, "the silent socket to be forgotten", patience, func() bool { return n.hub.Pending() == 1 })
	join(t, n, "live", "recvonly")
}

// TestHandshakeTimeout: a TCP connection that sends nothing, half an
// upgrade request, or nothing after a plain HTTP request, is dropped after
// signaling_handshake_timeout; a WebSocket that sends nothing is closed
// with 4408 CONNECT-TIMEOUT.
func TestHandshakeTimeout(t *testing.T) {
	base := goroutineBaseline()
	// Long enough that a client which does send in time is not dropped on
	// a loaded machine; the checks below run at once, so the test waits
	// for one timeout, not five.
	const timeout = time.Second
	n := startNode(t, func(c *config.Config) {
		c.SignalingHandshakeTimeout = timeout
		c.ConnectTimeout = timeout
	})
	dropped := func(name string, send string) error {
		nc, err := net.Dial("tcp", n.SignalingAddr().String())
		if err != nil {
			return err
		}
		defer nc.Close()
		if send != "" {
			if _, err := io.WriteString(nc, send); err != nil {
				return err
			}
		}
		nc.SetReadDeadline(soon())
		br := bufio.NewReader(nc)
		if strings.HasSuffix(send, "\r\n\r\n") {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		if _, err := br.ReadByte(); err != io.EOF {
			return fmt.Errorf("%s: want the server to close the connection, got %v", name, err)
		}
		return nil
	}
	var wg sync.WaitGroup
	errs := make(chan error, 5)
	for _, c := range []struct{ name, send string }{
		{"nothing sent", ""},
		{"half a request", "GET /signaling HTTP/1.1\r\nHost: x\r\n"},
		{"idle after a keep-alive request", "GET /other HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"a request that is no upgrade", "GET /signaling HTTP/1.1\r\nHost: x\r\n\r\n"},
	} {
		wg.Go(func() { errs <- dropped(c.name, c.send) })
	}
	wg.Go(func() {
		cl, err := dial(t, n).AwaitClose(soon())
		if err != nil || cl.Code != 4408 || cl.Reason != "CONNECT-TIMEOUT" {
			errs <- fmt.Errorf("silent WebSocket: %v %v", cl, err)
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	join(t, n, "still-serving", "sendrecv")
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	n.Close(ctx)
	checkGoroutines(t, base, n)
}

// TestPprofNeedsToken: with api_token set, the profiles need it too.
func TestPprofNeedsToken(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.APIToken = "s3cret"; c.DebugPprof = true })
	get := func(path, auth string) int {
		req, _ := http.NewRequest(http.MethodGet, n.apiURL()+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if st := get("debug/pprof/", ""); st != 401 {
		t.Fatalf("pprof without token: %d", st)
	}
	if st := get("debug/pprof/", "Bearer s3cret"); st != 200 {
		t.Fatalf("pprof with token: %d", st)
	}
	if st, body, _ := apiCall(t, n, "Sora_20211215.GetMode", ""); st != 401 || body["error_type"] != "UNAUTHORIZED" {
		t.Fatalf("API without token: %d %v", st, body)
	}
}

// TestLogsCarryNoSecrets: credentials in webhook URLs, tokens in connect
// metadata and API tokens reach neither the debug log nor the clients.
func TestLogsCarryNoSecrets(t *testing.T) {
	dead := refusedAddr(t).String()
	auth := newHookReceiver(t)
	auth.respond = func(w http.ResponseWriter, body map[string]any) {
		w.WriteHeader(http.StatusForbidden)
	}
	authURL := strings.Replace(auth.url(), "http://", "http://hookuser:hookpass-1@", 1) + "?key=query-secret-2"
	var logs logbuf.Buffer
	cfg := config.Default()
	cfg.SignalingPort, cfg.APIPort, cfg.MediaPort, cfg.MediaSockets = 0, 0, 0, 1
	cfg.TURNUDPListenPort, cfg.TURNTCPListenPort = 0, 0
	cfg.AuthWebhookURL = authURL
	cfg.EventWebhookURL = "http://evuser:evpass-3@" + dead + "/events?token=query-secret-4"
	cfg.SessionWebhookURL = "http://" + dead + "/sessions?token=query-secret-5"
	cfg.APIToken = "api-secret-6"
	n, err := New(cfg, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	n.Start()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), patience)
		defer cancel()
		n.Close(ctx)
	}()
	msg := connectMsg("ch", "sendrecv")
	msg["metadata"] = map[string]any{"access_token": "metadata-secret-7"}
	_, err = dial(t, n).Connect(msg, soon())
	expectClosed(t, err, 4502, "AUTH-WEBHOOK-BAD-STATUS")
	if got := auth.all(); len(got) != 1 || got[0]["metadata"].(map[string]any)["access_token"] != "metadata-secret-7" {
		t.Fatalf("auth webhook got %v", got)
	}
	// An API call with a wrong token, and the event webhook failing.
	req, _ := http.NewRequest(http.MethodPost, n.apiURL(), nil)
	req.Header.Set("x-sora-target", "Sora_20211215.GetMode")
	req.Header.Set("Authorization", "Bearer wrong-secret-8")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	waitFor(t, "the event webhook failure to be logged", patience, func() bool {
		return strings.Contains(logs.String(), "/events")
	})
	out := logs.String()
	for _, secret := range []string{"hookpass-1", "query-secret-2", "evpass-3", "query-secret-4", "query-secret-5",
		"api-secret-6", "metadata-secret-7", "wrong-secret-8", "hookuser", "evuser"} {
		if strings.Contains(out, secret) {
			t.Errorf("log carries %q", secret)
		}
	}
	if strings.Contains(out, "goroutine ") {
		t.Error("log carries a stack trace")
	}
	if t.Failed() {
		t.Logf("log:\n%s", out)
	}
}
