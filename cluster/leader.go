package cluster

import (
	"context"
	"slices"
	"time"

	"github.com/hashicorp/raft"
)

// leaderLoop runs the leader's side of docs/spec/cluster.md §3.4: it proposes Expire for every
// node whose heartbeat it has not seen for longer than TTL + grace.
func (c *Cluster) leaderLoop() {
	t := time.NewTicker(max(c.cfg.Heartbeat/2, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		c.expireTick()
	}
}

func (c *Cluster) expireTick() {
	if c.raft.State() != raft.Leader {
		return
	}
	term := c.raft.CurrentTerm()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	now := c.now()
	if term != c.leaderTerm {
		// Newly elected: count every node as seen now. This can only delay
		// an expiry (docs/spec/cluster.md §3.4); a node this leader never heard from gets a
		// full TTL + grace from the election.
		c.leaderTerm, c.leaderSince = term, now
		c.log.Info("cluster leader", "term", term)
	}
	limit := c.cfg.LeaseTTL + c.cfg.Grace
	for name, n := range c.tab.Nodes {
		if n.Expired || c.expiring[name] {
			continue
		}
		last := c.lastSeenLocked(name)
		if now.Sub(last) <= limit {
			continue
		}
		c.expiring[name] = true
		cmd := &command{Op: opExpire, Node: name, Inc: n.Inc, Beats: n.Beats}
		c.log.Info("cluster expiring node", "node", name, "epoch", n.Inc, "silent", now.Sub(last).Round(time.Millisecond))
		c.wg.Go(func() {
			ctx, cancel := context.WithTimeout(c.ctx, c.cfg.LeaseTTL)
			defer cancel()
			// Only the leader decides an expiry: proposed here or not at all
			// (a node that lost leadership meanwhile does not forward it).
			res, err := c.proposeLocal(ctx, cmd)
			c.mu.Lock()
			delete(c.expiring, cmd.Node)
			c.mu.Unlock()
			if err != nil {
				c.log.Debug("cluster expire failed", "node", cmd.Node, "err", err)
				return
			}
			if res.Result.OK {
				c.log.Info("cluster node expired", "node", cmd.Node, "index", res.Index)
			}
		})
	}
}

// lastSeenLocked is when this node, as leader, last heard of name: the later
// of the apply of its latest beat and this leader's election.
func (c *Cluster) lastSeenLocked(name string) time.Time {
	last := c.seen[name]
	if c.leaderSince.After(last) {
		last = c.leaderSince
	}
	return last
}

// eligible lists the nodes this leader saw heartbeating within LeaseTTL
// (they may hold a lease), for a Claim it proposes; the FSM also requires
// them to be in normal mode, which a node whose renewals run late is not.
func (c *Cluster) eligible() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	var out []string
	for name, n := range c.tab.Nodes {
		if !n.Expired && now.Sub(c.seen[name]) <= c.cfg.LeaseTTL {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}
