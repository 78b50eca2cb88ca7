package node

import (
	"encoding/json"
	"runtime"

	"github.com/hayate-sfu/hayate/control"
	"github.com/hayate-sfu/hayate/mode"
	"github.com/hayate-sfu/hayate/signal"
	"github.com/hayate-sfu/hayate/webhook"
)

// The control.Backend methods: the API reaches the node only through these.

// Mode returns the effective mode.
func (n *Node) Mode() mode.Mode { return n.hub.Mode() }

// SetMode sets the operator mode (ChangeMode) and returns the effective mode.
// In a cluster the operator mode is also replicated, so that placement
// skips a blocked node (docs/spec/cluster.md §3.5).
func (n *Node) SetMode(m mode.Mode) mode.Mode {
	after := n.hub.SetMode(m)
	n.operatorModeChanged()
	if n.cl != nil {
		n.cl.operatorChanged()
	}
	return after
}

// ListConnections lists the connections of a channel, or all of them.
func (n *Node) ListConnections(channelID string) []signal.ConnectionInfo {
	return n.hub.ListConnections(channelID)
}

// ListChannels lists the channels with a connection on this node.
func (n *Node) ListChannels() []signal.ChannelInfo { return n.hub.ListChannels() }

// Disconnect closes the connections of a channel that sel picks.
func (n *Node) Disconnect(channelID string, sel signal.Selector, reason json.RawMessage) error {
	return n.hub.Disconnect(channelID, sel, reason)
}

// Push sends a push message to the connections of a channel that sel picks.
func (n *Node) Push(channelID string, sel signal.Selector, data json.RawMessage) ([]byte, error) {
	return n.hub.Push(channelID, sel, data)
}

// RequestKeyFrame asks a publisher for a key frame.
func (n *Node) RequestKeyFrame(channelID, connectionID string) error {
	return n.hub.RequestKeyFrame(channelID, connectionID)
}

// Session describes a session of this node as session.updated does.
func (n *Node) Session(channelID, sessionID string) (signal.SessionInfo, error) {
	return n.hub.Session(channelID, sessionID)
}

// ListSessions describes every session of this node.
func (n *Node) ListSessions() []signal.SessionInfo { return n.hub.ListSessions() }

// TerminateSession ends a session of this node.
func (n *Node) TerminateSession(channelID, sessionID string) (string, error) {
	return n.hub.TerminateSession(channelID, sessionID)
}

// License is GetLicense's answer. Hayate has no license: it never expires
// ("9999-12", the month form Sora uses, which sora_exporter parses), its
// max_connections is max_connections (0: no limit), its serial code the
// version.
func (n *Node) License() control.License {
	return control.License{ExpiredAt: "9999-12", MaxConnections: n.cfg.MaxConnections, ProductName: "Hayate",
		SerialCode: "hayate-" + Version, Type: "Open Source"}
}

// RequestRid caps the simulcast stream a viewer receives (the simulcast
// API).
func (n *Node) RequestRid(channelID, receiverID, senderID, rid string, reset bool) error {
	return n.hub.RequestRid(channelID, receiverID, senderID, rid, reset)
}

// Spotlight moves a spotlight channel's focus (the spotlight API).
func (n *Node) Spotlight(channelID, connectionID string, op signal.SpotlightOp) error {
	return n.hub.Spotlight(channelID, connectionID, op)
}

// ChangeSpotlightNumber sets how many publishers a spotlight channel
// has in focus.
func (n *Node) ChangeSpotlightNumber(channelID string, number int) error {
	return n.hub.ChangeSpotlightNumber(channelID, number)
}

// RequestSpotlightRid sets the rids a spotlight viewer receives the
// focused and unfocused publishers at.
func (n *Node) RequestSpotlightRid(channelID, receiverID, senderID, focus, unfocus string, reset bool) error {
	return n.hub.RequestSpotlightRid(channelID, receiverID, senderID, focus, unfocus, reset)
}

// BatchRequestSpotlightRid is RequestSpotlightRid for several viewers.
func (n *Node) BatchRequestSpotlightRid(channelID string, receiverIDs []string, senderID, focus, unfocus string) error {
	return n.hub.BatchRequestSpotlightRid(channelID, receiverIDs, senderID, focus, unfocus)
}

// ListRTCStats returns the clients' latest getStats() reports.
func (n *Node) ListRTCStats(channelID string) []signal.RTCStats { return n.hub.ListRTCStats(channelID) }

// RTCStats returns one client's latest getStats() report.
func (n *Node) RTCStats(channelID, connectionID string) (signal.RTCStats, error) {
	return n.hub.RTCStats(channelID, connectionID)
}

// ConnectionStats returns the node's counters of connections.
func (n *Node) ConnectionStats(channelID string, sel signal.Selector) ([]signal.ConnectionStats, error) {
	return n.hub.ConnectionStats(channelID, sel)
}

// ListNotifyMetadata lists the channel's signaling notify metadata
// extension objects.
func (n *Node) ListNotifyMetadata(channelID string) ([]signal.NotifyMetadataInfo, error) {
	return n.hub.ListNotifyMetadata(channelID)
}

// NotifyMetadata is one connection's extension object.
func (n *Node) NotifyMetadata(channelID, connectionID string) (json.RawMessage, error) {
	return n.hub.NotifyMetadata(channelID, connectionID)
}

// UpdateNotifyMetadata changes one connection's extension object.
func (n *Node) UpdateNotifyMetadata(channelID, connectionID string, u signal.MetadataUpdate) (json.RawMessage, error) {
	return n.hub.UpdateNotifyMetadata(channelID, connectionID, u)
}

func runtimeStats() control.RuntimeStats {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return control.RuntimeStats{
		Goroutines: runtime.NumGoroutine(), HeapAlloc: m.HeapAlloc, HeapInuse: m.HeapInuse, StackInuse: m.StackInuse, Sys: m.Sys,
		Mallocs: m.Mallocs, Frees: m.Frees, NumGC: m.NumGC, PauseTotalNs: m.PauseTotalNs,
	}
}

// StatsReport builds the GetStatsReport body.
func (n *Node) StatsReport() control.StatsReport {
	s := n.hub.Stats()
	r := control.StatsReport{
		Version: Version, Mode: n.word.Load().String(), OperatorMode: n.word.Operator().String(),
		HealthMode: n.word.Health().String(), NodeName: n.cfg.EffectiveNodeName(),
		ConnectionsCreated: s.ConnectionCreated.Load(), ConnectionsDestroyed: s.ConnectionDestroyed.Load(),
		ConnectionsSuccessful: s.Successful.Load(), ConnectionsFailed: s.Failed.Load(), ConnectionsOngoing: n.hub.Connections(),
		SessionsCreated: s.SessionCreated.Load(), SessionsDestroyed: s.SessionDestroyed.Load(), SessionsOngoing: n.hub.Sessions(),
		UnsupportedSessionPayouts: s.UnsupportedSessionPayouts.Load(),
		Refused:                   s.Refusals(),
		AuthAllowed:               n.auth.Allowed.Load(), AuthDenied: n.auth.Denied.Load(),
		AuthSuccessful: n.auth.Counters.Successful.Load(), AuthFailed: n.auth.Counters.Failed.Load(),
		IgnoredMessages: s.IgnoredMessages.Load(), ReOffers: s.ReOffers.Load(),
		Redirects: s.Redirects.Load(), SimulcastSwitched: s.SimulcastSwitched.Load(), RidRequests: s.RidRequests.Load(),
		SpotlightFocused: s.SpotlightFocused.Load(),
		Media:            n.media.Stats(), Runtime: runtimeStats(),
		Error: control.ErrorCounts{SignalingError: s.SignalingErrors.Load()},
	}
	r.Ready, _ = n.Ready()
	r.Drain = n.DrainStatus()
	r.SCTPPacketsIn, r.SCTPBytesIn = r.Media.SCTPPacketsIn, r.Media.SCTPBytesIn
	r.SCTPPacketsOut, r.SCTPBytesOut = r.Media.SCTPPacketsOut, r.Media.SCTPBytesOut
	r.DataChannels = s.DataChannels()
	r.RTCStats = s.RTCStats()
	r.TURNUDPConnections, r.TURNTCPConnections = s.TURNUDPConnections.Load(), s.TURNTCPConnections.Load()
	if n.turn != nil {
		ts := n.turn.Stats()
		r.TURN, r.InvalidTURNTCP = &ts, ts.InvalidTCPPackets
	}
	if n.iceTCP != nil {
		is := n.iceTCP.Stats()
		r.ICETCP = &is
	}
	if n.cl != nil {
		r.Cluster = &control.ClusterStats{NodeName: n.cl.c.Name(), RaftStats: n.cl.c.RaftStats()}
	}
	r.SessionHookSuccessful, r.SessionHookFailed, r.SessionHookIgnored = counters(&n.sessionQ.Counters)
	r.EventHookSuccessful, r.EventHookFailed, r.EventHookIgnored = counters(&n.eventQ.Counters)
	return r
}

func counters(c *webhook.Counters) (ok, failed, ignored uint64) {
	return c.Successful.Load(), c.Failed.Load(), c.Ignored.Load()
}
