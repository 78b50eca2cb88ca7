package cluster

import (
	"errors"
	"testing"

	"github.com/hashicorp/raft"
)

// TestNoPipelinedReplication: the network transport refuses to pipeline,
// so raft replicates one request at a time per follower. A pipeline can
// deadlock a leader's Close in hashicorp/raft v1.7.3 (a newer term ends
// its decoder while its sender still hands it a request; see cluster.go).
func TestNoPipelinedReplication(t *testing.T) {
	tc := newTestCluster(t, false)
	n := tc.start(tc.config("a"))
	_, err := n.trans.AppendEntriesPipeline("b", "127.0.0.1:1")
	if !errors.Is(err, raft.ErrPipelineReplicationNotSupported) {
		t.Fatalf("AppendEntriesPipeline: %v, want ErrPipelineReplicationNotSupported", err)
	}
}
