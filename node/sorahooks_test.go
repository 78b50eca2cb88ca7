package node

import (
	"encoding/json"
	"fmt"
	"slices"
)

// Strict types of Sora's webhook bodies, written from Sora's documentation
// (https://sora-doc.shiguredo.jp/AUTH_WEBHOOK, SESSION_WEBHOOK,
// EVENT_WEBHOOK) and Shiguredo's server SDKs (sora-server-sdk-ts
// types/webhook/*.d.ts, sora-server-sdk-go webhook/*.go). Every body a test
// receiver gets is decoded into them with unknown fields refused and every
// required field checked (checkSoraBody), so a field Hayate names, types or
// leaves out differently from Sora fails the test that received it.

type soraRole string

func (r *soraRole) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	if s != "sendrecv" && s != "sendonly" && s != "recvonly" {
		return fmt.Errorf("role %q", s)
	}
	*r = soraRole(s)
	return nil
}

// soraMedia is WebhookAudio / Video: a bool or {codec_type, bit_rate, ...params}.
type soraMedia struct{}

func (m *soraMedia) UnmarshalJSON(b []byte) error {
	var on bool
	if json.Unmarshal(b, &on) == nil {
		return nil
	}
	var obj struct {
		CodecType  *string         `json:"codec_type"`
		BitRate    *int            `json:"bit_rate"`
		VP9Params  json.RawMessage `json:"vp9_params"`
		AV1Params  json.RawMessage `json:"av1_params"`
		H264Params json.RawMessage `json:"h264_params"`
		OpusParams json.RawMessage `json:"opus_params"`
		LyraParams json.RawMessage `json:"lyra_params"`
	}
	return strictDecode(b, &obj)
}

// soraMediaFields are the audio and video fields of the auth request, the
// connection events' data and session.destroyed's connections.
type soraMediaFields struct {
	Audio           soraMedia       `json:"audio"`
	AudioCodecType  *string         `json:"audio_codec_type"`
	AudioBitRate    *int            `json:"audio_bit_rate"`
	Video           soraMedia       `json:"video"`
	VideoCodecType  *string         `json:"video_codec_type"`
	VideoBitRate    *int            `json:"video_bit_rate"`
	VideoVP9Params  json.RawMessage `json:"video_vp9_params"`
	VideoAV1Params  json.RawMessage `json:"video_av1_params"`
	VideoH264Params json.RawMessage `json:"video_h264_params"`
}

// soraCounts are the channel's connection counts.
type soraCounts struct {
	ChannelConnections         int `json:"channel_connections"`
	ChannelSendrecvConnections int `json:"channel_sendrecv_connections"`
	ChannelSendonlyConnections int `json:"channel_sendonly_connections"`
	ChannelRecvonlyConnections int `json:"channel_recvonly_connections"`
}

// soraHeader is what every session webhook starts with; soraEventHeader
// adds the event webhooks' log_written.
type soraHeader struct {
	Type      string `json:"type"`
	Timestamp string `json:"timestamp"`
	ID        string `json:"id"`
	Version   string `json:"version"`
	Label     string `json:"label"`
	NodeName  string `json:"node_name"`
}

type soraEventHeader struct {
	soraHeader
	LogWritten bool `json:"log_written"`
}

type soraClientObject struct {
	Environment *string `json:"environment"`
	Raw         *string `json:"raw"`
	Type        *string `json:"type"`
	Version     *string `json:"version"`
	CommitShort *string `json:"commit_short"`
	Libwebrtc   *string `json:"libwebrtc"`
}

type soraDataChannel struct {
	Label             string          `json:"label"`
	Direction         string          `json:"direction"`
	Ordered           *bool           `json:"ordered"`
	MaxPacketLifeTime *int            `json:"max_packet_life_time"`
	MaxRetransmits    *int            `json:"max_retransmits"`
	Protocol          *string         `json:"protocol"`
	Compress          *bool           `json:"compress"`
	Header            json.RawMessage `json:"header"`
}

// soraAuthRequest is AuthWebhookRequest.
type soraAuthRequest struct {
	Timestamp           string   `json:"timestamp"`
	Version             string   `json:"version"`
	Label               string   `json:"label"`
	NodeName            string   `json:"node_name"`
	Role                soraRole `json:"role"`
	ChannelID           string   `json:"channel_id"`
	ClientID            *string  `json:"client_id"`
	BundleID            *string  `json:"bundle_id"`
	ConnectionID        string   `json:"connection_id"`
	Multistream         bool     `json:"multistream"`
	Simulcast           bool     `json:"simulcast"`
	SimulcastRid        *string  `json:"simulcast_rid"`
	Spotlight           bool     `json:"spotlight"`
	SpotlightFocusRid   *string  `json:"spotlight_focus_rid"`
	SpotlightUnfocusRid *string  `json:"spotlight_unfocus_rid"`
	soraMediaFields
	DataChannelSignaling      bool              `json:"data_channel_signaling"`
	IgnoreDisconnectWebsocket bool              `json:"ignore_disconnect_websocket"`
	DataChannels              []soraDataChannel `json:"data_channels"`
	ForwardingFilter          json.RawMessage   `json:"forwarding_filter"`
	AuthMetadata              json.RawMessage   `json:"auth_metadata"`
	Metadata                  json.RawMessage   `json:"metadata"`
	WHIP                      *bool             `json:"whip"`
	SoraClient                *soraClientObject `json:"sora_client"`
	soraCounts
	E2EE bool `json:"e2ee"`
}

var authRequired = []string{"timestamp", "version", "label", "node_name", "role", "channel_id", "connection_id",
	"multistream", "simulcast", "spotlight", "audio", "video", "data_channel_signaling", "ignore_disconnect_websocket",
	"channel_connections", "channel_sendrecv_connections", "channel_sendonly_connections", "channel_recvonly_connections", "e2ee"}

// soraCommon are the fields of every session and event webhook.
var commonRequired = []string{"type", "timestamp", "id", "version", "label", "node_name"}

type soraConnectionEvent struct {
	soraEventHeader
	Role          soraRole           `json:"role"`
	ChannelID     string             `json:"channel_id"`
	SessionID     string             `json:"session_id"`
	ClientID      string             `json:"client_id"`
	BundleID      string             `json:"bundle_id"`
	ConnectionID  string             `json:"connection_id"`
	Multistream   bool               `json:"multistream"`
	Simulcast     bool               `json:"simulcast"`
	Spotlight     bool               `json:"spotlight"`
	EventMetadata json.RawMessage    `json:"event_metadata"`
	Data          soraConnectionData `json:"data"`
}

var connectionRequired = append(slices.Clone(commonRequired), "log_written", "role", "channel_id", "session_id",
	"client_id", "bundle_id", "connection_id", "multistream", "simulcast", "spotlight", "data")

type soraICEConnectionState struct {
	TotalCheckingDurationMs     int64 `json:"total_checking_duration_ms"`
	TotalDisconnectedDurationMs int64 `json:"total_disconnected_duration_ms"`
}

type soraConnectionData struct {
	Minutes int `json:"minutes"`
	soraMediaFields
	soraCounts
	TurnTransportType    string                 `json:"turn_transport_type"`
	CreatedTime          int64                  `json:"created_time"`
	CreatedTimestamp     string                 `json:"created_timestamp"`
	DestroyedTime        *int64                 `json:"destroyed_time"`
	DestroyedTimestamp   *string                `json:"destroyed_timestamp"`
	ICEConnectionState   soraICEConnectionState `json:"ice_connection_state"`
	TotalReceivedBytes   uint64                 `json:"total_received_bytes"`
	TotalSentBytes       uint64                 `json:"total_sent_bytes"`
	Reason               *string                `json:"reason"`
	DisconnectAPIReason  *string                `json:"disconnect_api_reason"`
	TypeDisconnectReason *string                `json:"type_disconnect_reason"`
}

var connectionDataRequired = []string{"minutes", "audio", "video", "channel_connections", "channel_sendrecv_connections",
	"channel_sendonly_connections", "channel_recvonly_connections", "turn_transport_type", "created_time",
	"created_timestamp", "ice_connection_state", "total_received_bytes", "total_sent_bytes"}

type soraFailedEvent struct {
	soraEventHeader
	Role         *soraRole      `json:"role"`
	ChannelID    *string        `json:"channel_id"`
	ClientID     *string        `json:"client_id"`
	BundleID     *string        `json:"bundle_id"`
	ConnectionID string         `json:"connection_id"`
	Multistream  bool           `json:"multistream"`
	Simulcast    bool           `json:"simulcast"`
	Spotlight    bool           `json:"spotlight"`
	Data         soraFailedData `json:"data"`
}

type soraFailedData struct {
	Message string `json:"message"`
	soraCounts
	TotalReceivedBytes uint64 `json:"total_received_bytes"`
	TotalSentBytes     uint64 `json:"total_sent_bytes"`
}

var failedRequired = append(slices.Clone(commonRequired), "log_written", "connection_id", "multistream", "simulcast", "spotlight", "data")

var failedDataRequired = []string{"message", "channel_connections", "channel_sendrecv_connections",
	"channel_sendonly_connections", "channel_recvonly_connections", "total_received_bytes", "total_sent_bytes"}

type soraSessionConnection struct {
	Role         soraRole `json:"role"`
	ClientID     string   `json:"client_id"`
	BundleID     string   `json:"bundle_id"`
	ConnectionID string   `json:"connection_id"`
	Simulcast    bool     `json:"simulcast"`
	soraMediaFields
	ConnectionCreatedTimestamp   string          `json:"connection_created_timestamp"`
	ConnectionDestroyedTimestamp string          `json:"connection_destroyed_timestamp"`
	EventMetadata                json.RawMessage `json:"event_metadata"`
}

var sessionConnectionRequired = []string{"role", "client_id", "bundle_id", "connection_id", "simulcast", "audio", "video",
	"connection_created_timestamp", "connection_destroyed_timestamp"}

type soraSessionEvent struct {
	soraHeader
	ExternalSignalingURL *string                 `json:"external_signaling_url"`
	ChannelID            string                  `json:"channel_id"`
	SessionID            string                  `json:"session_id"`
	Multistream          bool                    `json:"multistream"`
	Spotlight            bool                    `json:"spotlight"`
	CreatedTime          int64                   `json:"created_time"`
	CreatedTimestamp     string                  `json:"created_timestamp"`
	DestroyedTime        *int64                  `json:"destroyed_time"`
	DestroyedTimestamp   *string                 `json:"destroyed_timestamp"`
	MaxConnections       *int                    `json:"max_connections"`
	TotalConnections     *int                    `json:"total_connections"`
	SessionMetadata      json.RawMessage         `json:"session_metadata"`
	Connections          []soraSessionConnection `json:"connections"`
}

var sessionRequired = append(slices.Clone(commonRequired), "channel_id", "session_id", "multistream", "spotlight",
	"created_time", "created_timestamp")

var sessionDestroyedRequired = append(slices.Clone(sessionRequired), "destroyed_time", "destroyed_timestamp",
	"max_connections", "total_connections")

type soraVanished struct {
	soraHeader
}

// soraSpotlightEvent is EventWebhookSpotlightFocusedRequest /
// EventWebhookSpotlightUnfocusedRequest (fixed: focused only).
type soraSpotlightEvent struct {
	soraEventHeader
	ChannelID       string `json:"channel_id"`
	ClientID        string `json:"client_id"`
	BundleID        string `json:"bundle_id"`
	ConnectionID    string `json:"connection_id"`
	SpotlightNumber int    `json:"spotlight_number"`
	Fixed           *bool  `json:"fixed"`
	Audio           bool   `json:"audio"`
	Video           bool   `json:"video"`
}

var spotlightRequired = append(slices.Clone(commonRequired), "log_written", "channel_id", "client_id", "bundle_id",
	"connection_id", "spotlight_number", "audio", "video")

// requireFields checks that the JSON object b has every key of required.
func requireFields(b []byte, required []string) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	for _, k := range required {
		if _, ok := m[k]; !ok {
			return fmt.Errorf("required field %q missing", k)
		}
	}
	return nil
}

// checkSoraBody decodes one webhook body into its strict type: the auth
// request (no type) or the session or event webhook its type names.
func checkSoraBody(b []byte) error {
	var head struct {
		Type *string `json:"type"`
		Data json.RawMessage
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return err
	}
	check := func(v any, required []string) error {
		if err := strictDecode(b, v); err != nil {
			return err
		}
		return requireFields(b, required)
	}
	if head.Type == nil {
		return check(&soraAuthRequest{}, authRequired)
	}
	switch typ := *head.Type; typ {
	case "connection.created", "connection.updated", "connection.destroyed":
		if err := check(&soraConnectionEvent{}, connectionRequired); err != nil {
			return err
		}
		req := connectionDataRequired
		if typ == "connection.destroyed" {
			req = append(slices.Clone(req), "destroyed_time", "destroyed_timestamp")
		}
		return requireFields(head.Data, req)
	case "connection.failed":
		if err := check(&soraFailedEvent{}, failedRequired); err != nil {
			return err
		}
		return requireFields(head.Data, failedDataRequired)
	case "session.created":
		return check(&soraSessionEvent{}, sessionRequired)
	case "session.destroyed":
		var s soraSessionEvent
		if err := check(&s, sessionDestroyedRequired); err != nil {
			return err
		}
		var raw struct {
			Connections []json.RawMessage `json:"connections"`
		}
		_ = json.Unmarshal(b, &raw)
		for _, c := range raw.Connections {
			if err := requireFields(c, sessionConnectionRequired); err != nil {
				return err
			}
		}
		return nil
	case "session.vanished":
		return check(&soraVanished{}, commonRequired)
	case "spotlight.focused", "spotlight.unfocused":
		req := spotlightRequired
		if typ == "spotlight.focused" {
			req = append(slices.Clone(req), "fixed")
		}
		return check(&soraSpotlightEvent{}, req)
	default:
		return fmt.Errorf("webhook type %q is not one of Sora's", typ)
	}
}
