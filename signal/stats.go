package signal

import "sync/atomic"

// Stats are the signaling counters of GetStatsReport. Names follow Sora's
// where Sora has one (sora_exporter collector/sora_api.go).
type Stats struct {
	ConnectionCreated   atomic.Uint64 // total_connection_created
	ConnectionDestroyed atomic.Uint64 // total_connection_destroyed
	Successful          atomic.Uint64 // total_successful_connections
	Failed              atomic.Uint64 // total_failed_connections
	SessionCreated      atomic.Uint64 // total_session_created
	SessionDestroyed    atomic.Uint64 // total_session_destroyed
	// UnsupportedSessionPayouts counts session.created answers with a
	// payout Hayate does not apply, or that are no JSON object (payouts.go).
	UnsupportedSessionPayouts atomic.Uint64
	SignalingErrors           atomic.Uint64 // error.signaling_error: closes with 4400
	IgnoredMessages           atomic.Uint64 // messages of unknown type, ignored
	ReOffers                  atomic.Uint64 // re-offers sent
	Redirects                 atomic.Uint64 // connects redirected to another cluster node
	Panics                    atomic.Uint64 // connections ended by a contained panic
	MediaConnected            atomic.Uint64 // transports whose ICE and DTLS completed
	MediaFailed               atomic.Uint64 // transports closed by the media path
	SimulcastSwitched         atomic.Uint64 // simulcast stream switches of viewers
	RidRequests               atomic.Uint64 // rid requests by the API
	SpotlightFocused          atomic.Uint64 // publishers brought into a spotlight focus
	TURNUDPConnections        atomic.Uint64 // total_turn_udp_connections: connected through TURN over UDP
	TURNTCPConnections        atomic.Uint64 // total_turn_tcp_connections: connected through TURN over TCP or TLS

	// DataChannels (datachannels.go, messaging.go).
	Switched            atomic.Uint64 // connections switched to DataChannel signaling
	Detached            atomic.Uint64 // switched connections that outlived their WebSocket
	DataMessagesIn      atomic.Uint64 // messages clients sent on messaging labels
	DataRelayed         atomic.Uint64 // messages delivered to receivers
	DataDropDirection   atomic.Uint64 // sent on a label the client declared recvonly
	DataDropRateLimited atomic.Uint64 // over data_channel_messages_per_second
	DataDropInflate     atomic.Uint64 // compressed input that does not inflate within the size limit
	DataDropTooLarge    atomic.Uint64 // over the receiver's max-message-size
	DataQueueFull       atomic.Uint64 // receivers closed with DATA-CHANNEL-QUEUE-FULL
	RPCAnswered         atomic.Uint64 // JSON-RPC requests answered on rpc

	// RTC stats (rtcstats.go).
	RTCStatsRequested atomic.Uint64 // stats requests sent (ping with stats, req-stats)
	RTCStatsReceived  atomic.Uint64 // reports kept
	RTCStatsTooLarge  atomic.Uint64 // reports over rtc_stats_max_bytes, dropped
	RTCStatsMalformed atomic.Uint64 // replies that are no JSON array of objects, dropped

	// Refusals before an offer, by reason.
	RefusedBlockedNewConnection atomic.Uint64
	RefusedBlockedNewSession    atomic.Uint64
	RefusedAuthDenied           atomic.Uint64
	RefusedAuthFailed           atomic.Uint64
	RefusedBadRequest           atomic.Uint64
	RefusedTimeout              atomic.Uint64
	RefusedLimit                atomic.Uint64
}

func (s *Stats) countRefusal(e *CloseError) {
	switch e.Code {
	case CodeBlocked:
		if e == ErrBlockedNewSession {
			s.RefusedBlockedNewSession.Add(1)
		} else {
			s.RefusedBlockedNewConnection.Add(1)
		}
	case CodeAuthDenied:
		s.RefusedAuthDenied.Add(1)
	case CodeAuthFailed:
		s.RefusedAuthFailed.Add(1)
	case CodeBadRequest:
		s.RefusedBadRequest.Add(1)
	case CodeTimeout:
		s.RefusedTimeout.Add(1)
	case CodeLimit:
		s.RefusedLimit.Add(1)
	}
}

// Refusals returns the refusal counters keyed by the names used in
// GetStatsReport's refused_connections object.
func (s *Stats) Refusals() map[string]uint64 {
	return map[string]uint64{
		"BLOCKED-NEW-CONNECTION": s.RefusedBlockedNewConnection.Load(),
		"BLOCKED-NEW-SESSION":    s.RefusedBlockedNewSession.Load(),
		"AUTH-DENIED":            s.RefusedAuthDenied.Load(),
		"AUTH-WEBHOOK-FAILED":    s.RefusedAuthFailed.Load(),
		"BAD-REQUEST":            s.RefusedBadRequest.Load(),
		"TIMEOUT":                s.RefusedTimeout.Load(),
		"LIMIT":                  s.RefusedLimit.Load(),
	}
}

// DataChannelStats is GetStatsReport's data_channels object.
type DataChannelStats struct {
	Switched         uint64            `json:"total_switched"`
	Detached         uint64            `json:"total_websocket_detached"`
	MessagesReceived uint64            `json:"total_received_messages"`
	MessagesRelayed  uint64            `json:"total_relayed_messages"`
	QueueFullCloses  uint64            `json:"total_queue_full_closes"`
	RPCAnswered      uint64            `json:"total_rpc_answered"`
	Dropped          map[string]uint64 `json:"dropped"`
}

// DataChannels returns the DataChannel counters.
func (s *Stats) DataChannels() DataChannelStats {
	return DataChannelStats{
		Switched: s.Switched.Load(), Detached: s.Detached.Load(), MessagesReceived: s.DataMessagesIn.Load(),
		MessagesRelayed: s.DataRelayed.Load(), QueueFullCloses: s.DataQueueFull.Load(), RPCAnswered: s.RPCAnswered.Load(),
		Dropped: map[string]uint64{
			"direction":    s.DataDropDirection.Load(),
			"rate_limited": s.DataDropRateLimited.Load(),
			"inflate":      s.DataDropInflate.Load(),
			"too_large":    s.DataDropTooLarge.Load(),
		},
	}
}

// RTCStatsCounters is GetStatsReport's rtc_stats object.
type RTCStatsCounters struct {
	Requested uint64            `json:"total_requested"`
	Received  uint64            `json:"total_received"`
	Refused   map[string]uint64 `json:"refused"`
}

// RTCStats returns the RTC stats counters.
func (s *Stats) RTCStats() RTCStatsCounters {
	return RTCStatsCounters{
		Requested: s.RTCStatsRequested.Load(), Received: s.RTCStatsReceived.Load(),
		Refused: map[string]uint64{"too_large": s.RTCStatsTooLarge.Load(), "malformed": s.RTCStatsMalformed.Load()},
	}
}
