package cluster

import (
	"slices"
	"time"

	"github.com/hayate-sfu/hayate/mode"
)

// renewalsAfterLapse is the hysteresis of docs/spec/cluster.md §3.5: after a lease lapsed, the
// node returns to normal only after this many renewals in a row.
const renewalsAfterLapse = 2

// afterApplyLocked updates the local view after the FSM applied cmd. It runs
// in the FSM goroutine with c.mu held, in the same critical section as the
// table change. It is node-local bookkeeping, so unlike table.apply it reads
// the clock.
func (c *Cluster) afterApplyLocked(cmd *command, res result, changed []string) {
	now := c.now()
	var fenced []string
	for _, ch := range changed {
		c.updateMineLocked(ch)
		c.syncChannelLocked(ch, now, &fenced)
	}
	switch cmd.Op {
	case opRegister, opHeartbeat:
		if res.OK {
			c.seen[cmd.Node] = now
		}
		if cmd.Op == opHeartbeat && res.OK && cmd.Node == c.cfg.NodeName && cmd.Inc == c.inc {
			if sent, ok := c.pendingHB[cmd.Seq]; ok {
				delete(c.pendingHB, cmd.Seq)
				c.renewLocked(sent, now, &fenced)
			}
		}
	case opRemove:
		if res.OK {
			delete(c.seen, cmd.Node)
		}
	}
	c.evalHealthLocked(now)
	c.postFencedLocked(fenced)
}

// afterRestoreLocked rebuilds the local view after a snapshot replaced the table.
func (c *Cluster) afterRestoreLocked() {
	now := c.now()
	clear(c.mine)
	for id, ch := range c.tab.Channels {
		if ch.Owner == c.cfg.NodeName && ch.Inc == c.inc {
			c.mine[id] = struct{}{}
		}
	}
	// What this node saw of the others is unknown: count them as seen now,
	// which can only delay an expiry.
	clear(c.seen)
	for name := range c.tab.Nodes {
		c.seen[name] = now
	}
	var fenced []string
	c.syncAllLocked(now, &fenced)
	c.evalHealthLocked(now)
	c.postFencedLocked(fenced)
}

func (c *Cluster) updateMineLocked(id string) {
	if ch := c.tab.Channels[id]; ch != nil && ch.Owner == c.cfg.NodeName && ch.Inc == c.inc {
		c.mine[id] = struct{}{}
	} else {
		delete(c.mine, id)
	}
}

// servingLocked is docs/spec/cluster.md §3.4: serve channel id only while the table gives it
// to this incarnation and the lease is valid (and no Release is under way).
func (c *Cluster) servingLocked(id string, now time.Time) bool {
	_, mine := c.mine[id]
	_, releasing := c.releasing[id]
	return !c.closed && mine && !releasing && now.Before(c.leaseUntil)
}

// syncChannelLocked brings served[id] in line with servingLocked. A serving
// interval that ended because the lease ran out ends at the lease's end, not
// when this check happens to run; one that ended for any reason other than
// a Release or Close is reported to OnFenced.
func (c *Cluster) syncChannelLocked(id string, now time.Time, fenced *[]string) {
	should := c.servingLocked(id, now)
	start, serving := c.served[id]
	switch {
	case serving && !should:
		end := now
		if !now.Before(c.leaseUntil) && c.leaseUntil.Before(end) {
			end = c.leaseUntil
		}
		if end.Before(start) {
			end = start
		}
		delete(c.served, id)
		if c.cfg.hooks.serve != nil {
			c.cfg.hooks.serve(c.cfg.NodeName, id, false, end)
		}
		// The exact interval, for operators and for the multi-process test
		// that checks no channel is served by two nodes at once.
		c.cfg.Log.Info("cluster: stopped serving channel", "channel_id", id,
			"served_from_unix_ns", start.UnixNano(), "served_until_unix_ns", end.UnixNano())
		if _, releasing := c.releasing[id]; !releasing && !c.closed {
			*fenced = append(*fenced, id)
		}
	case !serving && should:
		c.served[id] = now
		if c.cfg.hooks.serve != nil {
			c.cfg.hooks.serve(c.cfg.NodeName, id, true, now)
		}
		c.cfg.Log.Info("cluster: serving channel", "channel_id", id, "served_from_unix_ns", now.UnixNano())
	}
}

func (c *Cluster) syncAllLocked(now time.Time, fenced *[]string) {
	for id := range c.served {
		c.syncChannelLocked(id, now, fenced)
	}
	for id := range c.mine {
		c.syncChannelLocked(id, now, fenced)
	}
}

// renewLocked extends the lease after the FSM applied an own heartbeat sent
// at sent: leaseUntil = sent + TTL (docs/spec/cluster.md §3.4).
func (c *Cluster) renewLocked(sent, now time.Time, fenced *[]string) {
	until := sent.Add(c.cfg.LeaseTTL)
	if !until.After(now) {
		return // applied too late to grant anything
	}
	// Close intervals that ended with the old lease before extending it.
	c.syncAllLocked(now, fenced)
	if until.After(c.leaseUntil) {
		c.leaseUntil = until
	}
	c.lastRenew = now
	if c.lapsed {
		c.renewals++
	}
	c.syncAllLocked(now, fenced)
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// evalHealthLocked sets the health mode of docs/spec/cluster.md §3.5:
//   - no lease yet, or the lease ran out: block_new_connection;
//   - lease back after a lapse but fewer than renewalsAfterLapse renewals: block_new_connection;
//   - no renewal applied for more than TTL/2: block_new_session;
//   - otherwise normal.
func (c *Cluster) evalHealthLocked(now time.Time) {
	var h mode.Mode
	switch {
	case c.closed:
		h = mode.BlockNewConnection
	case !now.Before(c.leaseUntil):
		if !c.leaseUntil.IsZero() && !c.lapsed {
			c.lapsed, c.renewals = true, 0
			c.log.Warn("cluster lease lapsed: fencing", "lease_until", c.leaseUntil)
		}
		h = mode.BlockNewConnection
	case c.lapsed && c.renewals < renewalsAfterLapse:
		h = mode.BlockNewConnection
	case now.Sub(c.lastRenew) > c.cfg.LeaseTTL/2:
		h = mode.BlockNewSession
	default:
		if c.lapsed {
			c.log.Info("cluster lease renewed after lapse")
		}
		c.lapsed = false
		h = mode.Normal
	}
	if h == c.health {
		return
	}
	c.log.Debug("cluster health mode", "from", c.health, "to", h)
	c.health = h
	c.beatSoon()
	fns := slices.Clone(c.healthFns)
	c.ev.post(func() {
		for _, f := range fns {
			f(h)
		}
	})
}

func (c *Cluster) postFencedLocked(fenced []string) {
	if len(fenced) == 0 {
		return
	}
	c.log.Info("cluster fenced channels", "channels", len(fenced))
	fns := slices.Clone(c.fencedFns)
	c.ev.post(func() {
		for _, f := range fns {
			f(slices.Clone(fenced))
		}
	})
}

// nextCheckLocked returns how long the lease loop may sleep: until the lease
// ends, until the renewal becomes late, and at most one heartbeat.
func (c *Cluster) nextCheckLocked(now time.Time) time.Duration {
	d := c.cfg.Heartbeat
	for _, t := range []time.Time{c.leaseUntil, c.lastRenew.Add(c.cfg.LeaseTTL / 2)} {
		if w := t.Sub(now); w > 0 && w < d {
			d = w
		}
	}
	return max(d, time.Millisecond)
}

// leaseLoop is the lease-check timer (docs/spec/cluster.md §3.4): an owner whose lease runs out
// fences itself even when no traffic and no log entry arrives.
//
// Wake-ups: the timer (lease end, renewal late, or one heartbeat), a renewal
// (kick), Close.
func (c *Cluster) leaseLoop() {
	t := time.NewTimer(c.cfg.Heartbeat)
	defer t.Stop()
	for {
		c.mu.Lock()
		now := c.now()
		var fenced []string
		c.syncAllLocked(now, &fenced)
		c.evalHealthLocked(now)
		c.postFencedLocked(fenced)
		next := c.nextCheckLocked(now)
		c.mu.Unlock()
		t.Reset(next)
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		case <-c.kick:
		}
	}
}
