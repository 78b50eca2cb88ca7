package cluster

import (
	"context"
	"time"
)

// maxBeatsInFlight bounds heartbeats waiting for the leader, so that a slow
// leader does not pile them up.
const maxBeatsInFlight = 2

// heartbeatLoop registers this incarnation once a leader is known, then
// proposes a Heartbeat every H (docs/spec/cluster.md §3.4), leader included.
func (c *Cluster) heartbeatLoop() {
	t := time.NewTicker(c.cfg.Heartbeat)
	defer t.Stop()
	var st beatState
	for {
		c.beat(&st)
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		case <-c.beatNow:
		}
	}
}

// beatState is the heartbeat loop's own state; the fields the proposal
// goroutines touch are guarded by c.mu.
type beatState struct {
	registering bool
	inFlight    int
}

func (c *Cluster) beat(st *beatState) {
	if _, leader := c.raft.LeaderWithID(); leader == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	now := c.now()
	n := c.tab.Nodes[c.cfg.NodeName]
	if n == nil || n.Inc != c.inc {
		if st.registering {
			return
		}
		st.registering = true
		cmd := &command{
			Op: opRegister, Node: c.cfg.NodeName, Inc: c.inc,
			SignalingURL: c.cfg.SignalingURL, APIURL: c.cfg.APIURL, RPCAddr: c.rpcAddr,
			Temporary: c.cfg.Temporary, MaxConns: c.cfg.MaxConnections, Mode: c.cfg.InitialMode,
			At: now.UnixNano(),
		}
		c.wg.Go(func() {
			ctx, cancel := context.WithTimeout(c.ctx, c.cfg.LeaseTTL)
			defer cancel()
			res, err := c.propose(ctx, cmd)
			if err == nil {
				err = c.waitApplied(ctx, res.Index)
			}
			c.mu.Lock()
			st.registering = false
			c.mu.Unlock()
			if err != nil {
				c.log.Debug("cluster register failed", "err", err)
				return
			}
			c.log.Info("cluster node registered", "epoch", c.inc, "index", res.Index)
			c.beatSoon()
		})
		return
	}
	if st.inFlight >= maxBeatsInFlight {
		return
	}
	// Forget heartbeats too old to grant a lease any more.
	for seq, sent := range c.pendingHB {
		if now.Sub(sent) > c.cfg.LeaseTTL {
			delete(c.pendingHB, seq)
		}
	}
	c.hbSeq++
	seq := c.hbSeq
	// The lease will run from this moment, taken before the proposal leaves.
	c.pendingHB[seq] = now
	cmd := &command{Op: opHeartbeat, Node: c.cfg.NodeName, Inc: c.inc, Seq: seq, Conns: c.conns, Mode: c.health}
	st.inFlight++
	c.wg.Go(func() {
		ctx, cancel := context.WithTimeout(c.ctx, c.cfg.LeaseTTL)
		defer cancel()
		if _, err := c.propose(ctx, cmd); err != nil {
			c.log.Debug("cluster heartbeat failed", "seq", seq, "err", err)
		}
		c.mu.Lock()
		st.inFlight--
		c.mu.Unlock()
	})
}

// beatSoon makes the heartbeat loop beat now rather than at the next tick:
// after registering, and when the health mode changes, so that placement
// learns it within a round trip.
func (c *Cluster) beatSoon() {
	select {
	case c.beatNow <- struct{}{}:
	default:
	}
}
