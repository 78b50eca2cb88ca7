package node

import (
	"slices"
	"time"

	"github.com/hayate-sfu/hayate/metrics"
	"github.com/hayate-sfu/hayate/mode"
	"github.com/hayate-sfu/hayate/rtpcore"
	"github.com/hayate-sfu/hayate/webhook"
)

// WriteMetrics writes the node's metric families for /metrics.
//
// Names: where Shiguredo's sora_exporter has a metric for the same thing,
// Hayate uses its name and labels (sora_connections_total{state},
// sora_session_total{state}, the webhook counters, sora_cluster_*), so
// dashboards built on the exporter keep working; where the exporter's name
// breaks Prometheus's naming rules (a gauge ending in _total, a counter
// without it) the lint-clean name is used, as the exporter itself plans
// (sora_ongoing_connections). Everything else is hayate_*. The README lists
// every family.
//
// Adding a counter is one line: w.Counter(name, help, value), or
// w.SampleUint under an existing Family for one more label value.
func (n *Node) WriteMetrics(w *metrics.Writer) {
	m := n.media.Stats()
	n.writeBuild(w)
	n.writeMode(w)
	n.writeConnections(w, &m)
	n.writeWebhooks(w)
	n.writeMedia(w, &m)
	n.writeTURN(w, &m)
	n.writeDrain(w)
	if n.cl != nil {
		n.writeCluster(w)
	}
}

func (n *Node) writeBuild(w *metrics.Writer) {
	b := n.build
	w.Family("hayate_build_info", "Hayate's version and VCS revision; always 1.", metrics.GaugeType)
	w.SampleUint("hayate_build_info", 1, "version", b.Version, "revision", b.Revision, "goversion", b.GoVersion)
}

func (n *Node) writeMode(w *metrics.Writer) {
	w.Family("hayate_mode", "The node's mode by source (operator: ChangeMode; health: drain and cluster; effective: the stricter, what admission uses); 1 for the mode in force.", metrics.GaugeType)
	for _, src := range [...]struct {
		name string
		m    mode.Mode
	}{{"operator", n.word.Operator()}, {"health", n.word.Health()}, {"effective", n.word.Load()}} {
		for _, m := range [...]mode.Mode{mode.Normal, mode.BlockNewSession, mode.BlockNewConnection} {
			w.SampleBool("hayate_mode", src.m == m, "source", src.name, "mode", m.String())
		}
	}
	ready, _ := n.Ready()
	w.Family("hayate_ready", "1 when the node should get new connections (/readyz).", metrics.GaugeType)
	w.SampleBool("hayate_ready", ready)
}

func (n *Node) writeConnections(w *metrics.Writer, m *rtpcore.StatsSnapshot) {
	s := n.hub.Stats()
	w.Family("sora_connections_total", "Connections by what happened to them (sora_exporter's names).", metrics.CounterType)
	w.SampleUint("sora_connections_total", s.ConnectionCreated.Load(), "state", "created")
	w.SampleUint("sora_connections_total", s.ConnectionDestroyed.Load(), "state", "destroyed")
	w.SampleUint("sora_connections_total", s.Successful.Load(), "state", "successful")
	w.SampleUint("sora_connections_total", s.Failed.Load(), "state", "failed")

	admitted, pending := n.hub.Connections(), n.hub.Pending()
	connected := 0
	for _, c := range m.Profiles {
		connected += c
	}
	negotiating := max(admitted-connected, 0)
	w.GaugeInt("sora_ongoing_connections", "Connections admitted on this node now.", int64(admitted))
	w.Family("hayate_connections", "Signaling connections now by state: pending (WebSocket open, not admitted yet), negotiating (admitted, media not up), connected (ICE and DTLS up).", metrics.GaugeType)
	w.SampleUint("hayate_connections", uint64(pending), "state", "pending")
	w.SampleUint("hayate_connections", uint64(negotiating), "state", "negotiating")
	w.SampleUint("hayate_connections", uint64(min(connected, admitted)), "state", "connected")

	w.Family("sora_session_total", "Sessions created and destroyed (sora_exporter's names).", metrics.CounterType)
	w.SampleUint("sora_session_total", s.SessionCreated.Load(), "state", "created")
	w.SampleUint("sora_session_total", s.SessionDestroyed.Load(), "state", "destroyed")
	w.GaugeInt("hayate_sessions", "Live sessions (channels with a connection) on this node now.", int64(n.hub.Sessions()))

	w.Family("hayate_refused_connections_total", "Connects refused before an offer, by reason (as GetStatsReport's refused_connections).", metrics.CounterType)
	for _, r := range [...]struct {
		reason string
		v      uint64
	}{
		{"BLOCKED-NEW-CONNECTION", s.RefusedBlockedNewConnection.Load()},
		{"BLOCKED-NEW-SESSION", s.RefusedBlockedNewSession.Load()},
		{"AUTH-DENIED", s.RefusedAuthDenied.Load()},
		{"AUTH-WEBHOOK-FAILED", s.RefusedAuthFailed.Load()},
		{"BAD-REQUEST", s.RefusedBadRequest.Load()},
		{"TIMEOUT", s.RefusedTimeout.Load()},
		{"LIMIT", s.RefusedLimit.Load()},
	} {
		w.SampleUint("hayate_refused_connections_total", r.v, "reason", r.reason)
	}
	w.Counter("hayate_signaling_errors_total", "Connections closed with 4400 (GetStatsReport error.signaling_error).", s.SignalingErrors.Load())
	w.Counter("hayate_ignored_signaling_messages_total", "Signaling messages of unknown type, ignored.", s.IgnoredMessages.Load())
	w.Counter("hayate_re_offers_total", "Re-offers sent.", s.ReOffers.Load())
	w.Counter("hayate_redirects_total", "Connects redirected to another cluster node.", s.Redirects.Load())
	w.Family("hayate_media_transports_total", "Media transports by outcome: connected (ICE and DTLS completed) or failed (closed by the media path).", metrics.CounterType)
	w.SampleUint("hayate_media_transports_total", s.MediaConnected.Load(), "outcome", "connected")
	w.SampleUint("hayate_media_transports_total", s.MediaFailed.Load(), "outcome", "failed")
	w.Family("hayate_panics_total", "Contained panics by where they happened (the node went on).", metrics.CounterType)
	w.SampleUint("hayate_panics_total", s.Panics.Load(), "where", "signaling")
	w.SampleUint("hayate_panics_total", m.Panics, "where", "media")

	dc := s.DataChannels()
	writeCounters(w, []counter{
		{"hayate_datachannel_switched_total", "Connections switched to DataChannel signaling.", dc.Switched},
		{"hayate_datachannel_websocket_detached_total", "Switched connections whose WebSocket was closed.", dc.Detached},
		{"hayate_datachannel_received_messages_total", "Messaging messages received on DataChannels.", dc.MessagesReceived},
		{"hayate_datachannel_relayed_messages_total", "Messaging messages relayed to receivers.", dc.MessagesRelayed},
		{"hayate_datachannel_queue_full_closes_total", "Connections closed because their DataChannel send queue was full.", dc.QueueFullCloses},
		{"hayate_datachannel_rpc_answered_total", "RPCs over DataChannel answered.", dc.RPCAnswered},
	})
	w.Family("hayate_datachannel_dropped_messages_total", "DataChannel messages dropped, by reason (GetStatsReport data_channels.dropped).", metrics.CounterType)
	writeSorted(w, "hayate_datachannel_dropped_messages_total", dc.Dropped, "reason")
}

// writeCounters writes one unlabelled counter family per entry.
func writeCounters(w *metrics.Writer, cs []counter) {
	for _, c := range cs {
		w.Counter(c.name, c.help, c.v)
	}
}

// writeSorted writes one sample per key of values, in key order (a map's
// order is random), each with the key as the label value.
func writeSorted(w *metrics.Writer, name string, values map[string]uint64, label string, labels ...string) {
	var buf [64]string
	keys := buf[:0]
	for k := range values {
		if len(keys) < len(buf) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var all [8]string
	for _, k := range keys {
		l := append(append(all[:0], labels...), label, k)
		w.SampleUint(name, values[k], l...)
	}
}

func (n *Node) writeWebhooks(w *metrics.Writer) {
	a := n.auth
	w.Family("sora_auth_webhook_total", "Auth webhook calls: successful (a valid answer) or failed (sora_exporter's names).", metrics.CounterType)
	w.SampleUint("sora_auth_webhook_total", a.Counters.Successful.Load(), "state", "successful")
	w.SampleUint("sora_auth_webhook_total", a.Counters.Failed.Load(), "state", "failed")
	w.Family("sora_successful_auth_webhook_total", "Valid auth webhook answers by decision (sora_exporter's names).", metrics.CounterType)
	w.SampleUint("sora_successful_auth_webhook_total", a.Allowed.Load(), "state", "allowed")
	w.SampleUint("sora_successful_auth_webhook_total", a.Denied.Load(), "state", "denied")
	for _, q := range [...]struct {
		name string
		c    *webhook.Counters
	}{{"sora_session_webhook_total", &n.sessionQ.Counters}, {"sora_event_webhook_total", &n.eventQ.Counters}} {
		w.Family(q.name, "Webhooks delivered (successful) or not (failed) (sora_exporter's names).", metrics.CounterType)
		w.SampleUint(q.name, q.c.Successful.Load(), "state", "successful")
		w.SampleUint(q.name, q.c.Failed.Load(), "state", "failed")
	}
	w.Family("hayate_webhook_ignored_total", "Session and event webhooks dropped because their queue was full (total_ignored_*_webhook).", metrics.CounterType)
	w.SampleUint("hayate_webhook_ignored_total", n.sessionQ.Counters.Ignored.Load(), "webhook", "session")
	w.SampleUint("hayate_webhook_ignored_total", n.eventQ.Counters.Ignored.Load(), "webhook", "event")
}

// counter is one counter family: a name, its help and its value.
type counter struct {
	name, help string
	v          uint64
}

func (n *Node) writeMedia(w *metrics.Writer, m *rtpcore.StatsSnapshot) {
	be := n.media.Backend()
	// One line per counter; each carries the socket backend as a label so
	// that runs on io_uring and epoll can be told apart on one dashboard.
	for _, c := range [...]counter{
		{"hayate_media_received_packets_total", "UDP datagrams received on the media port.", m.PacketsIn},
		{"hayate_media_received_bytes_total", "Bytes received on the media port.", m.BytesIn},
		{"hayate_media_sent_packets_total", "UDP datagrams handed to the kernel.", m.PacketsOut},
		{"hayate_media_sent_bytes_total", "Bytes handed to the kernel.", m.BytesOut},
		{"hayate_media_send_errors_total", "Datagrams the kernel refused.", m.SendErrors},
		{"hayate_media_receive_calls_total", "Receive system calls (recvmmsg or io_uring completions batches).", m.RecvCalls},
		{"hayate_media_send_calls_total", "Send system calls (sendmmsg or io_uring submissions).", m.SendCalls},
		{"hayate_media_received_rtp_packets_total", "RTP packets decrypted from publishers.", m.ReceivedRTP},
		{"hayate_media_forwarded_rtp_packets_total", "RTP packets sent to subscribers.", m.Forwarded},
		{"hayate_media_handed_off_rtp_packets_total", "Decrypted RTP packets handed from the socket that received them to another that owns subscribers, once per socket.", m.HandedOff},
		{"hayate_media_retransmitted_rtp_packets_total", "RTP packets resent in answer to NACKs.", m.Retransmitted},
		{"hayate_media_nacks_received_total", "RTCP NACKs received from subscribers.", m.NACKsReceived},
		{"hayate_media_plis_received_total", "PLIs and FIRs received from subscribers.", m.PLIsReceived},
		{"hayate_media_plis_sent_total", "PLIs sent to publishers.", m.PLIsSent},
		{"hayate_media_sender_reports_forwarded_total", "RTCP sender reports forwarded.", m.SRsForwarded},
		{"hayate_media_receiver_reports_sent_total", "RTCP receiver reports sent to publishers.", m.RRsSent},
		{"hayate_media_stun_answered_total", "STUN binding requests answered.", m.STUNAnswered},
		{"hayate_media_stun_nominations_total", "ICE nominations (USE-CANDIDATE) accepted.", m.STUNNominations},
		{"hayate_media_dtls_handshakes_total", "DTLS handshakes completed.", m.DTLSHandshakes},
		{"hayate_media_dtls_failures_total", "DTLS handshakes failed.", m.DTLSFailures},
		{"hayate_media_transport_failures_total", "Transports closed by the media path (liveness, DTLS).", m.TransportFails},
		{"hayate_media_node_stalls_total", "Times the node itself stopped reading for longer than the stall threshold (peers are not failed for such a gap).", m.NodeStalls},
	} {
		w.Family(c.name, c.help, metrics.CounterType)
		w.SampleUint(c.name, c.v, "backend", be)
	}
	w.Family("hayate_media_dropped_packets_total", "Received datagrams dropped, by cause (GetStatsReport media.dropped).", metrics.CounterType)
	writeSorted(w, "hayate_media_dropped_packets_total", m.Dropped, "cause", "backend", be)
	w.Family("hayate_media_longest_node_stall_seconds", "The longest node stall so far.", metrics.GaugeType)
	w.Sample("hayate_media_longest_node_stall_seconds", float64(m.LongestNodeStallMs)/1000, "backend", be)
	writeCounters(w, []counter{
		{"sora_sctp_received_packets_total", "SCTP packets received over every DataChannel association (sora_exporter's name).", m.SCTPPacketsIn},
		{"sora_sctp_received_bytes_total", "SCTP bytes received (sora_exporter's name).", m.SCTPBytesIn},
		{"sora_sctp_sent_packets_total", "SCTP packets sent (sora_exporter's name).", m.SCTPPacketsOut},
		{"sora_sctp_sent_bytes_total", "SCTP bytes sent (sora_exporter's name).", m.SCTPBytesOut},
	})
	w.GaugeInt("hayate_media_transports", "Media transports open now.", int64(m.Transports))
	w.GaugeInt("hayate_media_peer_addresses", "Peer addresses the socket readers know now.", int64(m.Addresses))
}

// writeTURN writes Sora's TURN counters, the built-in TURN server's and
// ICE-TCP's, and the media core's links.
func (n *Node) writeTURN(w *metrics.Writer, m *rtpcore.StatsSnapshot) {
	s := n.hub.Stats()
	w.Family("sora_turn_connections_total", "Connections whose media went through TURN, by the client's transport to it: udp, or tcp (TCP and TLS) (sora_exporter's name).", metrics.CounterType)
	w.SampleUint("sora_turn_connections_total", s.TURNUDPConnections.Load(), "proto", "udp")
	w.SampleUint("sora_turn_connections_total", s.TURNTCPConnections.Load(), "proto", "tcp")
	var invalid uint64
	if n.turn != nil {
		invalid = n.turn.Stats().InvalidTCPPackets
	}
	w.Counter("sora_received_invalid_turn_tcp_packet_total", "TURN-TCP and TURN-TLS streams closed for a frame that is neither STUN nor ChannelData (sora_exporter's name).", invalid)
	w.GaugeInt("hayate_media_links", "In-process peers of the media core now (TURN allocations relaying in process, ICE-TCP connections).", m.Links.Open)
	w.Family("hayate_media_link_datagrams_total", "Datagrams between the media core and its links, by direction.", metrics.CounterType)
	w.SampleUint("hayate_media_link_datagrams_total", m.Links.Received, "direction", "in")
	w.SampleUint("hayate_media_link_datagrams_total", m.Links.Sent, "direction", "out")
	w.Family("hayate_media_link_dropped_datagrams_total", "Datagrams of links dropped, by reason: queue_full (a shard's in-process queue), closed (the link had gone).", metrics.CounterType)
	w.SampleUint("hayate_media_link_dropped_datagrams_total", m.Links.QueueFull, "reason", "queue_full")
	w.SampleUint("hayate_media_link_dropped_datagrams_total", m.Links.Closed, "reason", "closed")
	if n.turn != nil {
		t := n.turn.Stats()
		w.GaugeInt("hayate_turn_allocations", "TURN allocations now.", t.Allocations)
		w.GaugeInt("hayate_turn_credentials", "Connections holding TURN credentials now.", int64(t.Credentials))
		w.Family("hayate_turn_allocations_total", "TURN allocations made, by the client's transport.", metrics.CounterType)
		writeSorted(w, "hayate_turn_allocations_total", t.TotalAllocations, "transport")
		w.Family("hayate_turn_refused_total", "TURN requests refused, by reason: auth (401), quota (486), permission (403: a peer other than the media address).", metrics.CounterType)
		w.SampleUint("hayate_turn_refused_total", t.AuthFailures, "reason", "auth")
		w.SampleUint("hayate_turn_refused_total", t.QuotaRefused, "reason", "quota")
		w.SampleUint("hayate_turn_refused_total", t.PermissionRefused, "reason", "permission")
		w.Family("hayate_turn_dropped_datagrams_total", "Relayed datagrams dropped, by reason: wrong_peer (not the media address), foreign_ufrag (an ICE check for another connection), queue_full (a slow client).", metrics.CounterType)
		writeSorted(w, "hayate_turn_dropped_datagrams_total", t.Dropped, "reason")
		w.Family("hayate_turn_relayed_datagrams_total", "Datagrams relayed, by direction.", metrics.CounterType)
		w.SampleUint("hayate_turn_relayed_datagrams_total", t.RelayedIn, "direction", "to_node")
		w.SampleUint("hayate_turn_relayed_datagrams_total", t.RelayedOut, "direction", "to_client")
		w.Family("hayate_turn_closed_allocations_total", "Allocations Hayate closed, by reason: idle (turn_allocation_idle_timeout), revoked (their connection ended).", metrics.CounterType)
		w.SampleUint("hayate_turn_closed_allocations_total", t.IdleClosed, "reason", "idle")
		w.SampleUint("hayate_turn_closed_allocations_total", t.RevokedClosed, "reason", "revoked")
		w.GaugeInt("hayate_turn_tcp_connections", "TURN-TCP and TURN-TLS connections now.", t.TCPConnections)
		w.Family("hayate_turn_tcp_connections_total", "TURN-TCP and TURN-TLS connections by outcome: accepted, refused (turn_max_tcp_connections), idle_closed, tls_failed (handshake).", metrics.CounterType)
		w.SampleUint("hayate_turn_tcp_connections_total", t.TCPAccepted, "outcome", "accepted")
		w.SampleUint("hayate_turn_tcp_connections_total", t.TCPRefused, "outcome", "refused")
		w.SampleUint("hayate_turn_tcp_connections_total", t.TCPIdleClosed, "outcome", "idle_closed")
		w.SampleUint("hayate_turn_tcp_connections_total", t.TLSHandshakeFailures, "outcome", "tls_failed")
	}
	if n.iceTCP != nil {
		i := n.iceTCP.Stats()
		w.GaugeInt("hayate_ice_tcp_connections", "ICE-TCP connections now.", i.Open)
		w.Family("hayate_ice_tcp_connections_total", "ICE-TCP connections by outcome: accepted, refused (the limit), handshake_timeout (no ICE check passed), idle_closed, invalid_frame.", metrics.CounterType)
		w.SampleUint("hayate_ice_tcp_connections_total", i.Accepted, "outcome", "accepted")
		w.SampleUint("hayate_ice_tcp_connections_total", i.Refused, "outcome", "refused")
		w.SampleUint("hayate_ice_tcp_connections_total", i.HandshakeTimeouts, "outcome", "handshake_timeout")
		w.SampleUint("hayate_ice_tcp_connections_total", i.IdleClosed, "outcome", "idle_closed")
		w.SampleUint("hayate_ice_tcp_connections_total", i.InvalidFrames, "outcome", "invalid_frame")
		w.Family("hayate_ice_tcp_frames_total", "RFC 4571 frames on ICE-TCP connections, by direction.", metrics.CounterType)
		w.SampleUint("hayate_ice_tcp_frames_total", i.FramesIn, "direction", "in")
		w.SampleUint("hayate_ice_tcp_frames_total", i.FramesOut, "direction", "out")
		w.Counter("hayate_ice_tcp_dropped_frames_total", "Frames to ICE-TCP clients dropped because the client read too slowly.", i.QueueFull)
	}
}

func (n *Node) writeDrain(w *metrics.Writer) {
	d := n.DrainStatus()
	w.Family("hayate_draining", "1 while a drain is under way, by reason: shutdown (SIGTERM) or operator (a block mode set by the operator).", metrics.GaugeType)
	w.SampleBool("hayate_draining", d.Active && d.Reason == DrainShutdown, "reason", DrainShutdown)
	w.SampleBool("hayate_draining", d.Active && d.Reason == DrainOperator, "reason", DrainOperator)
	w.GaugeInt("hayate_drain_start_connections", "Connections when the drain under way began (0 when none); sora_ongoing_connections is what is left.", int64(d.ConnectionsAtStart))
	w.GaugeInt("hayate_drain_start_sessions", "Sessions when the drain under way began (0 when none); hayate_sessions is what is left.", int64(d.SessionsAtStart))
	var started, deadline float64
	if d.StartedAt != nil {
		started = unixSeconds(*d.StartedAt)
	}
	if d.Deadline != nil {
		deadline = unixSeconds(*d.Deadline)
	}
	w.Gauge("hayate_drain_started_timestamp_seconds", "When the drain under way began (0 when none).", started)
	w.Gauge("hayate_drain_deadline_timestamp_seconds", "When a shutdown drain closes what is left (drain_timeout; 0 when none).", deadline)
}

func (n *Node) writeCluster(w *metrics.Writer) {
	c := n.cl.c
	raft := c.RaftStats()
	state, _ := raft["raft_state"].(string)
	w.Family("sora_cluster_raft_state", "The current Raft state, in the label state; always 1 (sora_exporter's name).", metrics.GaugeType)
	w.SampleUint("sora_cluster_raft_state", 1, "state", state)
	term, _ := raft["raft_term"].(uint64)
	commit, _ := raft["raft_commit_index"].(uint64)
	applied, _ := raft["raft_applied_index"].(uint64)
	w.GaugeInt("sora_cluster_raft_term", "The current Raft term (sora_exporter's name).", int64(term))
	w.GaugeInt("sora_cluster_raft_commit_index", "The latest committed Raft log index (sora_exporter's name; a gauge, as the naming rules want for a name without _total).", int64(commit))
	w.GaugeInt("hayate_cluster_raft_applied_index", "The Raft log index this node's channel table has applied.", int64(applied))
	w.Family("sora_cluster_node", "The cluster's nodes with their effective mode; 1 when connected (sora_exporter's name and labels).", metrics.GaugeType)
	for _, node := range c.Nodes() {
		typ := "regular"
		if node.Temporary {
			typ = "temporary"
		}
		w.SampleBool("sora_cluster_node", node.Connected, "node_name", node.Name, "mode", node.Mode.String(), "node_type", typ)
	}
	held, until := c.Lease()
	w.Family("hayate_cluster_lease_held", "1 while this node holds a valid lease (it serves its channels only then).", metrics.GaugeType)
	w.SampleBool("hayate_cluster_lease_held", held)
	var untilSec float64
	if !until.IsZero() {
		untilSec = unixSeconds(until)
	}
	w.Gauge("hayate_cluster_lease_expiry_timestamp_seconds", "When this node's lease runs out unless renewed (0 before the first).", untilSec)
	owned, served, total := c.ChannelCounts()
	w.GaugeInt("hayate_cluster_channels_owned", "Channels the cluster's table gives this node.", int64(owned))
	w.GaugeInt("hayate_cluster_channels_served", "Channels this node serves now (owned, with a valid lease).", int64(served))
	w.GaugeInt("hayate_cluster_channels", "Channels in the cluster's table, on every node.", int64(total))
	w.GaugeInt("hayate_cluster_epoch", "This node's incarnation in the cluster (Sora's epoch).", int64(c.Epoch()))
}

func unixSeconds(t time.Time) float64 {
	return float64(t.UnixNano()) / float64(time.Second)
}
