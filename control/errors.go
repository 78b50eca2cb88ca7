package control

import (
	"fmt"
	"net/http"
)

// Error is an API error: the HTTP status and Sora's error_type.
type Error struct {
	Status  int
	Type    string
	Message string
}

func (e *Error) Error() string { return e.Type + ": " + e.Message }

// The API's errors. The README documents every error_type.
var (
	errBadJSON            = &Error{http.StatusBadRequest, "INVALID-JSON", "request body is not a JSON object"}
	errMissingParameter   = &Error{http.StatusBadRequest, "MISSING-PARAMETER", "a required parameter is missing"}
	errInvalidParameter   = &Error{http.StatusBadRequest, "INVALID-PARAMETER", "a parameter has a wrong type or value"}
	errInvalidMode        = &Error{http.StatusBadRequest, "INVALID-MODE", "mode must be normal, block_new_session or block_new_connection"}
	errUnknownTarget      = &Error{http.StatusBadRequest, "UNKNOWN-TARGET", "x-sora-target is missing or names no operation"}
	errNotFound           = &Error{http.StatusNotFound, "NOT-FOUND", "the API is served at / only"}
	errChannelNotFound    = &Error{http.StatusNotFound, "CHANNEL-NOT-FOUND", "no connection in that channel"}
	errConnectionNotFound = &Error{http.StatusNotFound, "CONNECTION-NOT-FOUND", "no such connection in that channel"}
	errClientNotFound     = &Error{http.StatusNotFound, "CLIENT-NOT-FOUND", "no connection with that client_id in that channel"}
	errSessionNotFound    = &Error{http.StatusNotFound, "SESSION-NOT-FOUND", "session_id is not the session of that channel"}
	errRTCStatsNotFound   = &Error{http.StatusNotFound, "RTC-STATS-NOT-FOUND", "the connection has sent no getStats() report yet"}
	errUnsupportedTarget  = &Error{http.StatusBadRequest, "UNSUPPORTED-TARGET", "Hayate does not serve this Sora operation"}
	errMethod             = &Error{http.StatusMethodNotAllowed, "METHOD-NOT-ALLOWED", "use POST (or OPTIONS for CORS preflight)"}
	errUnauthorized       = &Error{http.StatusUnauthorized, "UNAUTHORIZED", "this API needs Authorization: Bearer <api_token>"}
	errBodyTooLarge       = &Error{http.StatusRequestEntityTooLarge, "BODY-TOO-LARGE", "request body over 1 MiB"}
	errInternal           = &Error{http.StatusInternalServerError, "INTERNAL-ERROR", "internal error"}
	errClusterNotEnabled  = &Error{http.StatusBadRequest, "CLUSTER-NOT-ENABLED", "this node runs without cluster = true"}
)

// The cluster operations' errors, which the node maps the cluster's own to.
var (
	ErrClusterAlreadyInitialised = &Error{http.StatusConflict, "CLUSTER-ALREADY-INITIALISED", "a listed node already belongs to a cluster"}
	ErrClusterNodeNotFound       = &Error{http.StatusNotFound, "CLUSTER-NODE-NOT-FOUND", "no such node: not in the cluster, unreachable, or another node answers at its address"}
	ErrClusterNodeAlive          = &Error{http.StatusConflict, "CLUSTER-NODE-ALIVE", "the node still sends heartbeats; stop it before purging it"}
	ErrClusterInvalidNode        = &Error{http.StatusBadRequest, "CLUSTER-INVALID-NODE", "the operation cannot take this node (a temporary node, or this node itself)"}
	ErrClusterUnavailable        = &Error{http.StatusServiceUnavailable, "CLUSTER-UNAVAILABLE", "no leader or no majority reachable now; retry"}
)

// AllErrors lists every API error, for documentation tests.
func AllErrors() []*Error {
	return []*Error{errBadJSON, errMissingParameter, errInvalidParameter, errInvalidMode, errUnknownTarget,
		errNotFound, errChannelNotFound, errConnectionNotFound, errClientNotFound, errSessionNotFound, errRTCStatsNotFound, errUnsupportedTarget, errMethod, errUnauthorized, errBodyTooLarge, errInternal,
		errClusterNotEnabled, ErrClusterAlreadyInitialised, ErrClusterNodeNotFound, ErrClusterNodeAlive,
		ErrClusterInvalidNode, ErrClusterUnavailable}
}

// wrapped is an API error with a message naming the parameter.
type wrapped struct {
	base *Error
	msg  string
}

func (w wrapped) Error() string { return w.msg }
func (w wrapped) Unwrap() error { return w.base }

func missing(name string) error {
	return wrapped{errMissingParameter, fmt.Sprintf("missing parameter %q", name)}
}

func invalidList(name string) error {
	return wrapped{errInvalidParameter, fmt.Sprintf("parameter %q must be a non-empty array of strings of 1 to 255 bytes", name)}
}

// ClusterError wraps a cluster error e with the cluster's own message.
func ClusterError(e *Error, cause error) error {
	return wrapped{e, e.Message + ": " + cause.Error()}
}

// errInvalidRole is a role parameter that names no role.
var errInvalidRole = wrapped{errInvalidParameter, `parameter "role" must be "sendrecv", "sendonly" or "recvonly"`}

func invalid(name string) error {
	return wrapped{errInvalidParameter, fmt.Sprintf("parameter %q must be a string of 1 to 255 bytes", name)}
}
