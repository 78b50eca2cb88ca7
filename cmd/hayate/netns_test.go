package main

import (
	"context"
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/hayate-sfu/hayate/internal/poll"
)

// TestNonLoopbackClusterNeedsCredentials: in a network namespace of the
// test's own, where a veth pair gives 10.201.0.1 to the node (a real
// address, not loopback), a cluster node that would bind it — through
// ipv4_address or cluster_address — without credentials refuses to start,
// naming the keys to set. With credentials the same node starts there and
// listens on that address; its API, open beyond loopback without
// api_token, is warned about at start. The namespace cannot fail to exist:
// if it cannot be made, the test fails (netns.Isolate).
func TestNonLoopbackClusterNeedsCredentials(t *testing.T) {
	if !isolated(t) {
		return
	}
	const addr = "10.201.0.1"
	for _, args := range [][]string{
		{"link", "add", "h0", "type", "veth", "peer", "name", "h1"},
		{"addr", "add", addr + "/24", "dev", "h0"},
		{"link", "set", "h0", "up"},
		{"link", "set", "h1", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	node := func(extra ...string) []string {
		return freeArgs(append([]string{"--cluster=true", "--cluster_node_name=n1", "--cluster_port=0", "--cluster_raft_port=0",
			"--cluster_data_dir=" + t.TempDir()}, extra...)...)
	}
	for _, how := range []string{"--ipv4_address=" + addr, "--cluster_address=" + addr} {
		ctx, cancel := context.WithTimeout(context.Background(), poll.Patience)
		out, err := exec.CommandContext(ctx, binary, node(how)...).CombinedOutput()
		cancel()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Fatalf("%s without credentials: %v (want exit code 2):\n%s", how, err, out)
		}
		for _, want := range []string{"cluster_tls_ca_file", "cluster_tls_cert_file", "cluster_tls_key_file", addr, "beyond loopback"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("%s: the refusal does not name %q:\n%s", how, want, out)
			}
		}
	}
	certs := clusterCerts(t, "n1")
	p := start(t, node(append([]string{"--cluster_address=" + addr, "--api_loopback_address_only=false"}, certs[0]...)...)...)
	log := p.logText()
	if !strings.Contains(log, "cluster_rpc="+addr+":") || !strings.Contains(log, "tls=true") {
		t.Errorf("the node does not listen on %s with TLS:\n%s", addr, log)
	}
	if !strings.Contains(log, "level=WARN") || !strings.Contains(log, "without api_token") {
		t.Errorf("no warning about the API beyond loopback without api_token:\n%s", log)
	}
}
