package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hayate-sfu/hayate/internal/clientproc"
	"github.com/hayate-sfu/hayate/internal/netns"
	"github.com/hayate-sfu/hayate/internal/poll"
	"github.com/hayate-sfu/hayate/internal/sigclient"
)

var binary string

// envBinary passes the built binary to a test binary re-executed in a
// network namespace (netns.Isolate), which then does not build it again.
const envBinary = "HAYATE_TEST_BINARY"

func TestMain(m *testing.M) {
	clientproc.Serve()
	if b := os.Getenv(envBinary); b != "" {
		binary = b
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "hayate-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "hayate")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// isolated runs the test in a network namespace of its own (see
// netns.Isolate) and reports whether this is the run that does the work.
func isolated(t *testing.T) bool { return netns.Isolate(t, envBinary+"="+binary) }

// proc is a running hayate binary.
type proc struct {
	cmd       *exec.Cmd
	signaling string
	api       string
	mu        sync.Mutex
	log       bytes.Buffer
	done      chan struct{}
	err       error
}

var readyRE = regexp.MustCompile(`msg="hayate ready" signaling=(\S+) api=(\S+) media=(\S+)`)

// start runs the binary with args and waits for its ready line.
func start(t *testing.T, args ...string) *proc {
	t.Helper()
	return startEnv(t, nil, args...)
}

// startEnv is start with extra environment variables.
func startEnv(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binary, args...), done: make(chan struct{})}
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	stderr, _ := p.cmd.StderrPipe()
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.log.WriteString(line + "\n")
			p.mu.Unlock()
			if m := readyRE.FindStringSubmatch(line); m != nil {
				ready <- m
			}
		}
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("hayate log:\n%s", p.logText())
		}
	})
	select {
	case m := <-ready:
		p.signaling, p.api = "ws://"+m[1]+"/signaling", "http://"+m[2]+"/"
	case <-p.done:
		t.Fatalf("hayate exited before ready: %v\n%s", p.err, p.logText())
	case <-time.After(poll.Patience):
		t.Fatal("no ready line")
	}
	return p
}

// waitLog waits until the process has logged a line matching re and
// returns it.
func (p *proc) waitLog(t *testing.T, re *regexp.Regexp) string {
	t.Helper()
	var line string
	poll.Soon(t, "a log line matching "+re.String(), func() bool {
		line = re.FindString(p.logText())
		return line != ""
	})
	return line
}

func (p *proc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("hayate still running after %v", d)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0
}

func freeArgs(extra ...string) []string {
	return append([]string{"--signaling_port=0", "--api_port=0", "--media_port=0", "--turn_udp_listen_port=0", "--turn_tcp_listen_port=0",
		"--ice_connection_state_failed_timeout=5 min"}, extra...)
}

func joinLive(t *testing.T, url, channel string) *sigclient.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), poll.Patience)
	defer cancel()
	c, err := sigclient.Dial(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	o, err := c.Connect(map[string]any{"type": "connect", "role": "sendrecv", "channel_id": channel}, soon())
	if err != nil {
		t.Fatal(err)
	}
	answerFake(t, c, o)
	return c
}

// answerFake answers an offer with a made-up transport (signaling-only
// clients: the node runs with a long ice_connection_state_failed_timeout).
func answerFake(t *testing.T, c *sigclient.Client, o *sigclient.Offer) {
	t.Helper()
	sdp, err := sigclient.Answer(o.SDP, sigclient.AnswerParams{Ufrag: "abcd", Pwd: "abcdefghijklmnopqrstuvwxyz",
		Fingerprint: "00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.SendJSON(map[string]string{"type": "answer", "sdp": sdp}); err != nil {
		t.Fatal(err)
	}
}

func connectErr(t *testing.T, url, channel string) error {
	ctx, cancel := context.WithTimeout(context.Background(), poll.Patience)
	defer cancel()
	c, err := sigclient.Dial(ctx, url)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Connect(map[string]any{"type": "connect", "role": "sendrecv", "channel_id": channel}, soon())
	return err
}

// soon is the deadline of something that should happen soon.
func soon() time.Time { return time.Now().Add(poll.Patience) }

// drainingRE is the node's log line once SIGTERM has switched it to
// block_new_connection.
var drainingRE = regexp.MustCompile(`msg="signal received: draining"`)

// expectRefusedAtOnce asserts that the first connect after the node logged
// that it is draining is refused: no connect can slip in after SIGTERM.
func expectRefusedAtOnce(t *testing.T, p *proc, channel string) {
	t.Helper()
	p.waitLog(t, drainingRE)
	err := connectErr(t, p.signaling, channel)
	var cl *sigclient.Closed
	if !errors.As(err, &cl) || cl.Code != 4503 || cl.Reason != "BLOCKED-NEW-CONNECTION" {
		t.Fatalf("the first connect after SIGTERM: %v, want 4503 BLOCKED-NEW-CONNECTION", err)
	}
}

// TestSIGTERMDrain: with live connections, SIGTERM makes the node refuse new
// ones at once, keep the live ones until they leave, then exit 0.
func TestSIGTERMDrain(t *testing.T) {
	p := start(t, freeArgs("--drain_timeout=30 s", "--signaling_ping_interval=100 ms")...)
	live := joinLive(t, p.signaling, "room")
	live2 := joinLive(t, p.signaling, "room2")
	p.cmd.Process.Signal(syscall.SIGTERM)
	expectRefusedAtOnce(t, p, "room")
	// The live connections are kept: they still get pings.
	for _, c := range []*sigclient.Client{live, live2} {
		c.AutoPong = false
		msg, err := c.ReadMessage(soon())
		for err == nil && !strings.Contains(string(msg), "ping") {
			msg, err = c.ReadMessage(soon())
		}
		if err != nil {
			t.Fatalf("live connection dropped during drain: %v", err)
		}
	}
	select {
	case <-p.done:
		t.Fatal("exited with sessions live")
	default:
	}
	if cl, err := live.Disconnect(soon()); err != nil || cl.Code != 1000 {
		t.Fatal(cl, err)
	}
	if cl, err := live2.Disconnect(soon()); err != nil || cl.Code != 1000 {
		t.Fatal(cl, err)
	}
	if code := p.wait(t, poll.Patience); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if !strings.Contains(p.logText(), "drained: no sessions left") {
		t.Fatalf("log lacks the drain line:\n%s", p.logText())
	}
}

// TestSIGTERMDrainTimeout: connections still live when drain_timeout passes
// are closed with 1001 SERVER-SHUTDOWN and the node exits 0.
func TestSIGTERMDrainTimeout(t *testing.T) {
	p := start(t, freeArgs("--drain_timeout=500 ms")...)
	live := joinLive(t, p.signaling, "room")
	start := time.Now()
	p.cmd.Process.Signal(syscall.SIGTERM)
	cl, err := live.AwaitClose(soon())
	if err != nil || cl.Code != 1001 || cl.Reason != "SERVER-SHUTDOWN" {
		t.Fatalf("live connection closed with %v %v", cl, err)
	}
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Fatalf("closed after %v, before drain_timeout", d)
	}
	if code := p.wait(t, poll.Patience); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

func TestCtl(t *testing.T) {
	p := start(t, freeArgs()...)
	run := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := ctl(append([]string{"-api", p.api}, args...), &out, &errOut)
		return code, strings.TrimSpace(out.String()), errOut.String()
	}
	if code, out, _ := run("mode", "get"); code != 0 || out != "normal" {
		t.Fatalf("mode get: %d %q", code, out)
	}
	if code, out, _ := run("mode", "set", "block_new_session"); code != 0 || out != "block_new_session" {
		t.Fatalf("mode set: %d %q", code, out)
	}
	if code, out, _ := run("mode", "get"); code != 0 || out != "block_new_session" {
		t.Fatalf("mode get after set: %d %q", code, out)
	}
	if code, _, errOut := run("mode", "set", "closed"); code != 1 || !strings.Contains(errOut, "INVALID-MODE") {
		t.Fatalf("invalid mode: %d %q", code, errOut)
	}
	if code, _, _ := run("frobnicate"); code != 2 {
		t.Fatalf("usage error code %d", code)
	}
}

func TestInitialModeAndConfigFile(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "hayate.conf")
	os.WriteFile(conf, []byte("# test\nsignaling_port = 0\napi_port = 0\nmedia_port = 0\nturn = false\ninitial_mode = block_new_connection\n"), 0o644)
	p := start(t, "-config", conf)
	err := connectErr(t, p.signaling, "x")
	var cl *sigclient.Closed
	if !errors.As(err, &cl) || cl.Code != 4503 || cl.Reason != "BLOCKED-NEW-CONNECTION" {
		t.Fatalf("connect in initial block_new_connection: %v", err)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, poll.Patience); code != 0 {
		t.Fatalf("exit %d", code)
	}
}

func TestBadConfigExits2(t *testing.T) {
	var errOut bytes.Buffer
	if code := run([]string{"--api_port=x"}, io.Discard, &errOut); code != 2 || !strings.Contains(errOut.String(), "api_port") {
		t.Fatalf("code %d: %s", code, errOut.String())
	}
	errOut.Reset()
	if code := run([]string{"--initial_mode=closed"}, io.Discard, &errOut); code != 2 || !strings.Contains(errOut.String(), "invalid mode") {
		t.Fatalf("code %d: %s", code, errOut.String())
	}
}

// TestDefaults runs the binary exactly as `make run` does, with no flags and
// no config file, and checks it serves on the documented defaults (in a
// network namespace of its own, where the default ports are free).
func TestDefaults(t *testing.T) {
	if !isolated(t) {
		return
	}
	p := start(t)
	if p.signaling != "ws://127.0.0.1:5000/signaling" || p.api != "http://127.0.0.1:3000/" ||
		!strings.Contains(p.logText(), "media=127.0.0.1:50000") {
		t.Fatalf("defaults: %s %s\n%s", p.signaling, p.api, p.logText())
	}
	var out bytes.Buffer
	if code := ctl([]string{"mode", "get"}, &out, io.Discard); code != 0 || strings.TrimSpace(out.String()) != "normal" {
		t.Fatalf("ctl against the default API port: %d %q", code, out.String())
	}
	c := joinLive(t, p.signaling, "defaults")
	if cl, err := c.Disconnect(soon()); err != nil || cl.Code != 1000 {
		t.Fatal(cl, err)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	if code := p.wait(t, poll.Patience); code != 0 {
		t.Fatalf("exit %d", code)
	}
}
