package signal

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
)

// Role is a connection's role (Sora: sendrecv, sendonly, recvonly).
type Role string

// The three roles.
const (
	RoleSendRecv Role = "sendrecv"
	RoleSendOnly Role = "sendonly"
	RoleRecvOnly Role = "recvonly"
)

// Sends reports whether the role publishes media.
func (r Role) Sends() bool { return r == RoleSendRecv || r == RoleSendOnly }

// Receives reports whether the role subscribes to media.
func (r Role) Receives() bool { return r == RoleSendRecv || r == RoleRecvOnly }

// maxIDBytes is Sora's limit for channel_id, client_id and bundle_id.
const maxIDBytes = 255

// connectMessage is Sora's connect (docs/spec/sora-protocol.md §1.4). Every
// documented field is decoded; unknown fields are ignored.
type connectMessage struct {
	Type                       string          `json:"type"`
	Role                       *string         `json:"role"`
	ChannelID                  *string         `json:"channel_id"`
	ClientID                   *string         `json:"client_id"`
	BundleID                   *string         `json:"bundle_id"`
	SDP                        string          `json:"sdp"`
	SoraClient                 string          `json:"sora_client"`
	Environment                string          `json:"environment"`
	Libwebrtc                  string          `json:"libwebrtc"`
	Metadata                   json.RawMessage `json:"metadata"`
	SignalingNotifyMetadata    json.RawMessage `json:"signaling_notify_metadata"`
	Audio                      json.RawMessage `json:"audio"`
	Video                      json.RawMessage `json:"video"`
	Simulcast                  *bool           `json:"simulcast"`
	SimulcastRid               string          `json:"simulcast_rid"`
	SimulcastRequestRid        string          `json:"simulcast_request_rid"`
	Spotlight                  *bool           `json:"spotlight"`
	SpotlightNumber            *int            `json:"spotlight_number"`
	SpotlightFocusRid          string          `json:"spotlight_focus_rid"`
	SpotlightUnfocusRid        string          `json:"spotlight_unfocus_rid"`
	DataChannelSignaling       *bool           `json:"data_channel_signaling"`
	IgnoreDisconnectWebsocket  *bool           `json:"ignore_disconnect_websocket"`
	DataChannels               json.RawMessage `json:"data_channels"`
	ForwardingFilters          json.RawMessage `json:"forwarding_filters"`
	ForwardingFilter           json.RawMessage `json:"forwarding_filter"`
	AudioStreamingLanguageCode string          `json:"audio_streaming_language_code"`
	Redirect                   bool            `json:"redirect"`
	Multistream                *bool           `json:"multistream"`
}

// mediaSpec is the decoded audio or video field of connect: true, false, or
// an object with codec_type, bit_rate and codec parameters.
type mediaSpec struct {
	Enabled   bool
	CodecType string
	BitRate   int
}

func parseMediaSpec(raw json.RawMessage, bad *CloseError) (mediaSpec, *CloseError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) || bytes.Equal(raw, []byte("true")) {
		return mediaSpec{Enabled: true}, nil
	}
	if bytes.Equal(raw, []byte("false")) {
		return mediaSpec{}, nil
	}
	var obj struct {
		CodecType *string `json:"codec_type"`
		BitRate   *int    `json:"bit_rate"`
	}
	if raw[0] != '{' || json.Unmarshal(raw, &obj) != nil {
		return mediaSpec{}, bad
	}
	s := mediaSpec{Enabled: true}
	if obj.CodecType != nil {
		s.CodecType = strings.ToUpper(*obj.CodecType)
	}
	if obj.BitRate != nil {
		if *obj.BitRate < 0 {
			return mediaSpec{}, bad
		}
		s.BitRate = *obj.BitRate
	}
	return s, nil
}

// messageType returns the type of a signaling message, or the close error
// for text that is not a JSON object with a string type.
func messageType(msg []byte) (string, *CloseError) {
	if !json.Valid(msg) {
		return "", ErrInvalidJSON
	}
	var head struct {
		Type *string `json:"type"`
	}
	if err := json.Unmarshal(msg, &head); err != nil || head.Type == nil {
		return "", ErrMissingType
	}
	return *head.Type, nil
}

// parseConnect decodes and checks a connect message.
func parseConnect(msg []byte) (*connectMessage, *CloseError) {
	var c connectMessage
	if err := json.Unmarshal(msg, &c); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, invalidField(te.Field)
		}
		return nil, ErrInvalidJSON
	}
	switch {
	case c.ChannelID == nil:
		return nil, ErrMissingChannelID
	case *c.ChannelID == "":
		return nil, ErrEmptyChannelID
	case len(*c.ChannelID) > maxIDBytes:
		return nil, ErrChannelIDTooLong
	}
	if c.Role == nil {
		return nil, ErrMissingRole
	}
	switch Role(*c.Role) {
	case RoleSendRecv, RoleSendOnly, RoleRecvOnly:
	default:
		return nil, ErrInvalidRole
	}
	if c.ClientID != nil && len(*c.ClientID) > maxIDBytes {
		return nil, ErrClientIDTooLong
	}
	if c.BundleID != nil && len(*c.BundleID) > maxIDBytes {
		return nil, ErrBundleIDTooLong
	}
	return &c, nil
}

// sdpMessage is answer, re-answer and update.
type sdpMessage struct {
	Type string  `json:"type"`
	SDP  *string `json:"sdp"`
}

// candidateMessage is a trickled ICE candidate.
type candidateMessage struct {
	Type      string  `json:"type"`
	Candidate *string `json:"candidate"`
}

// disconnectMessage is the client's goodbye.
type disconnectMessage struct {
	Type   string `json:"type"`
	Reason string `json:"reason"`
}

// offerMessage is Sora's offer (docs/spec/sora-protocol.md §1.5).
type offerMessage struct {
	Type                      string             `json:"type"`
	SDP                       string             `json:"sdp"`
	ChannelID                 string             `json:"channel_id"`
	SessionID                 string             `json:"session_id"`
	ClientID                  string             `json:"client_id"`
	BundleID                  string             `json:"bundle_id"`
	ConnectionID              string             `json:"connection_id"`
	Metadata                  json.RawMessage    `json:"metadata,omitempty"`
	Config                    rtcConfig          `json:"config"`
	Mid                       map[string]string  `json:"mid,omitempty"`
	Multistream               bool               `json:"multistream"`
	Simulcast                 bool               `json:"simulcast"`
	Encodings                 json.RawMessage    `json:"encodings,omitempty"`
	Spotlight                 bool               `json:"spotlight"`
	DataChannelSignaling      bool               `json:"data_channel_signaling"`
	IgnoreDisconnectWebsocket bool               `json:"ignore_disconnect_websocket"`
	DataChannels              []offerDataChannel `json:"data_channels,omitempty"`
	RPCMethods                []string           `json:"rpc_methods,omitempty"`
}

// rtcConfig is passed to the client's RTCPeerConnection constructor.
type rtcConfig struct {
	ICEServers         []ICEServer `json:"iceServers"`
	ICETransportPolicy string      `json:"iceTransportPolicy"`
}

// reOfferMessage renegotiates (Sora: re-offer, answered by re-answer).
type reOfferMessage struct {
	Type string `json:"type"`
	SDP  string `json:"sdp"`
}
