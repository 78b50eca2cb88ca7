package main

import (
	"bufio"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// netns creates a network namespace of the test's own with loopback up and
// a veth pair whose one end carries addr (not a loopback address), and
// deletes it at the end. Tests run as root; a namespace that cannot be
// made fails the test (it never skips).
func netns(t *testing.T, addr string) string {
	t.Helper()
	ns := fmt.Sprintf("hayate-t%d-%d", os.Getpid(), rand.IntN(1<<20))
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s (the test needs root and network namespaces)", strings.Join(args, " "), err, out)
		}
	}
	ip("netns", "add", ns)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	ip("-n", ns, "link", "set", "lo", "up")
	ip("-n", ns, "link", "add", "h0", "type", "veth", "peer", "name", "h1")
	ip("-n", ns, "addr", "add", addr+"/24", "dev", "h0")
	ip("-n", ns, "link", "set", "h0", "up")
	ip("-n", ns, "link", "set", "h1", "up")
	return ns
}

// nsRun runs hayate inside ns until it prints its ready line (ready true;
// the process is killed at the end of the test) or exits (its exit code).
func nsRun(t *testing.T, ns string, args ...string) (log string, ready bool, code int) {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, binary}, args...)...)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var buf bytes.Buffer
	readyCh, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			mu.Lock()
			buf.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if strings.Contains(sc.Text(), `msg="hayate ready"`) {
				once.Do(func() { close(readyCh) })
			}
		}
	}()
	text := func() string { mu.Lock(); defer mu.Unlock(); return buf.String() }
	select {
	case <-readyCh:
		t.Cleanup(func() { cmd.Process.Kill(); <-done; cmd.Wait() })
		return text(), true, 0
	case <-done:
		err := cmd.Wait()
		if ee, ok := err.(*exec.ExitError); ok {
			return text(), false, ee.ExitCode()
		}
		return text(), false, 0
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("hayate neither ready nor exited:\n%s", text())
		return "", false, 0
	}
}

// TestNonLoopbackClusterNeedsCredentials: in a namespace where 10.201.0.1
// is a real address, a cluster node that would bind it — through
// ipv4_address or cluster_address — without credentials refuses to start,
// naming the keys to set. With credentials the same node starts there and
// listens on that address; its API, open beyond loopback without
// api_token, is warned about at start.
func TestNonLoopbackClusterNeedsCredentials(t *testing.T) {
	const addr = "10.201.0.1"
	ns := netns(t, addr)
	node := func(extra ...string) []string {
		return freeArgs(append([]string{"--cluster=true", "--cluster_node_name=n1", "--cluster_port=0", "--cluster_raft_port=0",
			"--cluster_data_dir=" + t.TempDir()}, extra...)...)
	}
	for _, how := range []string{"--ipv4_address=" + addr, "--cluster_address=" + addr} {
		log, ready, code := nsRun(t, ns, node(how)...)
		if ready || code != 2 {
			t.Fatalf("%s without credentials: ready %v, exit code %d:\n%s", how, ready, code, log)
		}
		for _, want := range []string{"cluster_tls_ca_file", "cluster_tls_cert_file", "cluster_tls_key_file", addr, "beyond loopback"} {
			if !strings.Contains(log, want) {
				t.Errorf("%s: the refusal does not name %q:\n%s", how, want, log)
			}
		}
	}
	certs := clusterCerts(t, "n1")
	log, ready, code := nsRun(t, ns, node(append([]string{"--cluster_address=" + addr, "--api_loopback_address_only=false"}, certs[0]...)...)...)
	if !ready {
		t.Fatalf("with credentials: exit code %d:\n%s", code, log)
	}
	if !strings.Contains(log, "cluster_rpc="+addr+":") || !strings.Contains(log, "tls=true") {
		t.Errorf("the node does not listen on %s with TLS:\n%s", addr, log)
	}
	if !strings.Contains(log, "level=WARN") || !strings.Contains(log, "without api_token") {
		t.Errorf("no warning about the API beyond loopback without api_token:\n%s", log)
	}
}
