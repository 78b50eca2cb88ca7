package control

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/hayate-sfu/hayate/signal"
)

// The signaling operations: disconnect and push (Sora's API_SIGNALING and
// API_PUSH pages), RequestKeyFrame (API_CONNECTION), and GetLicense.

// selector reads the channel and, when by is set, the client_id or
// connection_id parameter, or, when role is set, the role parameter, and
// returns them with the answer's echo of them (Sora answers a disconnect
// with the request's identifying fields).
func (p params) selector(by, role string) (string, signal.Selector, map[string]string, error) {
	var sel signal.Selector
	ch, err := p.id("channel_id")
	if err != nil {
		return "", sel, nil, err
	}
	echo := map[string]string{"channel_id": ch}
	switch {
	case by != "":
		v, err := p.id(by)
		if err != nil {
			return "", sel, nil, err
		}
		echo[by] = v
		if by == "client_id" {
			sel.ClientID = v
		} else {
			sel.ConnectionID = v
		}
	case role != "":
		raw, ok := p[role]
		if !ok || string(raw) == "null" {
			return "", sel, nil, missing(role)
		}
		var r string
		if json.Unmarshal(raw, &r) != nil || !signal.Role(r).Sends() && !signal.Role(r).Receives() {
			return "", sel, nil, errInvalidRole
		}
		echo[role] = r
		sel.Role = signal.Role(r)
	}
	return ch, sel, echo, nil
}

// disconnect is DisconnectChannel (by and role empty), DisconnectClient
// (by "client_id"), DisconnectConnection (by "connection_id") and
// DisconnectChannelByRole (role "role"): {channel_id, ..., reason?: object}
// answered with the identifying fields.
func (a *API) disconnect(by, role string) operation {
	return func(_ context.Context, p params) (any, error) {
		ch, sel, echo, err := p.selector(by, role)
		if err != nil {
			return nil, err
		}
		if err := a.backend.Disconnect(ch, sel, p["reason"]); err != nil {
			return nil, notFound(err)
		}
		return echo, nil
	}
}

// push is PushChannel, PushClient, PushConnection and PushChannelByRole:
// {channel_id, ..., data: object}, answered with the message pushed,
// {"type": "push", "data": ...} (API_PUSH's examples).
func (a *API) push(by, role string) operation {
	return func(_ context.Context, p params) (any, error) {
		ch, sel, _, err := p.selector(by, role)
		if err != nil {
			return nil, err
		}
		data, ok := p["data"]
		if !ok || string(data) == "null" {
			return nil, missing("data")
		}
		if data[0] != '{' {
			return nil, wrapped{errInvalidParameter, `parameter "data" must be a JSON object`}
		}
		msg, err := a.backend.Push(ch, sel, data)
		if err != nil {
			return nil, notFound(err)
		}
		return json.RawMessage(msg), nil
	}
}

// requestKeyFrame is Sora_20241211.RequestKeyFrame {channel_id,
// connection_id}, answered with both.
func (a *API) requestKeyFrame(_ context.Context, p params) (any, error) {
	ch, sel, echo, err := p.selector("connection_id", "")
	if err != nil {
		return nil, err
	}
	if err := a.backend.RequestKeyFrame(ch, sel.ConnectionID); err != nil {
		return nil, notFound(err)
	}
	return echo, nil
}

// sessionParams reads {channel_id, session_id?} (EXPERIMENTAL_API_SESSION).
func (p params) sessionParams() (string, string, error) {
	ch, err := p.id("channel_id")
	if err != nil {
		return "", "", err
	}
	sid, err := p.optionalID("session_id")
	return ch, sid, err
}

// terminateSession is Sora_20230628.TerminateSession {channel_id,
// session_id?}: every connection of the session is closed, and the answer,
// {"session_id"}, comes at once (Sora: session.destroyed tells when it is
// over).
func (a *API) terminateSession(_ context.Context, p params) (any, error) {
	ch, sid, err := p.sessionParams()
	if err != nil {
		return nil, err
	}
	id, err := a.backend.TerminateSession(ch, sid)
	if err != nil {
		return nil, notFound(err)
	}
	return SessionAnswer{id}, nil
}

// getSession is Sora_20231220.GetSession {channel_id, session_id?},
// answered as the session.updated webhook describes the session.
func (a *API) getSession(_ context.Context, p params) (any, error) {
	ch, sid, err := p.sessionParams()
	if err != nil {
		return nil, err
	}
	s, err := a.backend.Session(ch, sid)
	if err != nil {
		return nil, notFound(err)
	}
	return s, nil
}

// listSessions is Sora_20231220.ListSessions: this node's sessions, each as
// GetSession answers. Hayate has no session groups: a group_id is refused.
func (a *API) listSessions(_ context.Context, p params) (any, error) {
	if raw, ok := p["group_id"]; ok && string(raw) != "null" {
		return nil, wrapped{errInvalidParameter, `Hayate has no session groups: parameter "group_id" is not supported`}
	}
	return a.backend.ListSessions(), nil
}

// License is GetLicense's answer (API_LICENSE; sora-server-sdk-ts
// types/api/license.d.ts). Hayate has no license: the node answers what it
// runs with (README, "Sora compatibility: API targets").
type License struct {
	ExpiredAt      string `json:"expired_at"`
	MaxConnections int    `json:"max_connections"`
	ProductName    string `json:"product_name"`
	SerialCode     string `json:"serial_code"`
	Type           string `json:"type"`
}

func (a *API) getLicense(context.Context, params) (any, error) {
	return a.backend.License(), nil
}

// refuse answers a target Hayate knows but does not serve.
func refuse(why string) operation {
	return func(context.Context, params) (any, error) {
		return nil, wrapped{errUnsupportedTarget, errUnsupportedTarget.Message + ": " + why}
	}
}

func notFound(err error) error {
	switch {
	case errors.Is(err, signal.ErrInvalidRid):
		return wrapped{errInvalidParameter, `parameter "rid" must be none, r0, r1, r2 or auto`}
	case errors.Is(err, signal.ErrChannelNotFound):
		return errChannelNotFound
	case errors.Is(err, signal.ErrConnectionNotFound):
		return errConnectionNotFound
	case errors.Is(err, signal.ErrClientNotFound):
		return errClientNotFound
	case errors.Is(err, signal.ErrSessionNotFound):
		return errSessionNotFound
	case errors.Is(err, signal.ErrRTCStatsNotYet):
		return errRTCStatsNotFound
	default:
		return err
	}
}
