package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hayate-sfu/hayate/internal/poll"
	"github.com/hayate-sfu/hayate/internal/promtest"
	"github.com/hayate-sfu/hayate/internal/sigclient"
)

// TestVersion: --version names the VCS revision the binary was built from,
// read from the build information the Go toolchain stamps. The binary is
// built from a clone of this repository's HEAD as `make build` builds it
// (-buildvcs=true: a git worktree, or GOFLAGS=-buildvcs=false, would leave
// the stamp out).
func TestVersion(t *testing.T) {
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Fatalf("git rev-parse: %v", err)
	}
	dir := filepath.Join(t.TempDir(), "clone")
	if out, err := exec.Command("git", "clone", "-q", "--shared", strings.TrimSpace(string(top)), dir).CombinedOutput(); err != nil {
		t.Fatalf("git clone: %v\n%s", err, out)
	}
	head, err := exec.Command("git", "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "hayate")
	build := exec.Command("go", "build", "-buildvcs=true", "-o", bin, "./cmd/hayate")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	for _, arg := range []string{"--version", "-version", "version"} {
		out, err := exec.Command(bin, arg).Output()
		if err != nil {
			t.Fatalf("%s: %v", arg, err)
		}
		want := regexp.MustCompile(`^hayate 2026\.1\.0-dev revision ` + strings.TrimSpace(string(head)) + ` \d{4}-\d\d-\d\dT\S+ go1\.\d+\S*\n$`)
		if !want.Match(out) {
			t.Fatalf("%s printed %q, want %v", arg, out, want)
		}
	}
}

// TestCheck: `hayate check` validates a file without binding its ports (one
// of them is held by this test), and names the bad key of a wrong one.
func TestCheck(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	port := held.Addr().(*net.TCPAddr).Port
	dir := t.TempDir()
	good := filepath.Join(dir, "good.conf")
	os.WriteFile(good, []byte("api_port = "+strconv.Itoa(port)+"\nsignaling_port = "+strconv.Itoa(port)+"\nlog_format = json\n"), 0o644)
	var out, errOut bytes.Buffer
	if code := run([]string{"check", "-config", good}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "configuration OK") {
		t.Fatalf("check good: %d %s %s", code, out.String(), errOut.String())
	}
	bad := filepath.Join(dir, "bad.conf")
	os.WriteFile(bad, []byte("api_port = 3000\nlog_format = yaml\n"), 0o644)
	out.Reset()
	errOut.Reset()
	if code := run([]string{"check", "-config", bad}, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "log_format") {
		t.Fatalf("check bad: %d %s", code, errOut.String())
	}
	// The packaged sample passes.
	if code := run([]string{"check", "-config", "../../packaging/hayate.conf"}, io.Discard, &errOut); code != 0 {
		t.Fatalf("packaging/hayate.conf: %s", errOut.String())
	}
	// sample-config prints it.
	out.Reset()
	if code := run([]string{"sample-config"}, &out, io.Discard); code != 0 || !strings.Contains(out.String(), "\nlog_format = text\n") {
		t.Fatalf("sample-config: %d", code)
	}
}

// TestLogFormatJSON: with log_format = json every log line is one JSON
// object, the ready line included.
func TestLogFormatJSON(t *testing.T) {
	cmd := exec.Command(binary, freeArgs("--log_format=json")...)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	sc := bufio.NewScanner(stderr)
	var ready map[string]any
	for ready == nil && sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("not a JSON line: %q", sc.Text())
		}
		if rec["msg"] == "hayate ready" {
			ready = rec
		}
	}
	if ready == nil || ready["level"] != "INFO" || !strings.HasPrefix(ready["api"].(string), "127.0.0.1:") {
		t.Fatalf("ready record %v", ready)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	for sc.Scan() {
		if !json.Valid(sc.Bytes()) {
			t.Fatalf("not a JSON line: %q", sc.Text())
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v", err)
	}
}

// readyz returns the status of GET /readyz at base (http://host:port/).
func readyz(t *testing.T, base string) int {
	t.Helper()
	resp, err := http.Get(base + "readyz")
	if err != nil {
		t.Fatalf("readyz: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestSIGTERMReadinessAndNotify: run as systemd would with Type=notify, the
// node sends READY=1 once it serves; on SIGTERM it sends STOPPING=1 and
// /readyz (API and signaling ports) turns 503 before the drain is logged,
// so the first answer after that log line is already 503.
func TestSIGTERMReadinessAndNotify(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify")
	nc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	notes := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := nc.Read(buf)
			if err != nil {
				close(notes)
				return
			}
			notes <- string(buf[:n])
		}
	}()
	next := func(want string) string {
		t.Helper()
		for {
			select {
			case s, ok := <-notes:
				if !ok {
					t.Fatalf("notify socket closed waiting for %s", want)
				}
				if strings.Contains(s, want) {
					return s
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("no %s from sd_notify", want)
			}
		}
	}
	p := startEnv(t, []string{"NOTIFY_SOCKET=" + sock}, freeArgs("--drain_timeout=1 min")...)
	if s := next("READY=1"); !strings.Contains(s, "STATUS=serving, mode normal") {
		t.Fatalf("READY message %q", s)
	}
	sigBase := "http://" + strings.TrimSuffix(strings.TrimPrefix(p.signaling, "ws://"), "signaling")
	live := joinLive(t, p.signaling, "room")
	for _, base := range []string{p.api, sigBase} {
		if st := readyz(t, base); st != 200 {
			t.Fatalf("%sreadyz before SIGTERM: %d", base, st)
		}
	}
	sent := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	var flipped time.Duration
	poll.Until(t, "/readyz 503 after SIGTERM", 20*time.Second, func() bool {
		if readyz(t, p.api) == 503 {
			flipped = time.Since(sent)
			return true
		}
		return false
	})
	t.Logf("/readyz turned 503 %v after SIGTERM was sent", flipped)
	next("STOPPING=1")
	poll.Until(t, "drain logged", 20*time.Second, func() bool { return strings.Contains(p.logText(), `msg=draining`) })
	for _, base := range []string{p.api, sigBase} {
		if st := readyz(t, base); st != 503 {
			t.Fatalf("%sreadyz after the drain was logged: %d", base, st)
		}
	}
	if s := next("STATUS=draining: 1 of 1 connections left"); s == "" {
		t.Fatal("no drain status")
	}
	if _, err := live.Disconnect(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

// ctlRun runs `hayate ctl -api API args...` in-process.
func ctlRun(t *testing.T, api string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := ctl(append([]string{"-api", api}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestCtlCommands: ctl shows stats, connections, the drain and cluster
// state as tables, or the API's JSON with -json, and disconnects.
func TestCtlCommands(t *testing.T) {
	p := start(t, freeArgs()...)
	a := joinLive(t, p.signaling, "room")
	joinLive(t, p.signaling, "hall")
	code, out, errOut := ctlRun(t, p.api, "stats")
	if code != 0 || !regexp.MustCompile(`(?m)^total_ongoing_connections\s+2$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^drain\.active\s+false$`).MatchString(out) || !strings.HasPrefix(out, "KEY") {
		t.Fatalf("stats: %d %s %s", code, out, errOut)
	}
	code, out, _ = ctlRun(t, p.api, "connections")
	if code != 0 || !strings.HasPrefix(out, "CHANNEL") || !strings.Contains(out, "\n2 connections\n") ||
		!regexp.MustCompile(`(?m)^hall\s+\S{26}\s+sendrecv\s`).MatchString(out) {
		t.Fatalf("connections: %s", out)
	}
	code, out, _ = ctlRun(t, p.api, "-json", "connections", "room")
	var conns []map[string]any
	if code != 0 || json.Unmarshal([]byte(out), &conns) != nil || len(conns) != 1 || conns[0]["channel_id"] != "room" {
		t.Fatalf("connections -json room: %s", out)
	}
	id := conns[0]["connection_id"].(string)
	code, out, _ = ctlRun(t, p.api, "disconnect", "room", id)
	if code != 0 || out != "disconnected connection "+id+" of channel room\n" {
		t.Fatalf("disconnect: %d %q", code, out)
	}
	if cl, err := a.AwaitClose(time.Now().Add(5 * time.Second)); err != nil || cl.Code != 1000 || cl.Reason != "DISCONNECTED-API" {
		t.Fatalf("disconnected client saw %v %v", cl, err)
	}
	if code, _, errOut := ctlRun(t, p.api, "disconnect", "nowhere"); code != 1 || !strings.Contains(errOut, "CHANNEL-NOT-FOUND") {
		t.Fatalf("disconnect unknown: %d %s", code, errOut)
	}
	// The node removes the connection right after its close.
	poll.Until(t, "ctl drain: no drain, one connection", 20*time.Second, func() bool {
		code, out, _ := ctlRun(t, p.api, "drain")
		return code == 0 && strings.HasPrefix(out, "no drain: mode normal, ready true, 1 connections")
	})
	ctlRun(t, p.api, "mode", "set", "block_new_connection")
	if code, out, _ := ctlRun(t, p.api, "drain"); code != 0 || !regexp.MustCompile(`(?m)^reason\s+operator$`).MatchString(out) ||
		!regexp.MustCompile(`(?m)^connections\s+1 left of 1 \(0% drained\)$`).MatchString(out) {
		t.Fatalf("drain while blocked: %q", out)
	}
	if code, _, errOut := ctlRun(t, p.api, "cluster", "nodes"); code != 1 || !strings.Contains(errOut, "CLUSTER-NOT-ENABLED") {
		t.Fatalf("cluster nodes without cluster: %d %s", code, errOut)
	}
	if code, _, _ := ctlRun(t, p.api, "frobnicate"); code != 2 {
		t.Fatalf("unknown command: %d", code)
	}
}

// TestCtlCluster: ctl's cluster tables on a one-node cluster.
func TestCtlCluster(t *testing.T) {
	p, rpc := clusterNode(t, "solo")
	if _, err := call(p.api, "", "Sora_20221221.InitCluster", map[string]any{"node_name_list": []string{rpc}}, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, "node ready", poll.Patience, func() bool { return readyz(t, p.api) == 200 })
	// Placement takes the node once the table shows its first heartbeat,
	// a moment after its own lease makes it ready.
	poll.Until(t, "a connect served", poll.Patience, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := sigclient.Dial(ctx, p.signaling)
		if err != nil {
			t.Fatal(err)
		}
		o, err := c.Connect(map[string]any{"type": "connect", "role": "sendrecv", "channel_id": "room"}, time.Now().Add(5*time.Second))
		if err != nil {
			c.Close()
			return false
		}
		t.Cleanup(func() { c.Close() })
		answerFake(t, c, o)
		return true
	})
	var out string
	poll.Until(t, "ctl cluster nodes shows the node with its connection", poll.Patience, func() bool {
		var code int
		code, out, _ = ctlRun(t, p.api, "cluster", "nodes")
		return code == 0 && regexp.MustCompile(`(?m)^solo\s+normal\s+true\s+1\s+\d+\s+regular\s+ws://`).MatchString(out)
	})
	code, out, _ := ctlRun(t, p.api, "cluster", "channels")
	if code != 0 || !regexp.MustCompile(`(?m)^room\s+solo\s+\d+\s+\d+$`).MatchString(out) || !strings.HasSuffix(out, "1 channels\n") {
		t.Fatalf("cluster channels: %d\n%s", code, out)
	}
}

// TestPrometheusScrapesDrain: Debian's Prometheus scrapes a running node
// (with its api_token) through a SIGTERM drain; the series it stored follow
// the drain: the node draining, not ready, in block_new_connection, and
// its connections falling as clients leave. promtool passes /metrics
// taken during the drain.
func TestPrometheusScrapesDrain(t *testing.T) {
	p := start(t, freeArgs("--api_token=prom-tok", "--drain_timeout=2 min")...)
	apiHost := strings.TrimSuffix(strings.TrimPrefix(p.api, "http://"), "/")
	prom := promtest.Start(t, apiHost, "/metrics", "prom-tok")
	a := joinLive(t, p.signaling, "room")
	b := joinLive(t, p.signaling, "hall")
	expect := func(what string, want map[string]float64) {
		t.Helper()
		poll.Until(t, what, 30*time.Second, func() bool {
			for expr, v := range want {
				if got, ok := prom.Value(expr); !ok || got != v {
					return false
				}
			}
			return true
		})
	}
	expect("scraped, two connections", map[string]float64{
		`up{job="hayate"}`:         1,
		"sora_ongoing_connections": 2,
		"hayate_ready":             1,
		`hayate_mode{source="effective",mode="normal"}`: 1,
	})
	p.cmd.Process.Signal(syscall.SIGTERM)
	expect("draining", map[string]float64{
		`up{job="hayate"}`:                                            1,
		`hayate_draining{reason="shutdown"}`:                          1,
		"hayate_ready":                                                0,
		"hayate_drain_start_connections":                              2,
		"sora_ongoing_connections":                                    2,
		`hayate_mode{source="health",mode="block_new_connection"}`:    1,
		`hayate_mode{source="effective",mode="block_new_connection"}`: 1,
		`hayate_mode{source="operator",mode="normal"}`:                1,
	})
	// promtool accepts what the node serves mid-drain.
	req, _ := http.NewRequest(http.MethodGet, p.api+"metrics", nil)
	req.Header.Set("Authorization", "Bearer prom-tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	promtest.Check(t, body)

	if _, err := a.Disconnect(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	expect("one left", map[string]float64{
		"sora_ongoing_connections":                  1,
		`sora_connections_total{state="destroyed"}`: 1,
		`hayate_draining{reason="shutdown"}`:        1,
		"hayate_drain_start_connections":            2,
		"hayate_sessions":                           1,
	})
	// The drain's deadline is drain_timeout after its start.
	start, _ := prom.Value("hayate_drain_started_timestamp_seconds")
	deadline, _ := prom.Value("hayate_drain_deadline_timestamp_seconds")
	if d := deadline - start; d < 119.9 || d > 120.1 {
		t.Fatalf("deadline - start = %v s, want 120", d)
	}
	if _, err := b.Disconnect(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 20*time.Second); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
