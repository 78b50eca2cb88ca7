package signal

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/hayate-sfu/hayate/media"
)

// ConnectionInfo is one entry of ListConnections / ListChannelConnections
// (Sora_20201013; fields as in sora-labo-doc API.rst).
type ConnectionInfo struct {
	ChannelID     string          `json:"channel_id"`
	SessionID     string          `json:"session_id"`
	ClientID      string          `json:"client_id"`
	BundleID      string          `json:"bundle_id"`
	ConnectionID  string          `json:"connection_id"`
	Role          Role            `json:"role"`
	Multistream   bool            `json:"multistream"`
	Simulcast     bool            `json:"simulcast"`
	Spotlight     bool            `json:"spotlight"`
	Audio         any             `json:"audio"`
	Video         any             `json:"video"`
	CreatedTime   int64           `json:"created_time"`
	EventMetadata json.RawMessage `json:"event_metadata,omitempty"`
}

type codecInfo struct {
	CodecType string `json:"codec_type"`
}

// ListConnections returns the admitted connections of channelID, or of
// every channel when channelID is empty, in order of admission per channel.
func (h *Hub) ListConnections(channelID string) []ConnectionInfo {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := []ConnectionInfo{}
	add := func(ch *channel) {
		for _, c := range ch.members {
			info := ConnectionInfo{
				ChannelID: c.channelID, SessionID: c.sessionID, ClientID: c.clientID, BundleID: c.bundleID,
				ConnectionID: c.id, Role: c.role, Multistream: true, Simulcast: c.simulcast, Spotlight: c.spot.on, Audio: false, Video: false,
				CreatedTime: c.admittedAt.UnixMicro(), EventMetadata: c.eventMetadata,
			}
			if c.audio {
				info.Audio = codecInfo{CodecType: c.audioCodec.Type()}
			}
			if c.video {
				info.Video = codecInfo{CodecType: c.videoCodec.Type()}
			}
			out = append(out, info)
		}
	}
	if channelID != "" {
		if ch := h.channels[channelID]; ch != nil {
			add(ch)
		}
		return out
	}
	for _, ch := range h.channels {
		add(ch)
	}
	return out
}

// Selector picks connections of a channel for an API operation: every
// member, or those with a client_id, a connection_id or a role (at most one
// of them set).
type Selector struct {
	ClientID, ConnectionID string
	Role                   Role
}

// selectLocked returns the members of channelID that sel picks. A missing
// channel is ErrChannelNotFound; an unknown connection_id
// ErrConnectionNotFound; a client_id no member has ErrClientNotFound. A role
// no member has picks nobody (Sora documents no error for it). h.mu held.
func (h *Hub) selectLocked(channelID string, sel Selector) ([]*Conn, error) {
	ch := h.channels[channelID]
	if ch == nil {
		return nil, ErrChannelNotFound
	}
	if sel.ConnectionID != "" {
		c := h.conns[sel.ConnectionID]
		if c == nil || c.channelID != channelID || c.ch != ch {
			return nil, ErrConnectionNotFound
		}
		return []*Conn{c}, nil
	}
	var out []*Conn
	for _, c := range ch.members {
		if sel.ClientID != "" && c.clientID != sel.ClientID || sel.Role != "" && c.role != sel.Role {
			continue
		}
		out = append(out, c)
	}
	if sel.ClientID != "" && len(out) == 0 {
		return nil, ErrClientNotFound
	}
	return out, nil
}

// Disconnect closes the connections of a channel that sel picks with 1000
// DISCONNECTED-API (Sora's DisconnectChannel, DisconnectClient,
// DisconnectConnection and DisconnectChannelByRole); reason, if not empty,
// goes into each connection.destroyed webhook as disconnect_api_reason.
func (h *Hub) Disconnect(channelID string, sel Selector, reason json.RawMessage) error {
	h.mu.Lock()
	picked, err := h.selectLocked(channelID, sel)
	if err != nil {
		h.mu.Unlock()
		return err
	}
	h.endLocked(picked, reason)
	h.mu.Unlock()
	closeAll(picked)
	return nil
}

// endLocked records that the API ends conns, with reason for their
// connection.destroyed webhooks; h.mu held. closeAll then closes them.
func (h *Hub) endLocked(conns []*Conn, reason json.RawMessage) []*Conn {
	for _, c := range conns {
		c.apiReason = nonNull(reason)
		c.endReason = ErrDisconnectedAPI.Reason
	}
	return conns
}

func closeAll(conns []*Conn) {
	for _, c := range conns {
		c.requestClose(ErrDisconnectedAPI)
	}
}

// pushMessage is what the Push API sends (Sora API_PUSH: the client gets
// {"type": "push", "data": <data>}).
type pushMessage struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

// Push sends data as a push message to the connections of a channel that
// sel picks: on the DataChannel "push" label once a connection has switched
// to DataChannel signaling, else on its WebSocket. It returns the message.
func (h *Hub) Push(channelID string, sel Selector, data json.RawMessage) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	picked, err := h.selectLocked(channelID, sel)
	if err != nil {
		return nil, err
	}
	return pushLocked(picked, data)
}

// pushLocked sends {"type": "push", "data": data} to conns and returns the
// message; h.mu held.
func pushLocked(conns []*Conn, data json.RawMessage) ([]byte, error) {
	msg, err := json.Marshal(pushMessage{Type: "push", Data: data})
	if err != nil {
		return nil, err
	}
	for _, c := range conns {
		c.signal(labelPush, msg)
	}
	return msg, nil
}

// RequestKeyFrame asks the publisher connectionID of channelID for a key
// frame on each of its video tracks (Sora_20241211.RequestKeyFrame).
func (h *Hub) RequestKeyFrame(channelID, connectionID string) error {
	h.mu.Lock()
	picked, err := h.selectLocked(channelID, Selector{ConnectionID: connectionID})
	h.mu.Unlock()
	if err != nil {
		return err
	}
	if k, ok := picked[0].tr.(media.KeyFrameRequester); ok {
		k.RequestKeyFrame()
	}
	return nil
}

// Session describes the session of channelID as the session.updated webhook
// does (Sora's GetSession answers that). A sessionID, when set, must be the
// channel's, else ErrSessionNotFound.
func (h *Hub) Session(channelID, sessionID string) (SessionInfo, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch := h.channels[channelID]
	if ch == nil {
		return SessionInfo{}, ErrChannelNotFound
	}
	if sessionID != "" && sessionID != ch.sessionID {
		return SessionInfo{}, ErrSessionNotFound
	}
	return h.sessionPayload("session.updated", ch, time.Time{}), nil
}

// ListSessions describes every session on this node as Session does.
func (h *Hub) ListSessions() []SessionInfo {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]SessionInfo, 0, len(h.channels))
	for _, ch := range h.channels {
		out = append(out, h.sessionPayload("session.updated", ch, time.Time{}))
	}
	return out
}

// TerminateSession closes every connection of channelID's session with 1000
// DISCONNECTED-API, as DisconnectChannel does, and returns the session's
// ID; a sessionID, when set, must be the channel's. An idle session (no
// connection, in its SessionIdleTimeout window) ends at once.
func (h *Hub) TerminateSession(channelID, sessionID string) (string, error) {
	h.mu.Lock()
	ch := h.channels[channelID]
	switch {
	case ch == nil:
		h.mu.Unlock()
		return "", ErrChannelNotFound
	case sessionID != "" && sessionID != ch.sessionID:
		h.mu.Unlock()
		return "", ErrSessionNotFound
	}
	id := ch.sessionID
	picked := h.endLocked(append([]*Conn(nil), ch.members...), nil)
	if len(ch.members) == 0 {
		h.endSessionLocked(ch, time.Now()) // an idle session ends at once
	}
	h.mu.Unlock()
	closeAll(picked)
	return id, nil
}

// ChannelInfo is one entry of ListChannels (Sora_20201013, experimental).
type ChannelInfo struct {
	ChannelID   string `json:"channel_id"`
	Multistream bool   `json:"multistream"`
	Spotlight   bool   `json:"spotlight"`
}

// ListChannels returns the channels with a connection on this node, sorted
// by ID.
func (h *Hub) ListChannels() []ChannelInfo {
	h.mu.Lock()
	out := make([]ChannelInfo, 0, len(h.channels))
	for id, ch := range h.channels {
		out = append(out, ChannelInfo{ChannelID: id, Multistream: true, Spotlight: ch.spot != nil})
	}
	h.mu.Unlock()
	slices.SortFunc(out, func(a, b ChannelInfo) int { return strings.Compare(a.ChannelID, b.ChannelID) })
	return out
}
