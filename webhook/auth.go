package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"
)

// Auth calls the auth webhook (https://sora-doc.shiguredo.jp/AUTH_WEBHOOK).
type Auth struct {
	url     string
	timeout time.Duration
	client  *http.Client
	// Counters: successful = a valid answer (allowed or denied), failed =
	// timeout, transport error, non-2xx or invalid body.
	Counters Counters
	// Allowed and Denied count valid answers by decision.
	Allowed, Denied atomic.Uint64
}

// NewAuth returns an auth webhook client; an empty url disables it.
func NewAuth(url string, timeout time.Duration) *Auth {
	return &Auth{url: url, timeout: timeout, client: newHTTPClient(64)}
}

// CloseIdleConnections closes the client's kept-alive connections (on
// shutdown, and in leak checks).
func (a *Auth) CloseIdleConnections() { a.client.CloseIdleConnections() }

// Enabled reports whether an auth webhook URL is configured.
func (a *Auth) Enabled() bool { return a.url != "" }

// Decision is a valid answer of the auth webhook.
type Decision struct {
	Allowed bool   `json:"allowed"`
	Reason  string `json:"reason"`
	// Payouts Hayate applies (Sora: auth webhook payout > connect message).
	ClientID                *string         `json:"client_id"`
	BundleID                *string         `json:"bundle_id"`
	Metadata                json.RawMessage `json:"metadata"`
	EventMetadata           json.RawMessage `json:"event_metadata"`
	SignalingNotify         *bool           `json:"signaling_notify"`
	SignalingNotifyMetadata json.RawMessage `json:"signaling_notify_metadata"`
	// DataChannel payouts (https://sora-doc.shiguredo.jp/DATA_CHANNEL_SIGNALING).
	DataChannelSignaling      *bool           `json:"data_channel_signaling"`
	IgnoreDisconnectWebsocket *bool           `json:"ignore_disconnect_websocket"`
	DataChannels              json.RawMessage `json:"data_channels"`
	// Simulcast payouts (https://sora-doc.shiguredo.jp/SIMULCAST) and the
	// video bit rate the encodings are sized from.
	Simulcast          *bool           `json:"simulcast"`
	SimulcastRid       *string         `json:"simulcast_rid"`
	SimulcastEncodings json.RawMessage `json:"simulcast_encodings"`
	VideoBitRate       *int            `json:"video_bit_rate"`
	// Spotlight payouts (https://sora-doc.shiguredo.jp/SPOTLIGHT).
	Spotlight           *bool           `json:"spotlight"`
	SpotlightNumber     *int            `json:"spotlight_number"`
	SpotlightFocusRid   *string         `json:"spotlight_focus_rid"`
	SpotlightUnfocusRid *string         `json:"spotlight_unfocus_rid"`
	SpotlightEncodings  json.RawMessage `json:"spotlight_encodings"`
	// TURN payouts (https://sora-doc.shiguredo.jp/TURN, Sora Labo's
	// turn_tcp_only and turn_tls_only).
	TurnTCPOnly *bool   `json:"turn_tcp_only"`
	TurnTLSOnly *bool   `json:"turn_tls_only"`
	TurnFQDN    *string `json:"turn_fqdn"`
	TurnTLSFQDN *string `json:"turn_tls_fqdn"`
	// Media payouts (https://sora-doc.shiguredo.jp/AUTH_WEBHOOK): audio and
	// video (a bool or an object), the codec types, and the connection's
	// lifetime in seconds (closed with 1000 LIFETIME-EXPIRED).
	Audio              json.RawMessage `json:"audio"`
	Video              json.RawMessage `json:"video"`
	AudioCodecType     *string         `json:"audio_codec_type"`
	VideoCodecType     *string         `json:"video_codec_type"`
	ConnectionLifetime *int64          `json:"connection_lifetime"`
	// Fields holds every field of the answer, so that the caller can
	// refuse payouts it cannot honour rather than drop them.
	Fields map[string]json.RawMessage `json:"-"`
}

// Call posts body with the sora-connection-id header and returns the
// decision. Errors wrap ErrTimeout, ErrUnreachable, ErrStatus or
// ErrBadResponse; each means the connect must be refused with 4502.
func (a *Auth) Call(ctx context.Context, connectionID string, body any) (Decision, error) {
	d, err := a.call(ctx, connectionID, body)
	if err != nil {
		a.Counters.Failed.Add(1)
		return d, err
	}
	a.Counters.Successful.Add(1)
	if d.Allowed {
		a.Allowed.Add(1)
	} else {
		a.Denied.Add(1)
	}
	return d, nil
}

func (a *Auth) call(ctx context.Context, connectionID string, body any) (Decision, error) {
	payload, err := json.Marshal(body)
	if err != nil {
		return Decision{}, fmt.Errorf("%w: request does not marshal: %v", ErrBadResponse, err) //nolint:errorlint // text only
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	data, err := post(ctx, a.client, a.url, payload, http.Header{"Sora-Connection-Id": {connectionID}})
	if err != nil {
		return Decision{}, err
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil || raw == nil {
		return Decision{}, fmt.Errorf("%w: body is not a JSON object", ErrBadResponse)
	}
	if _, ok := raw["allowed"]; !ok {
		return Decision{}, fmt.Errorf("%w: no allowed field", ErrBadResponse)
	}
	var d Decision
	if err := json.Unmarshal(data, &d); err != nil {
		return Decision{}, fmt.Errorf("%w: %v", ErrBadResponse, err) //nolint:errorlint // text only
	}
	// Sora treats a denial without reason as an invalid answer
	// (INVALID-AUTH-WEBHOOK-RESPONSE-JSON).
	if !d.Allowed && d.Reason == "" {
		return Decision{}, fmt.Errorf("%w: allowed false without reason", ErrBadResponse)
	}
	d.Fields = raw
	if d.ConnectionLifetime != nil && *d.ConnectionLifetime <= 0 {
		return Decision{}, fmt.Errorf("%w: connection_lifetime not a positive number of seconds", ErrBadResponse)
	}
	if d.ClientID != nil && len(*d.ClientID) > 255 || d.BundleID != nil && len(*d.BundleID) > 255 {
		return Decision{}, fmt.Errorf("%w: client_id or bundle_id over 255 bytes", ErrBadResponse)
	}
	return d, nil
}
