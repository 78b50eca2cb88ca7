package cluster

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/raft"
)

// fsm is the raft.FSM of a node. Apply changes the replicated table (which
// never reads a clock) and then, in the same critical section, lets the node
// update its local view: the lease, the channels it serves, what it saw of
// other nodes. Doing both under one lock is what makes read-your-writes
// exact: when a node's own heartbeat is applied, its lease is extended in the
// same step, so any Expire ordered before that heartbeat has already removed
// its old channels (docs/spec/cluster.md §3.4).
type fsm struct{ c *Cluster }

var _ raft.FSM = fsm{}

func (f fsm) Apply(l *raft.Log) any {
	var cmd command
	if err := json.Unmarshal(l.Data, &cmd); err != nil {
		// Not ours (nothing else writes commands): skip, but keep the index.
		f.c.mu.Lock()
		f.c.tab.Applied = l.Index
		f.c.broadcastAppliedLocked()
		f.c.mu.Unlock()
		return result{Reason: "undecodable command"}
	}
	if d := f.c.cfg.hooks.applyDelay; d > 0 {
		time.Sleep(d)
	}
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	res, changed := c.tab.apply(l.Index, &cmd)
	c.afterApplyLocked(&cmd, res, changed)
	c.broadcastAppliedLocked()
	return res
}

func (f fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	return snapshot{f.c.tab.clone()}, nil
}

func (f fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	t := newTable()
	if err := json.NewDecoder(rc).Decode(&t); err != nil {
		return fmt.Errorf("cluster: restore snapshot: %w", err)
	}
	if t.Nodes == nil {
		t.Nodes = map[string]*nodeRec{}
	}
	if t.Channels == nil {
		t.Channels = map[string]*chanRec{}
	}
	c := f.c
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tab = t
	c.afterRestoreLocked()
	c.broadcastAppliedLocked()
	return nil
}

type snapshot struct{ t table }

func (s snapshot) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(&s.t); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (snapshot) Release() {}
