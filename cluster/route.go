package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Decision is where a connect for a channel goes.
type Decision struct {
	// Serve: this node owns the channel and holds a valid lease; admit the connect.
	Serve bool
	// Owner is the owning node's name.
	Owner string
	// RedirectURL is the owner's signaling URL when another node owns the
	// channel: send {"type":"redirect","location":RedirectURL}.
	RedirectURL string
	// ClaimIndex is the log index of the claim that gave Owner the channel.
	ClaimIndex uint64
}

// maxClaims bounds the claims one Route makes (a channel released and
// claimed again under our feet is retried, not chased forever).
const maxClaims = 3

// Route decides where a connect for channelID goes (docs/spec/cluster.md §3.3):
//
//  1. owned by another node: redirect to its signaling URL;
//  2. owned by this node and the lease is valid: serve;
//  3. not owned: Claim through the leader, wait until this node's FSM has
//     applied the claim, then decide again from the local table.
//
// It returns ErrUnavailable (wrapped) when the node is not initialised, holds
// no lease for a channel it owns, or cannot reach a leader in time; without a
// deadline in ctx it gives up after LeaseTTL. ErrNoEligibleNode means no node
// can take a new channel.
func (c *Cluster) Route(ctx context.Context, channelID string) (Decision, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.LeaseTTL)
		defer cancel()
	}
	for claims := 0; ; {
		d, wait, claim, err := c.routeLocal(channelID)
		switch {
		case err != nil:
			return Decision{}, err
		case wait != nil:
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return Decision{}, fmt.Errorf("%w: channel is being released: %w", ErrUnavailable, ctx.Err())
			}
		case !claim:
			return d, nil
		}
		if claims == maxClaims {
			return Decision{}, fmt.Errorf("%w: channel %q changed owner %d times", ErrUnavailable, channelID, claims)
		}
		claims++
		res, err := c.propose(ctx, &command{Op: opClaim, Channel: channelID, Node: c.cfg.NodeName})
		if err != nil {
			if errors.Is(err, ErrClosed) {
				return Decision{}, err
			}
			return Decision{}, fmt.Errorf("%w: claim: %w", ErrUnavailable, err)
		}
		if !res.Result.OK {
			if res.Result.Reason == ErrNoEligibleNode.Error() {
				return Decision{}, ErrNoEligibleNode
			}
			return Decision{}, fmt.Errorf("%w: claim refused: %s", ErrUnavailable, res.Result.Reason)
		}
		if err := c.waitApplied(ctx, res.Index); err != nil {
			return Decision{}, err
		}
	}
}

// routeLocal decides from the local table. It returns a decision, or a
// channel to wait on (a Release of this channel is under way), or claim=true.
func (c *Cluster) routeLocal(id string) (d Decision, wait <-chan struct{}, claim bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return d, nil, false, ErrClosed
	}
	if w, ok := c.releasing[id]; ok {
		return d, w, false, nil
	}
	now := c.now()
	if ch := c.tab.Channels[id]; ch != nil {
		d = Decision{Owner: ch.Owner, ClaimIndex: ch.Index}
		if ch.Owner == c.cfg.NodeName {
			if !c.servingLocked(id, now) {
				return Decision{}, nil, false, fmt.Errorf("%w: this node owns %q but holds no lease", ErrUnavailable, id)
			}
			if l := c.lingering[id]; l != nil {
				l.t.Stop()
				delete(c.lingering, id)
			}
			d.Serve = true
			return d, nil, false, nil
		}
		owner := c.tab.Nodes[ch.Owner]
		if owner == nil || owner.SignalingURL == "" {
			return Decision{}, nil, false, fmt.Errorf("%w: owner %q of %q has no signaling URL", ErrUnavailable, ch.Owner, id)
		}
		d.RedirectURL = owner.SignalingURL
		return d, nil, false, nil
	}
	if n := c.tab.Nodes[c.cfg.NodeName]; n == nil || n.Inc != c.inc {
		return d, nil, false, fmt.Errorf("%w: node not initialised or not registered", ErrUnavailable)
	}
	return d, nil, true, nil
}

// Serving reports whether this node may serve channelID now: the table gives
// it to this incarnation and the lease is valid. The media and signaling
// paths re-check it on a short timer (docs/spec/cluster.md §3.4).
func (c *Cluster) Serving(channelID string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.servingLocked(channelID, c.now())
}

type linger struct{ t *time.Timer }

// Release gives channelID up after the last connection left: after
// ReleaseLinger, unless a Route served it again meanwhile, the node stops
// serving it and proposes Release(channel, self, claimIndex) (docs/spec/cluster.md §3.3 step
// 6), retrying until the table no longer gives it the channel.
func (c *Cluster) Release(channelID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, mine := c.mine[channelID]; !mine || c.closed {
		return
	}
	if _, ok := c.releasing[channelID]; ok {
		return
	}
	if c.lingering[channelID] != nil {
		return
	}
	if c.cfg.ReleaseLinger < 0 {
		c.startReleaseLocked(channelID)
		return
	}
	l := &linger{}
	l.t = time.AfterFunc(c.cfg.ReleaseLinger, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.lingering[channelID] != l || c.closed {
			return
		}
		delete(c.lingering, channelID)
		c.startReleaseLocked(channelID)
	})
	c.lingering[channelID] = l
}

// startReleaseLocked stops serving the channel at once, before the Release
// is proposed: once the leader commits it another node may get the channel,
// possibly before this node applies the Release.
func (c *Cluster) startReleaseLocked(id string) {
	ch := c.tab.Channels[id]
	if ch == nil || ch.Owner != c.cfg.NodeName || ch.Inc != c.inc {
		return
	}
	done := make(chan struct{})
	c.releasing[id] = done
	var fenced []string
	c.syncChannelLocked(id, c.now(), &fenced) // a release is not a fence
	cmd := &command{Op: opRelease, Channel: id, Node: c.cfg.NodeName, Inc: c.inc, Index: ch.Index}
	c.wg.Go(func() { c.runRelease(cmd, done) })
}

func (c *Cluster) runRelease(cmd *command, done chan struct{}) {
	for {
		ctx, cancel := context.WithTimeout(c.ctx, c.cfg.LeaseTTL)
		res, err := c.propose(ctx, cmd)
		if err == nil {
			err = c.waitApplied(ctx, res.Index)
		}
		cancel()
		c.mu.Lock()
		ch := c.tab.Channels[cmd.Channel]
		gone := ch == nil || ch.Owner != cmd.Node || ch.Index != cmd.Index
		if gone || c.closed {
			delete(c.releasing, cmd.Channel)
			close(done)
			var fenced []string
			c.syncChannelLocked(cmd.Channel, c.now(), &fenced)
			c.postFencedLocked(fenced)
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		c.log.Debug("cluster release not applied yet", "channel", cmd.Channel, "err", err)
		select {
		case <-c.ctx.Done():
		case <-time.After(c.cfg.Heartbeat):
		}
	}
}
