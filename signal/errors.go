package signal

import (
	"errors"
	"fmt"
	"strings"

	"github.com/gobwas/ws"
)

// WebSocket close codes Hayate sends. A refused connect is always a close
// after `connect` and before any `offer`, never an HTTP refusal at the
// upgrade (browsers would see only 1006) and never 1000 (Sora's C++ and
// Python SDKs report 1000 as a successful close). These codes are stable and
// documented in the README.
const (
	// CodeNormal ends a connection normally: TYPE-DISCONNECT, DISCONNECTED-API.
	CodeNormal ws.StatusCode = 1000
	// CodeGoingAway ends connections still live when a drain times out.
	CodeGoingAway ws.StatusCode = 1001
	// CodeBadRequest is a malformed or out-of-order message; the reason names it.
	CodeBadRequest ws.StatusCode = 4400
	// CodeAuthDenied is a connect the auth webhook denied; the reason is the webhook's.
	CodeAuthDenied ws.StatusCode = 4401
	// CodeTimeout is a client too slow to connect, answer or pong.
	CodeTimeout ws.StatusCode = 4408
	// CodeLimit is a configured limit reached.
	CodeLimit ws.StatusCode = 4429
	// CodeAuthFailed is an auth webhook that timed out, was unreachable or answered badly.
	CodeAuthFailed ws.StatusCode = 4502
	// CodeBlocked is a connect refused by the node's mode.
	CodeBlocked ws.StatusCode = 4503
)

// CloseError is a reason to close a signaling WebSocket: the close code and
// the reason string sent in the close frame (at most 123 bytes, RFC 6455 §5.5).
type CloseError struct {
	Code   ws.StatusCode
	Reason string
}

func (e *CloseError) Error() string { return fmt.Sprintf("signaling close %d %s", e.Code, e.Reason) }

func closeErr(code ws.StatusCode, reason string) *CloseError {
	return &CloseError{Code: code, Reason: reason}
}

// invalidField is the 4400 close for a connect field of the wrong JSON type:
// INVALID-<FIELD>, for example INVALID-SIMULCAST for "simulcast": "yes".
func invalidField(name string) *CloseError {
	return closeErr(CodeBadRequest, "INVALID-"+strings.ToUpper(strings.ReplaceAll(name, "_", "-")))
}

// Every close Hayate sends, with its code and reason. The README lists them
// all (a test checks that it does).
var (
	// 4400: malformed input.
	ErrInvalidJSON          = closeErr(CodeBadRequest, "INVALID-JSON")
	ErrInvalidUTF8          = closeErr(CodeBadRequest, "INVALID-UTF8")
	ErrMissingType          = closeErr(CodeBadRequest, "MISSING-TYPE")
	ErrBinaryFrame          = closeErr(CodeBadRequest, "BINARY-FRAME")
	ErrMessageTooLarge      = closeErr(CodeBadRequest, "MESSAGE-TOO-LARGE")
	ErrInvalidFrame         = closeErr(CodeBadRequest, "INVALID-FRAME")
	ErrUnmaskedFrame        = closeErr(CodeBadRequest, "UNMASKED-FRAME")
	ErrMessageBeforeConnect = closeErr(CodeBadRequest, "MESSAGE-BEFORE-CONNECT")
	ErrAnswerBeforeOffer    = closeErr(CodeBadRequest, "ANSWER-BEFORE-OFFER")
	ErrDuplicateConnect     = closeErr(CodeBadRequest, "DUPLICATE-CONNECT")
	ErrDuplicateAnswer      = closeErr(CodeBadRequest, "DUPLICATE-ANSWER")
	ErrMissingChannelID     = closeErr(CodeBadRequest, "MISSING-CHANNEL-ID")
	ErrEmptyChannelID       = closeErr(CodeBadRequest, "EMPTY-CHANNEL-ID")
	ErrChannelIDTooLong     = closeErr(CodeBadRequest, "CHANNEL-ID-TOO-LONG")
	ErrMissingRole          = closeErr(CodeBadRequest, "MISSING-ROLE")
	ErrInvalidRole          = closeErr(CodeBadRequest, "INVALID-ROLE")
	ErrClientIDTooLong      = closeErr(CodeBadRequest, "CLIENT-ID-TOO-LONG")
	ErrBundleIDTooLong      = closeErr(CodeBadRequest, "BUNDLE-ID-TOO-LONG")
	ErrInvalidAudio         = closeErr(CodeBadRequest, "INVALID-AUDIO")
	ErrInvalidVideo         = closeErr(CodeBadRequest, "INVALID-VIDEO")
	ErrNoMedia              = closeErr(CodeBadRequest, "AUDIO-AND-VIDEO-DISABLED")
	ErrAudioCodec           = closeErr(CodeBadRequest, "UNSUPPORTED-AUDIO-CODEC-TYPE")
	ErrVideoCodec           = closeErr(CodeBadRequest, "UNSUPPORTED-VIDEO-CODEC-TYPE")
	ErrInvalidSDP           = closeErr(CodeBadRequest, "INVALID-SDP")
	ErrInvalidAnswer        = closeErr(CodeBadRequest, "INVALID-ANSWER")
	ErrMissingSDP           = closeErr(CodeBadRequest, "MISSING-SDP")
	ErrInvalidCandidate     = closeErr(CodeBadRequest, "INVALID-CANDIDATE")
	ErrInvalidDataChannels  = closeErr(CodeBadRequest, "INVALID-DATA-CHANNELS")
	// Simulcast (simulcast.go): a rid other than none, r0, r1, r2 in
	// connect or as a payout; simulcast_encodings that are not a list of
	// objects.
	ErrInvalidSimulcastRid       = closeErr(CodeBadRequest, "INVALID-SIMULCAST-RID")
	ErrInvalidSimulcastEncodings = closeErr(CodeBadRequest, "INVALID-SIMULCAST-ENCODINGS")
	ErrInvalidSpotlightRid       = closeErr(CodeBadRequest, "INVALID-SPOTLIGHT-RID")
	ErrInvalidSpotlightNumber    = closeErr(CodeBadRequest, "INVALID-SPOTLIGHT-NUMBER")

	// 4401, 4502: the auth webhook.
	ErrAuthTimeout      = closeErr(CodeAuthFailed, "AUTH-WEBHOOK-TIMEOUT")
	ErrAuthUnreachable  = closeErr(CodeAuthFailed, "AUTH-WEBHOOK-UNREACHABLE")
	ErrAuthStatus       = closeErr(CodeAuthFailed, "AUTH-WEBHOOK-BAD-STATUS")
	ErrAuthBadResponse  = closeErr(CodeAuthFailed, "INVALID-AUTH-WEBHOOK-RESPONSE-JSON")
	errAuthDeniedSample = closeErr(CodeAuthDenied, "<reason from the auth webhook>")
	// errUnsupportedPayoutSample stands for 4502 UNSUPPORTED-PAYOUT-<FIELD>
	// (payouts.go), for example UNSUPPORTED-PAYOUT-SIMULCAST.
	errUnsupportedPayoutSample = closeErr(CodeAuthFailed, "UNSUPPORTED-PAYOUT-<FIELD>")

	// 4503: the mode.
	ErrBlockedNewConnection = closeErr(CodeBlocked, "BLOCKED-NEW-CONNECTION")
	ErrBlockedNewSession    = closeErr(CodeBlocked, "BLOCKED-NEW-SESSION")

	// 4408: timeouts.
	ErrConnectTimeout = closeErr(CodeTimeout, "CONNECT-TIMEOUT")
	ErrAnswerTimeout  = closeErr(CodeTimeout, "ANSWER-TIMEOUT")
	ErrPongTimeout    = closeErr(CodeTimeout, "PONG-TIMEOUT")

	// The media path (media.Events.Failed).
	ErrICEFailed   = closeErr(CodeTimeout, "ICE-CONNECTION-STATE-FAILED")
	ErrDTLSTimeout = closeErr(CodeTimeout, "DTLS-HANDSHAKE-TIMEOUT")
	ErrDTLSFailed  = closeErr(CodeBadRequest, "DTLS-FAILED")
	ErrSCTPFailed  = closeErr(CodeTimeout, "SCTP-FAILED")

	// DataChannels (datachannels.go).
	ErrDataChannelQueueFull = closeErr(CodeLimit, "DATA-CHANNEL-QUEUE-FULL")
	ErrDataChannelClosed    = closeErr(CodeNormal, "DATA-CHANNEL-CLOSED")

	// 4429: limits.
	ErrQueueFull             = closeErr(CodeLimit, "SIGNALING-QUEUE-FULL")
	ErrMaxConnections        = closeErr(CodeLimit, "MAX-CONNECTIONS")
	ErrMaxChannelConnections = closeErr(CodeLimit, "MAX-CHANNEL-CONNECTIONS")
	ErrTooManyPending        = closeErr(CodeLimit, "TOO-MANY-PENDING-CONNECTIONS")

	// 1011: a bug in Hayate, contained to one connection.
	ErrInternal = closeErr(1011, "INTERNAL-ERROR")

	// 1012 (RFC 6455 registry: service restart): this node may no longer
	// serve the channel; the client reconnects and reaches its owner.
	ErrLeaseLost = closeErr(1012, "CLUSTER-LEASE-LOST")

	// 1000 and 1001.
	// ErrRedirect closes a connect answered with a cluster redirect.
	ErrRedirect        = closeErr(CodeNormal, "REDIRECT")
	ErrTypeDisconnect  = closeErr(CodeNormal, "TYPE-DISCONNECT")
	ErrDisconnectedAPI = closeErr(CodeNormal, "DISCONNECTED-API")
	// ErrLifetimeExpired ends a connection after the auth webhook's
	// connection_lifetime (Sora's close, docs/spec/sora-protocol.md §1.13).
	ErrLifetimeExpired = closeErr(CodeNormal, "LIFETIME-EXPIRED")
	ErrServerShutdown  = closeErr(CodeGoingAway, "SERVER-SHUTDOWN")
)

// AllCloseErrors lists every close Hayate sends, for documentation tests.
func AllCloseErrors() []*CloseError {
	return []*CloseError{
		ErrInvalidJSON, ErrInvalidUTF8, ErrMissingType, ErrBinaryFrame, ErrMessageTooLarge, ErrInvalidFrame,
		ErrUnmaskedFrame, ErrMessageBeforeConnect, ErrAnswerBeforeOffer, ErrDuplicateConnect, ErrDuplicateAnswer,
		ErrMissingChannelID, ErrEmptyChannelID, ErrChannelIDTooLong, ErrMissingRole, ErrInvalidRole,
		ErrClientIDTooLong, ErrBundleIDTooLong, ErrInvalidAudio, ErrInvalidVideo, ErrNoMedia, ErrAudioCodec,
		ErrVideoCodec, ErrInvalidSDP, ErrInvalidAnswer, ErrMissingSDP, ErrInvalidCandidate, ErrInvalidDataChannels,
		ErrAuthTimeout, ErrAuthUnreachable, ErrAuthStatus, ErrAuthBadResponse, errAuthDeniedSample, errUnsupportedPayoutSample,
		ErrBlockedNewConnection, ErrBlockedNewSession,
		ErrConnectTimeout, ErrAnswerTimeout, ErrPongTimeout, ErrQueueFull,
		ErrMaxConnections, ErrMaxChannelConnections, ErrTooManyPending,
		ErrICEFailed, ErrDTLSTimeout, ErrDTLSFailed, ErrSCTPFailed, ErrDataChannelQueueFull, ErrDataChannelClosed,
		ErrTypeDisconnect, ErrDisconnectedAPI, ErrServerShutdown, ErrInternal, ErrRedirect, ErrLeaseLost,
		ErrLifetimeExpired,
	}
}

// Errors of the API-facing operations of the Hub.
var (
	// ErrChannelNotFound is a channel with no connection on this node.
	ErrChannelNotFound = errors.New("signal: channel not found")
	// ErrConnectionNotFound is an unknown connection_id in the channel.
	ErrConnectionNotFound = errors.New("signal: connection not found")
	// ErrClientNotFound is a client_id no connection of the channel has.
	ErrClientNotFound = errors.New("signal: client not found")
	// ErrSessionNotFound is a session_id that is not the channel's session.
	ErrSessionNotFound = errors.New("signal: session not found")
	// ErrInvalidRid is a rid other than none, r0, r1, r2 or auto.
	ErrInvalidRid = errors.New("signal: invalid rid")
	// ErrNotSpotlight is a spotlight request for a channel or a
	// connection without spotlight.
	ErrNotSpotlight = errors.New("signal: not a spotlight channel or connection")
	// ErrRTCStatsTooLarge is a stats report over Settings.RTCStatsMaxBytes.
	ErrRTCStatsTooLarge = errors.New("signal: rtc stats report too large")
	// ErrRTCStatsMalformed is a stats report that is not a JSON array of
	// objects.
	ErrRTCStatsMalformed = errors.New("signal: rtc stats report is not a JSON array of objects")
	// ErrRTCStatsNotYet is a connection that has sent no stats report yet.
	ErrRTCStatsNotYet = errors.New("signal: no rtc stats report from the connection yet")
)

// errBadDataChannels is a data_channels list that does not validate; the
// connect is refused with 4400 and the reason names the entry.
var errBadDataChannels = errors.New("signal: invalid data_channels")
