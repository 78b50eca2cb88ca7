package control

import (
	"context"
	"encoding/json"
)

// The simulcast API (https://sora-doc.shiguredo.jp/API_SIMULCAST): which
// stream of a publisher's simulcast video a viewer receives. The response
// echoes the request's parameters, as Sora's does.

// optionalID returns an optional string parameter ("" when absent).
func (p params) optionalID(name string) (string, error) {
	if raw, ok := p[name]; !ok || string(raw) == "null" {
		return "", nil
	}
	return p.id(name)
}

// ridParams reads the channel, receiver, optional sender and rid of a
// simulcast request, with the parameter names of its API version.
func ridParams(p params, receiver, sender string, withRid bool) (ch, recv, send, rid string, err error) {
	if ch, err = p.id("channel_id"); err != nil {
		return
	}
	if recv, err = p.id(receiver); err != nil {
		return
	}
	if send, err = p.optionalID(sender); err != nil {
		return
	}
	if withRid {
		rid, err = p.id("rid")
	}
	return
}

func echo(p params) map[string]json.RawMessage { return p }

// requestRtpStream is Sora_20201005.RequestRtpStream: recv_connection_id,
// send_connection_id (optional), rid r0, r1 or r2.
func (a *API) requestRtpStream(_ context.Context, p params) (any, error) {
	ch, recv, send, rid, err := ridParams(p, "recv_connection_id", "send_connection_id", true)
	if err != nil {
		return nil, err
	}
	if rid != "r0" && rid != "r1" && rid != "r2" {
		return nil, wrapped{errInvalidParameter, `parameter "rid" must be r0, r1 or r2`}
	}
	if err := a.backend.RequestRid(ch, recv, send, rid, false); err != nil {
		return nil, notFound(err)
	}
	return echo(p), nil
}

// resetRtpStream is Sora_20201005.ResetRtpStream: the viewer's stream is
// chosen by its own rid again.
func (a *API) resetRtpStream(_ context.Context, p params) (any, error) {
	ch, recv, send, _, err := ridParams(p, "recv_connection_id", "send_connection_id", false)
	if err != nil {
		return nil, err
	}
	if err := a.backend.RequestRid(ch, recv, send, "", true); err != nil {
		return nil, notFound(err)
	}
	return echo(p), nil
}

// requestSimulcastRid is Sora_20251210.RequestSimulcastRid:
// receiver_connection_id, sender_connection_id (optional), rid none, r0,
// r1, r2 or auto, or auto: true (the best the viewer's network carries).
func (a *API) requestSimulcastRid(_ context.Context, p params) (any, error) {
	auto, err := p.flag("auto")
	if err != nil {
		return nil, err
	}
	ch, recv, send, rid, err := ridParams(p, "receiver_connection_id", "sender_connection_id", !auto)
	if err != nil {
		return nil, err
	}
	if auto {
		rid = "auto"
	}
	if err := a.backend.RequestRid(ch, recv, send, rid, false); err != nil {
		return nil, notFound(err)
	}
	return echo(p), nil
}
