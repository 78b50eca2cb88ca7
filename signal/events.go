package signal

import (
	"encoding/json"
	"time"

	"github.com/hayate-sfu/hayate/internal/ids"
)

// Webhook and notify payloads, with Sora's field names
// (docs/spec/sora-protocol.md §1.9 and 3; https://sora-doc.shiguredo.jp/WEBHOOK).

// timestamp formats t as Sora does: RFC 3339 in UTC with microseconds.
func timestamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000Z") }

// hookHeader is the common part of every session and event webhook.
type hookHeader struct {
	Type      string `json:"type"`
	ID        string `json:"id"`
	Timestamp string `json:"timestamp"`
	Version   string `json:"version"`
	Label     string `json:"label"`
	NodeName  string `json:"node_name"`
}

func (h *Hub) header(typ string) hookHeader {
	return hookHeader{Type: typ, ID: ids.New(), Timestamp: timestamp(time.Now()), Version: h.set.Version, Label: h.set.Label, NodeName: h.set.NodeName}
}

// SessionInfo is a session webhook's body (session.created, .updated,
// .destroyed) and GetSession's answer, as the session.updated webhook.
type SessionInfo struct {
	hookHeader
	ExternalSignalingURL string              `json:"external_signaling_url,omitempty"`
	ChannelID            string              `json:"channel_id"`
	SessionID            string              `json:"session_id"`
	Multistream          bool                `json:"multistream"`
	Spotlight            bool                `json:"spotlight"`
	CreatedTime          int64               `json:"created_time"`
	CreatedTimestamp     string              `json:"created_timestamp"`
	DestroyedTime        int64               `json:"destroyed_time,omitempty"`
	DestroyedTimestamp   string              `json:"destroyed_timestamp,omitempty"`
	MaxConnections       int                 `json:"max_connections,omitempty"`
	TotalConnections     int                 `json:"total_connections,omitempty"`
	SessionMetadata      json.RawMessage     `json:"session_metadata,omitempty"`
	Connections          []sessionConnection `json:"connections,omitempty"`
}

// sessionConnection is one entry of session.destroyed's connections list.
type sessionConnection struct {
	Role         Role   `json:"role"`
	ClientID     string `json:"client_id"`
	BundleID     string `json:"bundle_id"`
	ConnectionID string `json:"connection_id"`
	Simulcast    bool   `json:"simulcast"`
	mediaFields
	ConnectionCreatedTimestamp   string          `json:"connection_created_timestamp"`
	ConnectionDestroyedTimestamp string          `json:"connection_destroyed_timestamp"`
	EventMetadata                json.RawMessage `json:"event_metadata,omitempty"`
}

func (h *Hub) sessionPayload(typ string, ch *channel, destroyed time.Time) SessionInfo {
	p := SessionInfo{
		hookHeader: h.header(typ), ExternalSignalingURL: h.set.ExternalSignalingURL,
		ChannelID: ch.id, SessionID: ch.sessionID, Multistream: true, Spotlight: ch.spot != nil,
		CreatedTime: ch.created.Unix(), CreatedTimestamp: timestamp(ch.created),
	}
	if !destroyed.IsZero() {
		p.DestroyedTime = destroyed.Unix()
		p.DestroyedTimestamp = timestamp(destroyed)
		p.MaxConnections = ch.peak
		p.TotalConnections = ch.total
		p.SessionMetadata = ch.metadata()
		p.Connections = ch.history
	}
	return p
}

// counts are a channel's connection counts by role.
type counts struct {
	Connections         int `json:"channel_connections"`
	SendRecvConnections int `json:"channel_sendrecv_connections"`
	SendOnlyConnections int `json:"channel_sendonly_connections"`
	RecvOnlyConnections int `json:"channel_recvonly_connections"`
}

func (ch *channel) counts() counts {
	var n counts
	if ch == nil {
		return n
	}
	for _, m := range ch.members {
		n.Connections++
		switch m.role {
		case RoleSendRecv:
			n.SendRecvConnections++
		case RoleSendOnly:
			n.SendOnlyConnections++
		case RoleRecvOnly:
			n.RecvOnlyConnections++
		}
	}
	return n
}

type connectionHook struct {
	hookHeader
	LogWritten    bool            `json:"log_written"`
	Role          Role            `json:"role,omitempty"`
	ChannelID     string          `json:"channel_id,omitempty"`
	SessionID     string          `json:"session_id,omitempty"`
	ClientID      string          `json:"client_id,omitempty"`
	BundleID      string          `json:"bundle_id,omitempty"`
	ConnectionID  string          `json:"connection_id"`
	Multistream   bool            `json:"multistream"`
	Simulcast     bool            `json:"simulcast"`
	Spotlight     bool            `json:"spotlight"`
	EventMetadata json.RawMessage `json:"event_metadata,omitempty"`
	Data          connectionData  `json:"data"`
}

// mediaFields are the audio and video fields of Sora's webhook bodies.
type mediaFields struct {
	Audio          bool   `json:"audio"`
	AudioCodecType string `json:"audio_codec_type,omitempty"`
	AudioBitRate   int    `json:"audio_bit_rate,omitempty"`
	Video          bool   `json:"video"`
	VideoCodecType string `json:"video_codec_type,omitempty"`
	VideoBitRate   int    `json:"video_bit_rate,omitempty"`
}

// mediaFields are c's audio and video on or off and their codec types.
func (c *Conn) mediaFields() mediaFields {
	m := mediaFields{Audio: c.audio, Video: c.video}
	if c.audio {
		m.AudioCodecType = c.audioCodec.Type()
	}
	if c.video {
		m.VideoCodecType = c.videoCodec.Type()
	}
	return m
}

// connectionData is the data of connection.created, .updated and
// .destroyed. created_time is Unix seconds, as in Sora's event webhook;
// ListConnections' created_time is microseconds, as in Sora's API.
type connectionData struct {
	counts
	Minutes int `json:"minutes"`
	mediaFields
	TurnTransportType    string             `json:"turn_transport_type"`
	CreatedTime          int64              `json:"created_time"`
	CreatedTimestamp     string             `json:"created_timestamp"`
	DestroyedTime        int64              `json:"destroyed_time,omitempty"`
	DestroyedTimestamp   string             `json:"destroyed_timestamp,omitempty"`
	ICEConnectionState   iceConnectionState `json:"ice_connection_state"`
	TotalReceivedBytes   uint64             `json:"total_received_bytes"`
	TotalSentBytes       uint64             `json:"total_sent_bytes"`
	Reason               string             `json:"reason,omitempty"`
	DisconnectAPIReason  string             `json:"disconnect_api_reason,omitempty"`
	TypeDisconnectReason string             `json:"type_disconnect_reason,omitempty"`
}

// iceConnectionState is Sora's ice_connection_state of event webhooks:
// the time the connection spent in checking and disconnected.
type iceConnectionState struct {
	TotalCheckingDurationMs     int64 `json:"total_checking_duration_ms"`
	TotalDisconnectedDurationMs int64 `json:"total_disconnected_duration_ms"`
}

// failedHook is connection.failed, whose data has only the message, the
// channel's counts and the byte counters (Sora's EventWebhookConnectionFailedData).
type failedHook struct {
	hookHeader
	LogWritten   bool       `json:"log_written"`
	Role         Role       `json:"role,omitempty"`
	ChannelID    string     `json:"channel_id,omitempty"`
	ClientID     string     `json:"client_id,omitempty"`
	BundleID     string     `json:"bundle_id,omitempty"`
	ConnectionID string     `json:"connection_id"`
	Multistream  bool       `json:"multistream"`
	Simulcast    bool       `json:"simulcast"`
	Spotlight    bool       `json:"spotlight"`
	Data         failedData `json:"data"`
}

type failedData struct {
	Message string `json:"message"`
	counts
	TotalReceivedBytes uint64 `json:"total_received_bytes"`
	TotalSentBytes     uint64 `json:"total_sent_bytes"`
}

func (h *Hub) connectionPayload(typ string, c *Conn) connectionHook {
	p := connectionHook{
		hookHeader: h.header(typ), Role: c.role, ChannelID: c.channelID, SessionID: c.sessionID,
		ClientID: c.clientID, BundleID: c.bundleID, ConnectionID: c.id, Multistream: true,
		Simulcast: c.simulcast, Spotlight: c.spot.on, EventMetadata: c.eventMetadata,
	}
	in, out := c.mediaBytes()
	p.Data = connectionData{
		counts: c.ch.counts(), Minutes: c.minutes(), mediaFields: c.mediaFields(),
		TurnTransportType: c.turnTransportType(),
		CreatedTime:       c.createdAt.Unix(), CreatedTimestamp: timestamp(c.createdAt),
		ICEConnectionState: c.iceState(), TotalReceivedBytes: in, TotalSentBytes: out,
	}
	if typ == "connection.destroyed" {
		p.Data.DestroyedTime = c.destroyedAt.Unix()
		p.Data.DestroyedTimestamp = timestamp(c.destroyedAt)
		p.Data.Reason = c.endReason
		p.Data.DisconnectAPIReason = reasonString(c.apiReason)
		p.Data.TypeDisconnectReason = c.typeDisconnectReason
	}
	return p
}

// failedPayload is connection.failed: a connect refused, or an admitted
// connection that ended before its answer. Called with h.mu held.
func (h *Hub) failedPayload(c *Conn, reason string) failedHook {
	p := failedHook{
		hookHeader: h.header("connection.failed"), Role: c.role, ChannelID: c.channelID,
		ClientID: c.clientID, BundleID: c.bundleID, ConnectionID: c.id, Multistream: true,
		Simulcast: c.simulcast, Spotlight: c.spot.on,
	}
	ch := c.ch
	if ch == nil {
		ch = h.channels[c.channelID]
	}
	in, out := c.mediaBytes()
	p.Data = failedData{Message: reason, counts: ch.counts(), TotalReceivedBytes: in, TotalSentBytes: out}
	return p
}

// notifyMessage is Sora's notify for connection events (docs/spec/sora-protocol.md §1.9).
type notifyMessage struct {
	Type              string          `json:"type"`
	EventType         string          `json:"event_type"`
	Role              Role            `json:"role"`
	SessionID         string          `json:"session_id"`
	ClientID          string          `json:"client_id"`
	BundleID          string          `json:"bundle_id"`
	ConnectionID      string          `json:"connection_id"`
	Audio             bool            `json:"audio"`
	Video             bool            `json:"video"`
	Minutes           int             `json:"minutes"`
	TurnTransportType string          `json:"turn_transport_type"`
	Timestamp         string          `json:"timestamp"`
	Metadata          json.RawMessage `json:"metadata,omitempty"`
	AuthnMetadata     json.RawMessage `json:"authn_metadata,omitempty"`
	AuthzMetadata     json.RawMessage `json:"authz_metadata,omitempty"`
	Data              []notifyEntry   `json:"data,omitempty"`
	counts
}

type notifyEntry struct {
	ConnectionID  string          `json:"connection_id"`
	ClientID      string          `json:"client_id"`
	Metadata      json.RawMessage `json:"metadata,omitempty"`
	AuthnMetadata json.RawMessage `json:"authn_metadata,omitempty"`
	AuthzMetadata json.RawMessage `json:"authz_metadata,omitempty"`
}

// notifyMetadataLocked is what a notify carries of c's metadata: connect's
// signaling_notify_metadata as authn_metadata and the auth webhook's as
// authz_metadata (each when given), and as metadata the auth webhook's if
// given, else connect's (SIGNALING_NOTIFY_METADATA: "また authn_metadata
// としても通知されます"; the sora-js-sdk's notify types carry both) or,
// with the extension on, the extension's object (notifymeta.go). h.mu
// held.
func (h *Hub) notifyMetadataLocked(c *Conn) notifyEntry {
	e := notifyEntry{ConnectionID: c.id, ClientID: c.clientID, Metadata: c.notifyMetadata,
		AuthnMetadata: c.authnNotifyMetadata, AuthzMetadata: c.authzNotifyMetadata}
	if h.set.SignalingNotifyMetadataExt {
		e.Metadata = c.ext.marshal()
	}
	return e
}

// notifyLocked sends a connection event about c to every member of its
// channel that wants notifies, except other connections with c's bundle_id
// (Sora: equal bundle_ids get no notifications of each other). The joining
// connection also gets the list of the channel's connections in data.
func (h *Hub) notifyLocked(c *Conn, event string) {
	if !h.set.SignalingNotify {
		return
	}
	md := h.notifyMetadataLocked(c)
	msg := notifyMessage{
		Type: "notify", EventType: event, Role: c.role, SessionID: c.sessionID, ClientID: c.clientID,
		BundleID: c.bundleID, ConnectionID: c.id, Audio: c.audio, Video: c.video, Minutes: c.minutes(),
		TurnTransportType: c.turnTransportType(), Timestamp: timestamp(time.Now()),
		Metadata: md.Metadata, AuthnMetadata: md.AuthnMetadata, AuthzMetadata: md.AuthzMetadata,
		counts: c.ch.counts(),
	}
	others, err := json.Marshal(msg)
	if err != nil {
		h.log.Error("notify does not marshal", "err", err)
		return
	}
	for _, m := range c.ch.members {
		if !m.notify || m != c && m.bundleID == c.bundleID {
			continue
		}
		if m != c {
			m.signal(labelNotify, others)
			continue
		}
		self := msg
		for _, o := range c.ch.members {
			if o.created && (o == c || o.bundleID != c.bundleID) {
				self.Data = append(self.Data, h.notifyMetadataLocked(o))
			}
		}
		if b, err := json.Marshal(self); err == nil {
			m.signal(labelNotify, b)
		}
	}
}

// reasonString is the DisconnectConnection API's reason as Sora's event
// webhook types it (a string): a JSON string as is, other JSON as its text.
func reasonString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(nonNull(raw))
}
