package node

import (
	"encoding/json"
	"runtime"

	"github.com/hayate-sfu/hayate/control"
	"github.com/hayate-sfu/hayate/icetcp"
	"github.com/hayate-sfu/hayate/mode"
	"github.com/hayate-sfu/hayate/rtpcore"
	"github.com/hayate-sfu/hayate/signal"
	"github.com/hayate-sfu/hayate/turn"
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
func (n *Node) Session(channelID, sessionID string) (any, error) {
	return n.hub.Session(channelID, sessionID)
}

// ListSessions describes every session of this node.
func (n *Node) ListSessions() []any { return n.hub.ListSessions() }

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

// StatsReport is GetStatsReport's body: Sora's counter names where Sora has
// one, plus the mode, the live sessions and connections, and the refusals
// counted by reason.
type StatsReport struct {
	Version               string `json:"version"`
	Mode                  string `json:"mode"`
	OperatorMode          string `json:"operator_mode"`
	HealthMode            string `json:"health_mode"`
	NodeName              string `json:"node_name"`
	ConnectionsCreated    uint64 `json:"total_connection_created"`
	ConnectionsDestroyed  uint64 `json:"total_connection_destroyed"`
	ConnectionsSuccessful uint64 `json:"total_successful_connections"`
	ConnectionsFailed     uint64 `json:"total_failed_connections"`
	ConnectionsOngoing    int    `json:"total_ongoing_connections"`
	SessionsCreated       uint64 `json:"total_session_created"`
	SessionsDestroyed     uint64 `json:"total_session_destroyed"`
	SessionsOngoing       int    `json:"total_ongoing_sessions"`
	// Session.created answers with payouts Hayate does not apply (logged).
	UnsupportedSessionPayouts uint64 `json:"total_unsupported_session_payouts"`
	// Connections whose media went through TURN over UDP, and over TCP or
	// TLS, and TURN-TCP/TLS streams closed for an invalid frame (Sora's
	// names, which sora_exporter reads).
	TURNUDPConnections uint64 `json:"total_turn_udp_connections"`
	TURNTCPConnections uint64 `json:"total_turn_tcp_connections"`
	InvalidTURNTCP     uint64 `json:"total_received_invalid_turn_tcp_packet"`

	Refused map[string]uint64 `json:"refused_connections"`

	AuthAllowed    uint64 `json:"total_auth_webhook_allowed"`
	AuthDenied     uint64 `json:"total_auth_webhook_denied"`
	AuthSuccessful uint64 `json:"total_successful_auth_webhook"`
	AuthFailed     uint64 `json:"total_failed_auth_webhook"`

	SessionHookSuccessful uint64 `json:"total_successful_session_webhook"`
	SessionHookFailed     uint64 `json:"total_failed_session_webhook"`
	SessionHookIgnored    uint64 `json:"total_ignored_session_webhook"`
	EventHookSuccessful   uint64 `json:"total_successful_event_webhook"`
	EventHookFailed       uint64 `json:"total_failed_event_webhook"`
	EventHookIgnored      uint64 `json:"total_ignored_event_webhook"`

	IgnoredMessages uint64 `json:"total_ignored_signaling_messages"`
	ReOffers        uint64 `json:"total_re_offers"`
	Redirects       uint64 `json:"total_redirects"`
	// Simulcast: stream switches notified to viewers, rid requests by API.
	SimulcastSwitched uint64 `json:"total_simulcast_switched"`
	RidRequests       uint64 `json:"total_rid_requests"`
	// SpotlightFocused counts publishers brought into a spotlight focus.
	SpotlightFocused uint64 `json:"total_spotlight_focused"`
	// Cluster is raft's state (raft_state, raft_term, raft_commit_index,
	// as Sora's) and this node's name; absent without cluster = true.
	Cluster map[string]any `json:"cluster,omitempty"`
	Error   ErrorCounts    `json:"error"`

	// Ready is /readyz; Drain the drain's progress (hayate ctl drain).
	Ready bool        `json:"ready"`
	Drain DrainStatus `json:"drain"`
	// SCTP over every DataChannel association, with Sora's names
	// (sora_exporter's sctp metrics), and the DataChannel counters.
	SCTPPacketsIn  uint64                  `json:"total_received_sctp"`
	SCTPBytesIn    uint64                  `json:"total_received_sctp_byte_size"`
	SCTPPacketsOut uint64                  `json:"total_sent_sctp"`
	SCTPBytesOut   uint64                  `json:"total_sent_sctp_byte_size"`
	DataChannels   signal.DataChannelStats `json:"data_channels"`

	// TURN is the built-in TURN server (absent with turn = false), ICETCP
	// the ICE-TCP listener (absent without ice_tcp).
	TURN   *turn.Stats   `json:"turn,omitempty"`
	ICETCP *icetcp.Stats `json:"ice_tcp,omitempty"`

	Media   rtpcore.StatsSnapshot `json:"media"`
	Runtime RuntimeStats          `json:"runtime"`
}

// RuntimeStats are the Go runtime's numbers, for load tests (allocations
// per forwarded packet) and for operators (goroutines, heap).
type RuntimeStats struct {
	Goroutines   int    `json:"goroutines"`
	HeapAlloc    uint64 `json:"heap_alloc_bytes"`
	HeapInuse    uint64 `json:"heap_inuse_bytes"`
	StackInuse   uint64 `json:"stack_inuse_bytes"`
	Sys          uint64 `json:"sys_bytes"`
	Mallocs      uint64 `json:"total_mallocs"`
	Frees        uint64 `json:"total_frees"`
	NumGC        uint32 `json:"num_gc"`
	PauseTotalNs uint64 `json:"gc_pause_total_ns"`
}

func runtimeStats() RuntimeStats {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return RuntimeStats{
		Goroutines: runtime.NumGoroutine(), HeapAlloc: m.HeapAlloc, HeapInuse: m.HeapInuse, StackInuse: m.StackInuse, Sys: m.Sys,
		Mallocs: m.Mallocs, Frees: m.Frees, NumGC: m.NumGC, PauseTotalNs: m.PauseTotalNs,
	}
}

// ErrorCounts is GetStatsReport's error object.
type ErrorCounts struct {
	SignalingError uint64 `json:"signaling_error"`
}

// StatsReport builds the GetStatsReport body.
func (n *Node) StatsReport() any {
	s := n.hub.Stats()
	r := StatsReport{
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
		Error: ErrorCounts{SignalingError: s.SignalingErrors.Load()},
	}
	r.Ready, _ = n.Ready()
	r.Drain = n.DrainStatus()
	r.SCTPPacketsIn, r.SCTPBytesIn = r.Media.SCTPPacketsIn, r.Media.SCTPBytesIn
	r.SCTPPacketsOut, r.SCTPBytesOut = r.Media.SCTPPacketsOut, r.Media.SCTPBytesOut
	r.DataChannels = s.DataChannels()
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
		r.Cluster = n.cl.c.RaftStats()
		r.Cluster["cluster_node_name"] = n.cl.c.Name()
	}
	r.SessionHookSuccessful, r.SessionHookFailed, r.SessionHookIgnored = counters(&n.sessionQ.Counters)
	r.EventHookSuccessful, r.EventHookFailed, r.EventHookIgnored = counters(&n.eventQ.Counters)
	return r
}

func counters(c *webhook.Counters) (ok, failed, ignored uint64) {
	return c.Successful.Load(), c.Failed.Load(), c.Ignored.Load()
}
