package signal

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/gobwas/ws"
)

// Router places channels on the nodes of a cluster (docs/spec/cluster.md §3.3);
// nil on a single node, which serves every channel. The node adapts
// cluster.Cluster to it.
type Router interface {
	// Route decides who serves channelID: this node (serve) or the node
	// whose signaling URL is redirectURL. An error means no node can take
	// it now; a *CloseError among it is the refusal to send.
	Route(ctx context.Context, channelID string) (serve bool, redirectURL string, err error)
	// Serving reports whether this node may serve channelID now (it owns
	// it and holds its lease). Cheap: called under the hub's lock.
	Serving(channelID string) bool
	// Release tells that channelID has no connection left on this node.
	Release(channelID string)
	// SetLoad reports the number of admitted connections on this node.
	SetLoad(conns int)
}

// routeTimeout bounds a cluster claim made for one connect.
const routeTimeout = 5 * time.Second

// redirectMessage is Sora's redirect (docs/spec/sora-protocol.md §1.12).
type redirectMessage struct {
	Type     string `json:"type"`
	Location string `json:"location"`
}

// route asks the cluster who serves c's channel, before authentication as
// Sora does. A connect for another node's channel is answered with a
// redirect and ErrRedirect; a `redirect: true` connect is routed the same
// way (the owner accepts it; if the channel moved meanwhile it is sent on).
func (c *Conn) route() *CloseError {
	h := c.hub
	ctx, cancel := context.WithTimeout(h.ctx, routeTimeout)
	defer cancel()
	serve, url, err := h.hooks.Router.Route(ctx, c.channelID)
	if err != nil {
		var ce *CloseError
		if errors.As(err, &ce) {
			return ce
		}
		h.log.Warn("cluster cannot place channel", "channel_id", c.channelID, "err", err)
		return ErrBlockedNewConnection
	}
	if serve {
		return nil
	}
	b, _ := json.Marshal(redirectMessage{Type: "redirect", Location: url})
	if err := c.write(ws.OpText, b); err != nil {
		return errClientGone
	}
	h.stats.Redirects.Add(1)
	h.log.Info("connect redirected", "channel_id", c.channelID, "connection_id", c.id, "location", url)
	return ErrRedirect
}

// Fence closes every connection of the given channels, which this node may
// no longer serve (its cluster lease lapsed or the channels moved), with
// 1012 CLUSTER-LEASE-LOST: their clients reconnect and reach the owner.
func (h *Hub) Fence(channels []string) {
	if f := h.testHooks().BeforeFence; f != nil {
		f(channels)
	}
	h.mu.Lock()
	var victims []*Conn
	for _, id := range channels {
		if ch := h.channels[id]; ch != nil {
			victims = append(victims, ch.members...)
		}
	}
	// An idle session of a fenced channel ends now: another node may get it.
	h.endIdleLocked(func(id string) bool { return slices.Contains(channels, id) })
	h.mu.Unlock()
	// Media stops first, at once: the new owner may serve these channels
	// as soon as the leader has expired this node (lease + grace later),
	// and the signaling close waits for the client's reply.
	for _, c := range victims {
		if c.tr != nil {
			c.tr.Close()
		}
	}
	if len(victims) > 0 {
		h.log.Warn("cluster fenced channels: media stopped, closing their connections", "channels", len(channels), "connections", len(victims))
	}
	for _, c := range victims {
		c.requestClose(ErrLeaseLost)
	}
}

// releaseIfIdle gives channelID back to the cluster when it has no session
// here: a connect routed to this node and then refused (mode, auth, limits)
// must not leave the channel claimed by a node that serves nobody in it.
func (h *Hub) releaseIfIdle(channelID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.channels[channelID] == nil {
		h.hooks.Router.Release(channelID)
	}
}
