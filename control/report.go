package control

import (
	"time"

	"github.com/hayate-sfu/hayate/cluster"
	"github.com/hayate-sfu/hayate/icetcp"
	"github.com/hayate-sfu/hayate/rtpcore"
	"github.com/hayate-sfu/hayate/signal"
	"github.com/hayate-sfu/hayate/turn"
)

// The API's answers that are not another package's type (those are
// signal.ConnectionInfo, signal.ChannelInfo, signal.SessionInfo,
// cluster.NodeStatus and cluster.ChannelStatus); the operations that act
// on connections answer with the identifying parameters of the request.

// ModeAnswer is the answer of ChangeMode and GetMode: the effective mode.
type ModeAnswer struct {
	Mode string `json:"mode"`
}

// SessionAnswer is TerminateSession's answer.
type SessionAnswer struct {
	SessionID string `json:"session_id"`
}

// InitClusterAnswer is InitCluster's answer: the names it was given.
type InitClusterAnswer struct {
	NodeNames []string `json:"node_name_list"`
}

// GetStatsReport's answer. The node fills it in (Backend.StatsReport);
// the sections of other packages are their own counter types, data only.

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
	Cluster *ClusterStats `json:"cluster,omitempty"`
	Error   ErrorCounts   `json:"error"`

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
	// RTCStats counts the clients' getStats() reports asked for, kept
	// and refused (the RTC stats API).
	RTCStats signal.RTCStatsCounters `json:"rtc_stats"`

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

// ErrorCounts is GetStatsReport's error object.
type ErrorCounts struct {
	SignalingError uint64 `json:"signaling_error"`
}

// ClusterStats is GetStatsReport's cluster object: raft's state and this
// node's cluster_node_name.
type ClusterStats struct {
	NodeName string `json:"cluster_node_name"`
	cluster.RaftStats
}

// DrainStatus is the drain's progress: GetStatsReport's drain object, the
// status page's bar and `hayate ctl drain`.
type DrainStatus struct {
	Active bool `json:"active"`
	// Reason is "shutdown" (SIGTERM) or "operator" (a block mode).
	Reason    string     `json:"reason,omitempty"`
	StartedAt *time.Time `json:"started_at,omitempty"`
	// Deadline is when a shutdown drain closes what is left (drain_timeout).
	Deadline           *time.Time `json:"deadline,omitempty"`
	ConnectionsAtStart int        `json:"connections_at_start"`
	SessionsAtStart    int        `json:"sessions_at_start"`
	Connections        int        `json:"connections"`
	Sessions           int        `json:"sessions"`
}
