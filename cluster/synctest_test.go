package cluster

import (
	"testing"
	"testing/synctest"
	"time"
)

// The partition suite again inside testing/synctest bubbles (docs/spec/cluster.md §3.7 item
// 7): raft over raft.InmemTransport, the RPC over net.Pipe, fake time. Time
// only advances when every goroutine is blocked, so a run costs little real
// time and its timings are those of an idealised machine.

func TestPartitionSynctestFollower(t *testing.T) {
	synctest.Test(t, func(t *testing.T) { bubble(t); runPartition(t, partition{mem: true}) })
}

func TestPartitionSynctestLeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) { bubble(t); runPartition(t, partition{mem: true, leader: true}) })
}

func TestPartitionSynctestApplyDelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		bubble(t)
		runPartition(t, partition{mem: true, leader: true, applyDelay: 2 * time.Millisecond})
	})
}

// bubble lets goroutines that raft leaves behind after Shutdown (an
// in-flight TimeoutNow of a leadership transfer, an RPC waiting for its
// transport timeout) run out before the bubble ends: the last cleanup sleeps
// in fake time, which costs nothing real.
func bubble(t *testing.T) {
	t.Cleanup(func() { time.Sleep(time.Minute) })
}
