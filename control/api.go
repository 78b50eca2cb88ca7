// Package control is Hayate's HTTP API: Sora's `POST /` with the operation
// named in the x-sora-target header (https://sora-doc.shiguredo.jp/API),
// JSON in and out.
//
// Errors are a non-2xx status with a JSON body {"error_type": "...",
// "message": "..."}: 400 for a body that is not JSON, a missing or invalid
// parameter, an invalid mode or an unknown target; 404 for an unknown channel
// or connection; 405 for a method other than POST or OPTIONS; 413 for a body
// over 1 MiB (docs/design.md, decision 6).
package control

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/hayate-sfu/hayate/mode"
	"github.com/hayate-sfu/hayate/signal"
)

// maxBodyBytes bounds an API request body.
const maxBodyBytes = 1 << 20

// Backend is what the API needs from the node.
type Backend interface {
	Mode() mode.Mode
	SetMode(mode.Mode) mode.Mode
	ListConnections(channelID string) []signal.ConnectionInfo
	ListChannels() []signal.ChannelInfo
	// Disconnect closes the connections of a channel that sel picks;
	// Push sends them {"type": "push", "data": data} and returns that
	// message. Both fail with signal.ErrChannelNotFound,
	// ErrConnectionNotFound or ErrClientNotFound.
	Disconnect(channelID string, sel signal.Selector, reason json.RawMessage) error
	Push(channelID string, sel signal.Selector, data json.RawMessage) ([]byte, error)
	RequestKeyFrame(channelID, connectionID string) error
	// Session and ListSessions describe sessions as the session.updated
	// webhook does; TerminateSession ends one and returns its ID. A
	// sessionID that is not the channel's is signal.ErrSessionNotFound.
	Session(channelID, sessionID string) (signal.SessionInfo, error)
	ListSessions() []signal.SessionInfo
	TerminateSession(channelID, sessionID string) (string, error)
	RequestRid(channelID, receiverID, senderID, rid string, reset bool) error
	// Spotlight, ChangeSpotlightNumber and RequestSpotlightRid are the
	// spotlight API (signal.Hub's methods of the same names).
	Spotlight(channelID, connectionID string, op signal.SpotlightOp) error
	ChangeSpotlightNumber(channelID string, number int) error
	RequestSpotlightRid(channelID, receiverID, senderID, focus, unfocus string, reset bool) error
	BatchRequestSpotlightRid(channelID string, receiverIDs []string, senderID, focus, unfocus string) error
	// ListRTCStats, RTCStats and ConnectionStats are the statistics API
	// (signal.Hub's methods of the same names).
	ListRTCStats(channelID string) []signal.RTCStats
	RTCStats(channelID, connectionID string) (signal.RTCStats, error)
	ConnectionStats(channelID string, sel signal.Selector) ([]signal.ConnectionStats, error)
	StatsReport() StatsReport
	License() License
	// ListNotifyMetadata, NotifyMetadata and UpdateNotifyMetadata are the
	// signaling notify metadata extension (signal.Hub's methods).
	ListNotifyMetadata(channelID string) ([]signal.NotifyMetadataInfo, error)
	NotifyMetadata(channelID, connectionID string) (json.RawMessage, error)
	UpdateNotifyMetadata(channelID, connectionID string, u signal.MetadataUpdate) (json.RawMessage, error)
}

// API serves the HTTP API.
type API struct {
	backend    Backend
	cluster    Cluster
	corsOrigin string
	token      []byte
	log        *slog.Logger
	ops        map[string]operation
}

// Options are the API's settings.
type Options struct {
	// CORSOrigin is api_cors_origin (empty sends no
	// access-control-allow-origin).
	CORSOrigin string
	// Token is api_token (empty: no authentication, for an API on loopback).
	Token string
	// Cluster serves the cluster operations; nil when clustering is off
	// (they answer CLUSTER-NOT-ENABLED).
	Cluster Cluster
}

// operation runs one x-sora-target with the request's parameters and
// returns the JSON response value.
type operation func(ctx context.Context, p params) (any, error)

// New returns the API.
func New(b Backend, opt Options, log *slog.Logger) *API {
	a := &API{backend: b, cluster: opt.Cluster, corsOrigin: opt.CORSOrigin, log: log}
	if opt.Token != "" {
		a.token = []byte(opt.Token)
	}
	a.ops = map[string]operation{
		"Sora_20211215.ChangeMode":                        a.changeMode,
		"Sora_20211215.GetMode":                           a.getMode,
		"Sora_20201013.ListConnections":                   a.listConnections,
		"Sora_20201013.ListChannelConnections":            a.listChannelConnections,
		"Sora_20151104.DisconnectChannel":                 a.disconnect("", ""),
		"Sora_20151104.DisconnectClient":                  a.disconnect("client_id", ""),
		"Sora_20151104.DisconnectConnection":              a.disconnect("connection_id", ""),
		"Sora_20201120.DisconnectChannelByRole":           a.disconnect("", "role"),
		"Sora_20160711.PushChannel":                       a.push("", ""),
		"Sora_20160711.PushClient":                        a.push("client_id", ""),
		"Sora_20160711.PushConnection":                    a.push("connection_id", ""),
		"Sora_20201120.PushChannelByRole":                 a.push("", "role"),
		"Sora_20241211.RequestKeyFrame":                   a.requestKeyFrame,
		"Sora_20230628.TerminateSession":                  a.terminateSession,
		"Sora_20201013.ListChannels":                      a.listChannels,
		"Sora_20231220.GetSession":                        a.getSession,
		"Sora_20231220.ListSessions":                      a.listSessions,
		"Sora_20171010.GetStatsReport":                    a.getStatsReport,
		"Sora_20201005.RequestRtpStream":                  a.requestRtpStream,
		"Sora_20201005.ResetRtpStream":                    a.resetRtpStream,
		"Sora_20251210.RequestSimulcastRid":               a.requestSimulcastRid,
		"Sora_20200807.FocusSpotlight":                    a.spotlightFocus(signal.SpotlightFocus),
		"Sora_20200807.FocusSpotlightFixed":               a.spotlightFocus(signal.SpotlightFocusFixed),
		"Sora_20200807.UnfocusSpotlight":                  a.spotlightFocus(signal.SpotlightUnfocus),
		"Sora_20200807.ChangeSpotlightNumber":             a.changeSpotlightNumber,
		"Sora_20211215.RequestSpotlightRid":               a.requestSpotlightRid(false),
		"Sora_20211215.ResetSpotlightRid":                 a.requestSpotlightRid(true),
		"Sora_20211215.BatchRequestSpotlightRid":          a.batchRequestSpotlightRid,
		"Sora_20211215.ListRtcStats":                      a.listRTCStats,
		"Sora_20211215.ListChannelRtcStats":               a.listChannelRTCStats,
		"Sora_20211215.GetRtcStats":                       a.getRTCStats,
		"Sora_20171101.GetStatsAllConnections":            a.getStatsAllConnections,
		"Sora_20170529.GetStatsConnection":                a.getStatsConnection,
		"Sora_20170529.GetStatsClient":                    a.getStatsClient,
		"Sora_20171218.GetLicense":                        a.getLicense,
		"Sora_20201124.ListSignalingNotifyMetadata":       a.listNotifyMetadata,
		"Sora_20201124.GetSignalingNotifyMetadata":        a.getNotifyMetadata,
		"Sora_20201124.PutSignalingNotifyMetadata":        a.putNotifyMetadata(false),
		"Sora_20201124.PutSignalingNotifyMetadataItem":    a.putNotifyMetadata(true),
		"Sora_20201124.DeleteSignalingNotifyMetadata":     a.deleteNotifyMetadata(false),
		"Sora_20201124.DeleteSignalingNotifyMetadataItem": a.deleteNotifyMetadata(true),
		"Sora_20221221.InitCluster":                       a.initCluster,
		"Sora_20211215.RegisterClusterNode":               a.registerClusterNode,
		"Sora_20211215.ListClusterNodes":                  a.listClusterNodes,
		"Sora_20211215.ListClusterChannels":               a.listClusterChannels,
		"Sora_20220629.PurgeClusterNode":                  a.purgeClusterNode,
	}
	for _, t := range unsupportedTargets {
		a.ops[t.target] = refuse(t.why)
	}
	return a
}

// Targets lists the operations the API serves.
func (a *API) Targets() []string {
	out := make([]string, 0, len(a.ops))
	for t := range a.ops {
		out = append(out, t)
	}
	return out
}

// ServeHTTP implements http.Handler.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	defer func() {
		// A bug must not take the node down nor leak a stack trace: the
		// client gets 500 INTERNAL-ERROR and the log the panic's value.
		if v := recover(); v != nil {
			a.log.Error("api panic", "target", r.Header.Get("X-Sora-Target"), "panic", fmt.Sprint(v))
			a.fail(w, r, errInternal)
		}
	}()
	a.cors(w.Header())
	switch {
	case r.Method == http.MethodOptions:
		w.WriteHeader(http.StatusOK)
		return
	case !a.authorized(r):
		w.Header().Set("WWW-Authenticate", `Bearer realm="hayate"`)
		a.fail(w, r, errUnauthorized)
		return
	case r.Method != http.MethodPost:
		w.Header().Set("Allow", "POST, OPTIONS")
		a.fail(w, r, errMethod)
		return
	case r.URL.Path != "/":
		a.fail(w, r, errNotFound)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		a.fail(w, r, errBadJSON)
		return
	}
	if len(body) > maxBodyBytes {
		a.fail(w, r, errBodyTooLarge)
		return
	}
	status, data := a.serve(r.Context(), r.Header.Get("X-Sora-Target"), body)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(data) //nolint:errcheck // the client may be gone
}

// Local runs an operation that another node of the cluster fans out, on
// this node's connections only, and returns the HTTP status and JSON body
// it would answer. Only the cluster-wide operations are served so.
func (a *API) Local(ctx context.Context, target string, body []byte) (int, []byte) {
	if clusterWide[target] == 0 {
		// Another node may ask for the cluster-wide operations only.
		return a.errorAnswer(target, errUnknownTarget)
	}
	return a.serve(context.WithValue(ctx, localKey{}, true), target, body)
}

// localKey marks the context of an operation run for another node.
type localKey struct{}

// isLocal reports whether ctx is an operation run for another node.
func isLocal(ctx context.Context) bool { return ctx.Value(localKey{}) != nil }

// serve runs the operation target with body and returns the HTTP status and
// the JSON answer.
func (a *API) serve(ctx context.Context, target string, body []byte) (status int, data []byte) {
	defer func() {
		if v := recover(); v != nil {
			a.log.Error("api panic", "target", target, "panic", fmt.Sprint(v))
			status, data = a.errorAnswer(target, errInternal)
		}
	}()
	op, ok := a.ops[target]
	if !ok {
		return a.errorAnswer(target, errUnknownTarget)
	}
	p, err := parseParams(body)
	if err != nil {
		return a.errorAnswer(target, err)
	}
	out, err := op(ctx, p)
	if r := clusterWide[target]; (r == everyNode || r == firstFound) && a.cluster != nil && !isLocal(ctx) {
		out, err = a.fanout(ctx, target, body, out, err)
	}
	if err != nil {
		return a.errorAnswer(target, err)
	}
	data, err = json.Marshal(out)
	if err != nil {
		a.log.Error("api response does not marshal", "target", target, "err", err)
		return a.errorAnswer(target, errInternal)
	}
	return http.StatusOK, data
}

// authorized checks the bearer token when api_token is set (RFC 6750 §2.1),
// in constant time.
func (a *API) authorized(r *http.Request) bool {
	if a.token == nil {
		return true
	}
	got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && subtle.ConstantTimeCompare([]byte(got), a.token) == 1
}

// cors sets Sora's CORS headers (API_MODE.html examples).
func (a *API) cors(h http.Header) {
	h.Set("Access-Control-Allow-Headers", "Origin, X-Requested-With, Content-Type, Accept, Authorization, x-sora-target")
	h.Set("Access-Control-Allow-Methods", "POST, OPTIONS")
	h.Set("Access-Control-Max-Age", "1000")
	if a.corsOrigin != "" {
		h.Set("Access-Control-Allow-Origin", a.corsOrigin)
	}
}

func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, data := a.errorAnswer(r.Header.Get("X-Sora-Target"), err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(data) //nolint:errcheck // the client may be gone
}

// errorAnswer is the status and body of an error: {"error_type", "message"}.
func (a *API) errorAnswer(target string, err error) (int, []byte) {
	var e *Error
	if !errors.As(err, &e) {
		e = errInternal
	}
	if e.Status >= 500 {
		a.log.Error("api error", "target", target, "err", err)
	} else {
		a.log.Debug("api request refused", "target", target, "error_type", e.Type)
	}
	msg := e.Message
	if err != e {
		msg = err.Error()
	}
	data, _ := json.Marshal(map[string]string{"error_type": e.Type, "message": msg})
	return e.Status, data
}

// params are the top-level fields of a request body.
type params map[string]json.RawMessage

func parseParams(body []byte) (params, error) {
	if len(strings.TrimSpace(string(body))) == 0 {
		return params{}, nil
	}
	var p params
	if err := json.Unmarshal(body, &p); err != nil || p == nil {
		return nil, errBadJSON
	}
	return p, nil
}

// id returns a required string parameter of 1 to 255 bytes.
func (p params) id(name string) (string, error) {
	raw, ok := p[name]
	if !ok || string(raw) == "null" {
		return "", missing(name)
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil || s == "" || len(s) > 255 {
		return "", invalid(name)
	}
	return s, nil
}

// list returns a required non-empty array of strings of 1 to 255 bytes.
func (p params) list(name string) ([]string, error) {
	raw, ok := p[name]
	if !ok || string(raw) == "null" {
		return nil, missing(name)
	}
	var out []string
	if err := json.Unmarshal(raw, &out); err != nil || len(out) == 0 {
		return nil, invalidList(name)
	}
	for _, s := range out {
		if s == "" || len(s) > 255 {
			return nil, invalidList(name)
		}
	}
	return out, nil
}

// flag returns an optional boolean parameter (false when absent or null).
func (p params) flag(name string) (bool, error) {
	return p.flagOr(name, false)
}

// flagOr returns an optional boolean parameter (def when absent or null).
func (p params) flagOr(name string, def bool) (bool, error) {
	raw, ok := p[name]
	if !ok || string(raw) == "null" {
		return def, nil
	}
	var b bool
	if err := json.Unmarshal(raw, &b); err != nil {
		return false, wrapped{errInvalidParameter, fmt.Sprintf("parameter %q must be a boolean", name)}
	}
	return b, nil
}

func (a *API) changeMode(_ context.Context, p params) (any, error) {
	raw, ok := p["mode"]
	if !ok || string(raw) == "null" {
		return nil, missing("mode")
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, errInvalidMode
	}
	m, err := mode.Parse(s)
	if err != nil {
		return nil, errInvalidMode
	}
	return ModeAnswer{a.backend.SetMode(m).String()}, nil
}

func (a *API) getMode(context.Context, params) (any, error) {
	return ModeAnswer{a.backend.Mode().String()}, nil
}

func (a *API) listConnections(context.Context, params) (any, error) {
	return a.backend.ListConnections(""), nil
}

func (a *API) listChannels(context.Context, params) (any, error) {
	return a.backend.ListChannels(), nil
}

func (a *API) listChannelConnections(_ context.Context, p params) (any, error) {
	ch, err := p.id("channel_id")
	if err != nil {
		return nil, err
	}
	return a.backend.ListConnections(ch), nil
}

func (a *API) getStatsReport(context.Context, params) (any, error) {
	return a.backend.StatsReport(), nil
}
