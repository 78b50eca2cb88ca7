package node

import (
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hayate-sfu/hayate/cluster/clustercert"
	"github.com/hayate-sfu/hayate/config"
)

// TestNewFailsCleanly: a node that cannot start returns an error naming
// the cause (it used to panic while releasing what it had bound).
func TestNewFailsCleanly(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	if err := clustercert.WriteCA(filepath.Join(dir, "ca"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := clustercert.WriteNode(filepath.Join(dir, "ca"), "someone-else", filepath.Join(dir, "n"), time.Hour); err != nil {
		t.Fatal(err)
	}
	for what, c := range map[string]struct {
		edit func(*config.Config)
		want string
	}{
		"signaling port in use": {func(c *config.Config) { c.SignalingPort = busy.Addr().(*net.TCPAddr).Port }, "signaling_port"},
		"another node's certificate": {func(c *config.Config) {
			clusterEdit(t, "n1")(c)
			c.ClusterTLSCAFile = filepath.Join(dir, "n", clustercert.CAFile)
			c.ClusterTLSCertFile = filepath.Join(dir, "n", clustercert.NodeFile)
			c.ClusterTLSKeyFile = filepath.Join(dir, "n", clustercert.NodeKeyFile)
		}, `names "someone-else", but cluster_node_name is "n1"`},
	} {
		cfg := config.Default()
		cfg.SignalingPort, cfg.APIPort, cfg.MediaPort = 0, 0, 0
		cfg.TURNUDPListenPort, cfg.TURNTCPListenPort = 0, 0
		c.edit(&cfg)
		n, err := New(cfg, testLogger(t))
		if err == nil || n != nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: New = %v, %v; want an error naming %q", what, n, err, c.want)
		}
	}
}
