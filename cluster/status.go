package cluster

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/hayate-sfu/hayate/mode"
)

// NodeStatus is one entry of Sora's ListClusterNodes (docs/spec/cluster.md §3.6; field names
// from sora_exporter's fixtures, docs/spec/cluster.md §1 item 10).
type NodeStatus struct {
	Name  string `json:"cluster_node_name"`
	Epoch uint64 `json:"epoch"`
	// Mode is the effective mode: operator mode and health mode, the stricter.
	Mode         mode.Mode `json:"mode"`
	SignalingURL string    `json:"cluster_signaling_url,omitempty"`
	APIURL       string    `json:"cluster_api_url,omitempty"`
	// MemberSince is nil for a raft member that never registered.
	MemberSince *time.Time `json:"member_since,omitempty"`
	// Connected: for this node, it holds a lease; for another node, this node
	// applied a heartbeat of it within LeaseTTL and it is not expired.
	Connected      bool `json:"connected"`
	Temporary      bool `json:"temporary_node"`
	Connections    int  `json:"connections"`
	MaxConnections int  `json:"license_max_connections"`
}

// ChannelStatus is one entry of ListClusterChannels: a channel and its owner.
type ChannelStatus struct {
	ChannelID string `json:"channel_id"`
	Owner     string `json:"cluster_node_name"`
	// Epoch is the owner's incarnation when it got the channel.
	Epoch uint64 `json:"epoch"`
	// ClaimIndex is the claim's raft log index, a fencing token.
	ClaimIndex uint64 `json:"claim_index"`
}

// Nodes lists every node known to this node's table or raft configuration,
// sorted by name. Dead nodes stay listed with connected false until purged.
func (c *Cluster) Nodes() []NodeStatus {
	var servers []raft.Server
	if f := c.raft.GetConfiguration(); f.Error() == nil {
		servers = f.Configuration().Servers
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	out := make([]NodeStatus, 0, len(c.tab.Nodes))
	for name, n := range c.tab.Nodes {
		ms := time.Unix(0, n.MemberSince).UTC()
		st := NodeStatus{
			Name: name, Epoch: n.Inc, Mode: n.effective(),
			SignalingURL: n.SignalingURL, APIURL: n.APIURL, MemberSince: &ms,
			Connected: !n.Expired && now.Sub(c.seen[name]) <= c.cfg.LeaseTTL,
			Temporary: n.Temporary, Connections: n.Conns, MaxConnections: n.MaxConns,
		}
		if name == c.cfg.NodeName {
			st.Mode = mode.Stricter(n.Operator, c.health)
			st.Connected = n.Inc == c.inc && now.Before(c.leaseUntil)
			st.Connections = c.conns
		}
		out = append(out, st)
	}
	for _, s := range servers {
		if c.tab.Nodes[string(s.ID)] == nil {
			out = append(out, NodeStatus{Name: string(s.ID), Mode: mode.BlockNewConnection, Temporary: s.Suffrage != raft.Voter})
		}
	}
	slices.SortFunc(out, func(a, b NodeStatus) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Channels lists the channel table, sorted by channel ID.
func (c *Cluster) Channels() []ChannelStatus {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]ChannelStatus, 0, len(c.tab.Channels))
	for id, ch := range c.tab.Channels {
		out = append(out, ChannelStatus{ChannelID: id, Owner: ch.Owner, Epoch: ch.Inc, ClaimIndex: ch.Index})
	}
	slices.SortFunc(out, func(a, b ChannelStatus) int { return strings.Compare(a.ChannelID, b.ChannelID) })
	return out
}

// Owner returns the owner of channelID in this node's table.
func (c *Cluster) Owner(channelID string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch := c.tab.Channels[channelID]; ch != nil {
		return ch.Owner, true
	}
	return "", false
}

// RaftStats is GetStatsReport's cluster object (docs/spec/cluster.md §1 item 7): raft_state
// in Sora's lower case ("leader", "follower", "candidate", "shutdown"),
// raft_term and raft_commit_index as numbers, plus the leader's name and
// this node's FSM applied index.
type RaftStats struct {
	AppliedIndex uint64 `json:"raft_applied_index"`
	CommitIndex  uint64 `json:"raft_commit_index"`
	Leader       string `json:"raft_leader"`
	State        string `json:"raft_state"`
	Term         uint64 `json:"raft_term"`
}

// RaftStats returns raft's state as GetStatsReport shows it.
func (c *Cluster) RaftStats() RaftStats {
	_, leader := c.raft.LeaderWithID()
	c.mu.Lock()
	applied := c.tab.Applied
	c.mu.Unlock()
	return RaftStats{
		State:        strings.ToLower(c.raft.State().String()),
		Term:         c.raft.CurrentTerm(),
		CommitIndex:  c.raft.CommitIndex(),
		AppliedIndex: applied,
		Leader:       string(leader),
	}
}

// Lease reports whether this node holds a valid lease now, and until when
// it runs (zero before the first renewal). For readiness and metrics.
func (c *Cluster) Lease() (held bool, until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.closed && c.now().Before(c.leaseUntil), c.leaseUntil
}

// ChannelCounts returns how many channels the table gives this node's
// incarnation, how many it serves now (lease valid), and how many the
// table holds in all.
func (c *Cluster) ChannelCounts() (owned, served, total int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.mine), len(c.served), len(c.tab.Channels)
}

// Sync makes this node's table current for a read: it returns once the
// table has applied every command the leader had applied when Sync was
// called (a read barrier: raft's Barrier on the leader, then this node
// waits for that index). A read after Sync sees every claim, release and
// registration acknowledged before it, on any node. It fails with
// ErrUnavailable or ErrNoLeader when no leader answers before ctx ends.
func (c *Cluster) Sync(ctx context.Context) error {
	var resp indexResp
	err := c.leaderCall(ctx, pathReadIndex, struct{}{}, &resp, func(ctx context.Context) error {
		var err error
		resp, err = c.readIndexLocal(ctx)
		return err
	})
	if err != nil {
		return err
	}
	return c.waitApplied(ctx, resp.Index)
}

// readIndexLocal runs on the leader: a barrier (every entry before it is
// applied to this node's table), then the table's applied index.
func (c *Cluster) readIndexLocal(ctx context.Context) (indexResp, error) {
	if err := c.await(ctx, c.raft.Barrier(c.enqueueTimeout(ctx))); err != nil {
		return indexResp{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return indexResp{Index: c.tab.Applied}, nil
}
