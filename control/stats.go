package control

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/hayate-sfu/hayate/signal"
)

// The statistics API: the clients' own getStats() reports
// (https://sora-doc.shiguredo.jp/API_RTC_STATS) and the node's counters of
// each connection (https://sora-doc.shiguredo.jp/API_STATS). They describe
// the connections of this node: in a cluster a channel is served by one
// node, so a channel's connections are all on the node that serves it
// (README, "Sora compatibility: API targets", on `local`). ListRtcStats
// alone takes `local` (API_RTC_STATS: "local はクラスター機能利用時に、全て
// のノードの情報を取得するかどうかを指定します", default true): with false it
// lists every node's.

// listRTCStats is Sora_20211215.ListRtcStats {local?}: the latest report
// of every connection that has sent one, of this node (local, the default)
// or of every node of the cluster (local: false).
func (a *API) listRTCStats(ctx context.Context, p params) (any, error) {
	local, err := p.flagOr("local", true)
	if err != nil {
		return nil, err
	}
	out := a.backend.ListRTCStats("")
	if local || a.cluster == nil || isLocal(ctx) {
		return out, nil
	}
	silent := 0
	for _, ans := range a.cluster.Fanout(ctx, "Sora_20211215.ListRtcStats", []byte(`{"local":true}`)) {
		var theirs []signal.RTCStats
		if ans.Err != nil || ans.Status != http.StatusOK || json.Unmarshal(ans.Body, &theirs) != nil {
			silent++
			continue
		}
		out = append(out, theirs...)
	}
	if silent > 0 {
		// A list without some node's reports would pass for the whole.
		return nil, wrapped{ErrClusterUnavailable, fmt.Sprintf("%s: %d node(s) did not answer", ErrClusterUnavailable.Message, silent)}
	}
	slices.SortFunc(out, func(x, y signal.RTCStats) int {
		return cmp.Or(strings.Compare(x.ChannelID, y.ChannelID), strings.Compare(x.ConnectionID, y.ConnectionID))
	})
	return out, nil
}

// listChannelRTCStats is Sora_20211215.ListChannelRtcStats {channel_id}:
// as ListRtcStats for one channel ([] for a channel with no connection
// here, as ListChannelConnections).
func (a *API) listChannelRTCStats(_ context.Context, p params) (any, error) {
	ch, err := p.id("channel_id")
	if err != nil {
		return nil, err
	}
	return a.backend.ListRTCStats(ch), nil
}

// getRTCStats is Sora_20211215.GetRtcStats {channel_id, connection_id}.
func (a *API) getRTCStats(_ context.Context, p params) (any, error) {
	ch, sel, _, err := p.selector("connection_id", "")
	if err != nil {
		return nil, err
	}
	s, err := a.backend.RTCStats(ch, sel.ConnectionID)
	if err != nil {
		return nil, notFound(err)
	}
	return s, nil
}

// getStatsAllConnections is Sora_20171101.GetStatsAllConnections: every
// connection of this node.
func (a *API) getStatsAllConnections(context.Context, params) (any, error) {
	return a.backend.ConnectionStats("", signal.Selector{})
}

// getStatsConnection is Sora_20170529.GetStatsConnection {channel_id,
// connection_id}, one object; getStatsClient is
// Sora_20170529.GetStatsClient {channel_id, client_id}, every connection
// of the client (a client_id may have several) as an array.
func (a *API) getStatsConnection(_ context.Context, p params) (any, error) {
	s, err := a.statsOf(p, "connection_id")
	if err != nil {
		return nil, err
	}
	return s[0], nil
}

func (a *API) getStatsClient(_ context.Context, p params) (any, error) {
	return a.statsOf(p, "client_id")
}

// statsOf reads {channel_id, by} and returns the statistics of the
// connections it picks.
func (a *API) statsOf(p params, by string) ([]signal.ConnectionStats, error) {
	ch, sel, _, err := p.selector(by, "")
	if err != nil {
		return nil, err
	}
	s, err := a.backend.ConnectionStats(ch, sel)
	if err != nil {
		return nil, notFound(err)
	}
	return s, nil
}
