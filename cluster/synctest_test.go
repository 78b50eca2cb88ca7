package cluster

import (
	"testing"
	"testing/synctest"
	"time"
)

// The partition suite again inside testing/synctest bubbles (spec 3.7 item
// 7): raft over raft.InmemTransport, the RPC over net.Pipe, fake time. Time
// only advances when every goroutine is blocked, so a run costs little real
// time and its timings are those of an idealised machine.

func TestPartitionSynctestFollower(t *testing.T) {
	synctest.Test(t, func(t *testing.T) { runPartition(t, true, false, 0) })
}

func TestPartitionSynctestLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) { runPartition(t, true, true, 0) })
}

func TestPartitionSynctestApplyDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) { runPartition(t, true, true, 2*time.Millisecond) })
}
