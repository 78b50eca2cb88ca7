package node

import (
	"encoding/json"
	"runtime"

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

// DisconnectChannel closes every connection of a channel.
func (n *Node) DisconnectChannel(channelID string, reason json.RawMessage) error {
	return n.hub.DisconnectChannel(channelID, reason)
}

// DisconnectConnection closes one connection.
func (n *Node) DisconnectConnection(channelID, connectionID string, reason json.RawMessage) error {
	return n.hub.DisconnectConnection(channelID, connectionID, reason)
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
		Redirects: s.Redirects.Load(),
		Media:     n.media.Stats(), Runtime: runtimeStats(),
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
