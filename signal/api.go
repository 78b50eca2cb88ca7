package signal

import (
	"encoding/json"
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
				ConnectionID: c.id, Role: c.role, Multistream: true, Audio: false, Video: false,
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

// DisconnectChannel closes every connection of a channel with 1000
// DISCONNECTED-API; reason, if not empty, goes into each
// connection.destroyed webhook as disconnect_api_reason.
func (h *Hub) DisconnectChannel(channelID string, reason json.RawMessage) error {
	h.mu.Lock()
	ch := h.channels[channelID]
	if ch == nil {
		h.mu.Unlock()
		return ErrChannelNotFound
	}
	members := append([]*Conn(nil), ch.members...)
	for _, c := range members {
		c.apiReason = nonNull(reason)
		c.endReason = ErrDisconnectedAPI.Reason
	}
	h.mu.Unlock()
	for _, c := range members {
		c.requestClose(ErrDisconnectedAPI)
	}
	return nil
}

// DisconnectConnection closes one connection of a channel with 1000
// DISCONNECTED-API.
func (h *Hub) DisconnectConnection(channelID, connectionID string, reason json.RawMessage) error {
	h.mu.Lock()
	if h.channels[channelID] == nil {
		h.mu.Unlock()
		return ErrChannelNotFound
	}
	c := h.conns[connectionID]
	if c == nil || c.channelID != channelID {
		h.mu.Unlock()
		return ErrConnectionNotFound
	}
	c.apiReason = nonNull(reason)
	c.endReason = ErrDisconnectedAPI.Reason
	h.mu.Unlock()
	c.requestClose(ErrDisconnectedAPI)
	return nil
}
