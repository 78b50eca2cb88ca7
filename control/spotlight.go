package control

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/hayate-sfu/hayate/signal"
)

// The spotlight API (https://sora-doc.shiguredo.jp/API_SPOTLIGHT): an
// application moves a spotlight channel's focus, its size, and the rids a
// viewer receives the focused and unfocused publishers at. Each answer
// echoes the request's parameters, as Sora's does. They act on the node
// that serves the channel (like the simulcast API).

// spotlightFocus is FocusSpotlight, FocusSpotlightFixed or UnfocusSpotlight:
// {channel_id, connection_id}.
func (a *API) spotlightFocus(op signal.SpotlightOp) operation {
	return func(_ context.Context, p params) (any, error) {
		ch, err := p.id("channel_id")
		if err != nil {
			return nil, err
		}
		id, err := p.id("connection_id")
		if err != nil {
			return nil, err
		}
		if err := a.backend.Spotlight(ch, id, op); err != nil {
			return nil, spotlightError(err)
		}
		return echo(p), nil
	}
}

// changeSpotlightNumber is Sora_20200807.ChangeSpotlightNumber
// {channel_id, spotlight_number} (1 to 8).
func (a *API) changeSpotlightNumber(_ context.Context, p params) (any, error) {
	ch, err := p.id("channel_id")
	if err != nil {
		return nil, err
	}
	raw, ok := p["spotlight_number"]
	if !ok || string(raw) == "null" {
		return nil, missing("spotlight_number")
	}
	var n int
	if err := json.Unmarshal(raw, &n); err != nil || n < 1 || n > 8 {
		return nil, errSpotlightNumber
	}
	if err := a.backend.ChangeSpotlightNumber(ch, n); err != nil {
		return nil, spotlightError(err)
	}
	return echo(p), nil
}

// requestSpotlightRid is Sora_20211215.RequestSpotlightRid {channel_id,
// recv_connection_id, send_connection_id?, spotlight_focus_rid,
// spotlight_unfocus_rid}; resetSpotlightRid is ResetSpotlightRid, the same
// without the rids.
func (a *API) requestSpotlightRid(reset bool) operation {
	return func(_ context.Context, p params) (any, error) {
		ch, recv, send, _, err := ridParams(p, "recv_connection_id", "send_connection_id", false)
		if err != nil {
			return nil, err
		}
		var focus, unfocus string
		if !reset {
			if focus, err = p.id("spotlight_focus_rid"); err != nil {
				return nil, err
			}
			if unfocus, err = p.id("spotlight_unfocus_rid"); err != nil {
				return nil, err
			}
		}
		if err := a.backend.RequestSpotlightRid(ch, recv, send, focus, unfocus, reset); err != nil {
			return nil, spotlightError(err)
		}
		return echo(p), nil
	}
}

// batchRequestSpotlightRid is Sora_20211215.BatchRequestSpotlightRid
// {channel_id, recv_connection_ids, send_connection_id?,
// spotlight_focus_rid, spotlight_unfocus_rid}: RequestSpotlightRid for
// every viewer listed, all or none (README, "Sora compatibility: API
// targets", on the parameter's name).
func (a *API) batchRequestSpotlightRid(_ context.Context, p params) (any, error) {
	ch, err := p.id("channel_id")
	if err != nil {
		return nil, err
	}
	recv, err := p.list("recv_connection_ids")
	if err != nil {
		return nil, err
	}
	send, err := p.optionalID("send_connection_id")
	if err != nil {
		return nil, err
	}
	focus, err := p.id("spotlight_focus_rid")
	if err != nil {
		return nil, err
	}
	unfocus, err := p.id("spotlight_unfocus_rid")
	if err != nil {
		return nil, err
	}
	if err := a.backend.BatchRequestSpotlightRid(ch, recv, send, focus, unfocus); err != nil {
		return nil, spotlightError(err)
	}
	return echo(p), nil
}

var (
	errSpotlightNumber = wrapped{errInvalidParameter, `parameter "spotlight_number" must be an integer from 1 to 8`}
	errSpotlightRid    = wrapped{errInvalidParameter, `parameters "spotlight_focus_rid" and "spotlight_unfocus_rid" must be none, r0, r1 or r2`}
	errNotSpotlight    = wrapped{errInvalidParameter, "the channel or the connection does not use spotlight"}
)

// spotlightError maps the hub's spotlight errors to the API's.
func spotlightError(err error) error {
	switch {
	case errors.Is(err, signal.ErrInvalidRid):
		return errSpotlightRid
	case errors.Is(err, signal.ErrInvalidSpotlightNumber):
		return errSpotlightNumber
	case errors.Is(err, signal.ErrNotSpotlight):
		return errNotSpotlight
	}
	return notFound(err)
}
