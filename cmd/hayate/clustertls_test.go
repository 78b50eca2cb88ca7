package main

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hayate-sfu/hayate/internal/poll"
)

// clusterCerts makes a cluster CA and one certificate per name with
// `hayate cluster-cert`, and returns each node's flags that use them.
func clusterCerts(t *testing.T, names ...string) [][]string {
	t.Helper()
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca")
	runBinary(t, "cluster-cert", "ca", "-out", ca)
	var flags [][]string
	for i, name := range names {
		out := runBinary(t, "cluster-cert", "node", "-ca", ca, "-name", name, "-out", filepath.Join(dir, fmt.Sprint(i)))
		var f []string
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			k, v, ok := strings.Cut(line, " = ")
			if !ok {
				t.Fatalf("cluster-cert printed %q", line)
			}
			if strings.HasPrefix(k, "cluster_tls_") {
				f = append(f, "--"+k+"="+v)
			}
		}
		if len(f) != 3 {
			t.Fatalf("cluster-cert node printed %q", out)
		}
		flags = append(flags, f)
	}
	return flags
}

func runBinary(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(binary, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("hayate %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

var clusterRPCRE = regexp.MustCompile(`cluster_rpc=(\S+)`)

// clusterNode starts a cluster node on free loopback ports.
func clusterNode(t *testing.T, name string, extra ...string) (*proc, string) {
	t.Helper()
	p := start(t, freeArgs(append([]string{"--cluster=true", "--cluster_node_name=" + name, "--cluster_port=0", "--cluster_raft_port=0",
		"--cluster_data_dir=" + t.TempDir(), "--cluster_heartbeat_interval=200 ms", "--cluster_lease_ttl=1 s", "--cluster_lease_grace=500 ms"}, extra...)...)...)
	m := clusterRPCRE.FindStringSubmatch(p.logText())
	if m == nil {
		t.Fatalf("no cluster_rpc in the ready line:\n%s", p.logText())
	}
	return p, m[1]
}

// TestClusterRefusesOutsiderProcesses: a node of a cluster with
// credentials, and two hayate processes that ask it to let them join: one
// with another cluster's credentials, one with none. Neither joins; the
// member's log names each refused peer; the member keeps serving.
func TestClusterRefusesOutsiderProcesses(t *testing.T) {
	certs := clusterCerts(t, "member")
	member, rpc := clusterNode(t, "member", certs[0]...)
	apiJSON(t, member.api, "Sora_20221221.InitCluster", `{"node_name_list":["`+rpc+`"]}`, nil)
	poll.Soon(t, "the member in normal mode", func() bool {
		var list []clusterNodeStatus
		apiJSON(t, member.api, "Sora_20211215.ListClusterNodes", "", &list)
		return len(list) == 1 && list[0].Mode == "normal"
	})

	foreign, _ := clusterNode(t, "foreign", clusterCerts(t, "foreign")[0]...)
	plain, _ := clusterNode(t, "plain")
	var wg sync.WaitGroup
	for _, o := range []*proc{foreign, plain} {
		wg.Go(func() {
			body := `{"contact_node_name":"` + rpc + `"}`
			out, err := call(o.api, "", "Sora_20211215.RegisterClusterNode", json.RawMessage(body), 3*time.Second)
			switch {
			case err == nil:
				t.Errorf("an outsider joined: %s", out)
			case !strings.Contains(err.Error(), "CLUSTER") && !strings.Contains(err.Error(), "Timeout"):
				t.Errorf("RegisterClusterNode failed before trying: %v", err) // a bad request is no proof
			default:
				t.Logf("RegisterClusterNode: %v", err)
			}
		})
	}
	wg.Wait()

	for what, reason := range map[string]string{
		"another cluster's certificate": `remote error: tls: bad certificate`, // it refused the member's certificate first
		"no TLS at all":                 `first record does not look like a TLS handshake`,
	} {
		poll.Soon(t, "the member's log naming the refused peer with "+what, func() bool {
			for _, line := range strings.Split(member.logText(), "\n") {
				if strings.Contains(line, `msg="cluster: refused peer"`) && strings.Contains(line, "peer=127.0.0.1:") && strings.Contains(line, reason) {
					return true
				}
			}
			return false
		})
	}
	var list []clusterNodeStatus
	apiJSON(t, member.api, "Sora_20211215.ListClusterNodes", "", &list)
	if len(list) != 1 || list[0].Name != "member" {
		t.Fatalf("cluster nodes after the outsiders: %+v", list)
	}
	joinFollowing(t, member.signaling, "still-serving")
}
