package rtpcore

import (
	"sync/atomic"

	"github.com/hayate-sfu/hayate/rtpcore/datachan"
)

// Stats are media counters. Each shard has its own (written by its loop
// only, so the atomics are uncontended); the engine has one for what
// happens off the loops.
type Stats struct {
	PacketsIn    atomic.Uint64 // datagrams received
	BytesIn      atomic.Uint64
	PacketsOut   atomic.Uint64 // datagrams handed to the kernel
	BytesOut     atomic.Uint64
	SendCalls    atomic.Uint64 // sendmmsg calls
	SendMessages atomic.Uint64 // messages sent (a GSO message carries several datagrams)
	RecvCalls    atomic.Uint64 // recvmmsg calls
	SendErrors   atomic.Uint64 // datagrams the kernel refused
	Forwarded    atomic.Uint64 // RTP packets sent to subscribers
	ReceivedRTP  atomic.Uint64 // RTP packets decrypted from publishers

	STUNAnswered    atomic.Uint64
	STUNNominations atomic.Uint64

	DTLSHandshakes atomic.Uint64
	DTLSFailures   atomic.Uint64
	DTLSReleased   atomic.Uint64

	NACKsReceived atomic.Uint64
	Retransmitted atomic.Uint64
	PLIsReceived  atomic.Uint64
	PLIsSent      atomic.Uint64
	SRsForwarded  atomic.Uint64
	RRsSent       atomic.Uint64
	// Congestion control: transport feedback from subscribers and to
	// publishers, REMBs, padding packets of bandwidth probes; simulcast
	// layer switches.
	TWCCReceived   atomic.Uint64
	TWCCSent       atomic.Uint64
	REMBReceived   atomic.Uint64
	ProbePackets   atomic.Uint64
	LayerSwitches  atomic.Uint64
	TransportFails atomic.Uint64
	Panics         atomic.Uint64

	// Dropped packets by reason.
	DropMalformed          atomic.Uint64 // fits no RFC 7983 range, or truncated
	DropUnknownAddress     atomic.Uint64 // DTLS/SRTP from an address that did not pass ICE
	DropSTUNMalformed      atomic.Uint64 // STUN that does not decode or lacks a valid FINGERPRINT
	DropSTUNUnknown        atomic.Uint64 // USERNAME names no connection
	DropSTUNBadRequest     atomic.Uint64 // missing attributes or wrong remote ufrag (400 sent)
	DropSTUNAuth           atomic.Uint64 // MESSAGE-INTEGRITY failed (401 sent)
	DropNotReady           atomic.Uint64 // SRTP before the DTLS handshake finished
	DropSRTPAuth           atomic.Uint64 // SRTP/SRTCP whose tag does not verify
	DropSRTPReplay         atomic.Uint64 // SRTP/SRTCP replayed
	DropUnknownSSRC        atomic.Uint64 // RTP of an SSRC the connection did not announce
	DropDTLSQueueFull      atomic.Uint64 // DTLS datagrams beyond the handshake queue
	DropDTLSAfterHandshake atomic.Uint64 // DTLS datagrams after the handshake state was released
	DropSendBatchNoRoom    atomic.Uint64 // packet too large for a send slot after re-encryption
	DropHandoffFull        atomic.Uint64 // packets not handed to a shard whose ring was full (handoff.go)

	// HandedOff counts packets handed to another shard, once per shard.
	HandedOff atomic.Uint64

	// Links (link.go): in-process peers.
	LinksOpened       atomic.Uint64 // links made
	LinkIn            atomic.Uint64 // datagrams links handed to the core
	LinkOut           atomic.Uint64 // datagrams the core handed to links
	DropLinkIn        atomic.Uint64 // from a closed link, empty or over bufSize
	DropLinkQueueFull atomic.Uint64 // the shard's in-process queue was full
	DropLinkGone      atomic.Uint64 // to the address of a link that is closed
}

// receiveDropper is a backend whose socket can say how many datagrams the
// kernel dropped for it (sockdrops_linux.go).
type receiveDropper interface {
	// receiveDrops is that count since the socket opened; ok is false
	// when the backend cannot tell.
	receiveDrops() (n uint64, ok bool)
}

// LinkStats are the counters of in-process peers (TURN allocations that
// relay to this node, ICE-TCP connections).
type LinkStats struct {
	Open      int64  `json:"open"`
	Opened    uint64 `json:"total_opened"`
	Received  uint64 `json:"total_received_datagrams"`
	Sent      uint64 `json:"total_sent_datagrams"`
	QueueFull uint64 `json:"total_dropped_queue_full"`
	Closed    uint64 `json:"total_dropped_closed"`
}

// StatsSnapshot is a copy of the counters, summed over shards; it is the
// media section of GetStatsReport.
type StatsSnapshot struct {
	PacketsIn       uint64 `json:"total_received_packets"`
	BytesIn         uint64 `json:"total_received_bytes"`
	PacketsOut      uint64 `json:"total_sent_packets"`
	BytesOut        uint64 `json:"total_sent_bytes"`
	SendCalls       uint64 `json:"total_send_calls"`
	SendMessages    uint64 `json:"total_send_messages"`
	RecvCalls       uint64 `json:"total_receive_calls"`
	SendErrors      uint64 `json:"total_send_errors"`
	Forwarded       uint64 `json:"total_forwarded_rtp"`
	ReceivedRTP     uint64 `json:"total_received_rtp"`
	HandedOff       uint64 `json:"total_handed_off_rtp"`
	STUNAnswered    uint64 `json:"total_stun_answered"`
	STUNNominations uint64 `json:"total_stun_nominations"`
	DTLSHandshakes  uint64 `json:"total_dtls_handshakes"`
	DTLSFailures    uint64 `json:"total_dtls_failures"`
	DTLSReleased    uint64 `json:"total_dtls_released"`
	NACKsReceived   uint64 `json:"total_nacks_received"`
	Retransmitted   uint64 `json:"total_retransmitted_rtp"`
	PLIsReceived    uint64 `json:"total_plis_received"`
	PLIsSent        uint64 `json:"total_plis_sent"`
	SRsForwarded    uint64 `json:"total_srs_forwarded"`
	RRsSent         uint64 `json:"total_rrs_sent"`
	TWCCReceived    uint64 `json:"total_transport_feedback_received"`
	TWCCSent        uint64 `json:"total_transport_feedback_sent"`
	REMBReceived    uint64 `json:"total_rembs_received"`
	ProbePackets    uint64 `json:"total_probe_packets"`
	LayerSwitches   uint64 `json:"total_layer_switches"`
	TransportFails  uint64 `json:"total_transport_failures"`
	Panics          uint64 `json:"total_panics"`
	// NodeStalls counts the times the node itself stopped listening for
	// longer than stallThreshold (liveness.go); LongestNodeStallMs is the
	// longest. Peers are not failed for such a gap.
	NodeStalls         uint64            `json:"total_node_stalls"`
	LongestNodeStallMs int64             `json:"longest_node_stall_ms"`
	Dropped            map[string]uint64 `json:"dropped"`
	Transports         int               `json:"transports"`
	// Addresses are the peer addresses the socket readers still know;
	// those of closed transports are forgotten within a second.
	Addresses int `json:"addresses"`
	// Profiles counts connected transports by SRTP protection profile.
	Profiles map[string]int `json:"srtp_profiles"`
	// SCTP packets and bytes over every DataChannel association, with
	// Sora's names (sora_exporter reads them at the top level of
	// GetStatsReport, where the node copies them).
	SCTPPacketsIn  uint64 `json:"total_received_sctp"`
	SCTPBytesIn    uint64 `json:"total_received_sctp_byte_size"`
	SCTPPacketsOut uint64 `json:"total_sent_sctp"`
	SCTPBytesOut   uint64 `json:"total_sent_sctp_byte_size"`
	// DataChannels are the DataChannel counters of the media path.
	DataChannels DataStats `json:"data_channels"`
	// Links are the in-process peers (link.go).
	Links LinkStats `json:"links"`
}

// DataStats are the media path's DataChannel counters.
type DataStats struct {
	Associations     int64             `json:"associations"`
	MessagesReceived uint64            `json:"total_received_messages"`
	MessagesSent     uint64            `json:"total_sent_messages"`
	Dropped          map[string]uint64 `json:"dropped"`
}

// addData adds the DataChannel counters.
func (a *StatsSnapshot) addData(c *datachan.Counters) {
	a.SCTPPacketsIn, a.SCTPBytesIn = c.PacketsIn.Load(), c.BytesIn.Load()
	a.SCTPPacketsOut, a.SCTPBytesOut = c.PacketsOut.Load(), c.BytesOut.Load()
	a.DataChannels = DataStats{
		Associations: c.Associations.Load(), MessagesReceived: c.MessagesIn.Load(), MessagesSent: c.MessagesOut.Load(),
		Dropped: map[string]uint64{
			"too_large":       c.DropTooLarge.Load(),
			"bad_dcep":        c.DropBadDCEP.Load(),
			"unknown_ppid":    c.DropUnknownPPID.Load(),
			"refused_streams": c.RefusedStreams.Load(),
		},
	}
}

func (s *Stats) snapshot() StatsSnapshot {
	return StatsSnapshot{
		PacketsIn: s.PacketsIn.Load(), BytesIn: s.BytesIn.Load(), PacketsOut: s.PacketsOut.Load(),
		BytesOut: s.BytesOut.Load(), SendCalls: s.SendCalls.Load(), SendMessages: s.SendMessages.Load(), RecvCalls: s.RecvCalls.Load(),
		SendErrors: s.SendErrors.Load(), Forwarded: s.Forwarded.Load(), ReceivedRTP: s.ReceivedRTP.Load(),
		HandedOff:    s.HandedOff.Load(),
		STUNAnswered: s.STUNAnswered.Load(), STUNNominations: s.STUNNominations.Load(),
		DTLSHandshakes: s.DTLSHandshakes.Load(), DTLSFailures: s.DTLSFailures.Load(), DTLSReleased: s.DTLSReleased.Load(),
		NACKsReceived: s.NACKsReceived.Load(), Retransmitted: s.Retransmitted.Load(),
		PLIsReceived: s.PLIsReceived.Load(), PLIsSent: s.PLIsSent.Load(), SRsForwarded: s.SRsForwarded.Load(),
		RRsSent: s.RRsSent.Load(), TWCCReceived: s.TWCCReceived.Load(), TWCCSent: s.TWCCSent.Load(),
		REMBReceived: s.REMBReceived.Load(), ProbePackets: s.ProbePackets.Load(), LayerSwitches: s.LayerSwitches.Load(),
		TransportFails: s.TransportFails.Load(), Panics: s.Panics.Load(),
		Links: LinkStats{Opened: s.LinksOpened.Load(), Received: s.LinkIn.Load(), Sent: s.LinkOut.Load(),
			QueueFull: s.DropLinkQueueFull.Load(), Closed: s.DropLinkIn.Load() + s.DropLinkGone.Load()},
		Dropped: map[string]uint64{
			"malformed":            s.DropMalformed.Load(),
			"unknown_address":      s.DropUnknownAddress.Load(),
			"stun_malformed":       s.DropSTUNMalformed.Load(),
			"stun_unknown_ufrag":   s.DropSTUNUnknown.Load(),
			"stun_bad_request":     s.DropSTUNBadRequest.Load(),
			"stun_unauthorized":    s.DropSTUNAuth.Load(),
			"not_ready":            s.DropNotReady.Load(),
			"srtp_auth_failed":     s.DropSRTPAuth.Load(),
			"srtp_replayed":        s.DropSRTPReplay.Load(),
			"unknown_ssrc":         s.DropUnknownSSRC.Load(),
			"dtls_queue_full":      s.DropDTLSQueueFull.Load(),
			"dtls_after_handshake": s.DropDTLSAfterHandshake.Load(),
			"too_large":            s.DropSendBatchNoRoom.Load(),
			"handoff_full":         s.DropHandoffFull.Load(),
		},
	}
}

func (a *StatsSnapshot) add(b StatsSnapshot) {
	a.PacketsIn += b.PacketsIn
	a.BytesIn += b.BytesIn
	a.PacketsOut += b.PacketsOut
	a.BytesOut += b.BytesOut
	a.SendCalls += b.SendCalls
	a.SendMessages += b.SendMessages
	a.RecvCalls += b.RecvCalls
	a.SendErrors += b.SendErrors
	a.Forwarded += b.Forwarded
	a.ReceivedRTP += b.ReceivedRTP
	a.HandedOff += b.HandedOff
	a.STUNAnswered += b.STUNAnswered
	a.STUNNominations += b.STUNNominations
	a.DTLSHandshakes += b.DTLSHandshakes
	a.DTLSFailures += b.DTLSFailures
	a.DTLSReleased += b.DTLSReleased
	a.NACKsReceived += b.NACKsReceived
	a.Retransmitted += b.Retransmitted
	a.PLIsReceived += b.PLIsReceived
	a.PLIsSent += b.PLIsSent
	a.SRsForwarded += b.SRsForwarded
	a.RRsSent += b.RRsSent
	a.TWCCReceived += b.TWCCReceived
	a.TWCCSent += b.TWCCSent
	a.REMBReceived += b.REMBReceived
	a.ProbePackets += b.ProbePackets
	a.LayerSwitches += b.LayerSwitches
	a.TransportFails += b.TransportFails
	a.Panics += b.Panics
	a.Links.Opened += b.Links.Opened
	a.Links.Received += b.Links.Received
	a.Links.Sent += b.Links.Sent
	a.Links.QueueFull += b.Links.QueueFull
	a.Links.Closed += b.Links.Closed
	for k, v := range b.Dropped {
		a.Dropped[k] += v
	}
}
