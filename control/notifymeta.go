package control

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/hayate-sfu/hayate/signal"
)

// The signaling notify metadata extension's API
// (https://sora-doc.shiguredo.jp/EXPERIMENTAL_API_SIGNALING_NOTIFY_METADATA_EXT,
// experimental in Sora). List answers Sora's documented array; Get, Put and
// PutItem answer the connection's metadata object (after the change for
// the Puts), which is Hayate's reading: the parts of Sora's page that show
// those answers are not readable here, and Sora's Swift SDK types the
// RPC methods' results as the metadata itself.

// listNotifyMetadata is Sora_20201124.ListSignalingNotifyMetadata
// {channel_id}: [{client_id, bundle_id, connection_id, metadata}].
func (a *API) listNotifyMetadata(_ context.Context, p params) (any, error) {
	ch, err := p.id("channel_id")
	if err != nil {
		return nil, err
	}
	out, err := a.backend.ListNotifyMetadata(ch)
	if err != nil {
		return nil, notFound(err)
	}
	return out, nil
}

// getNotifyMetadata is Sora_20201124.GetSignalingNotifyMetadata
// {channel_id, connection_id}.
func (a *API) getNotifyMetadata(_ context.Context, p params) (any, error) {
	ch, sel, _, err := p.selector("connection_id", "")
	if err != nil {
		return nil, err
	}
	md, err := a.backend.NotifyMetadata(ch, sel.ConnectionID)
	if err != nil {
		return nil, notFound(err)
	}
	return md, nil
}

// deleteNotifyMetadata is Sora_20201124.DeleteSignalingNotifyMetadata
// {channel_id, connection_id, push?} (the object emptied) and, with item,
// DeleteSignalingNotifyMetadataItem {channel_id, connection_id, key,
// push?} (the key removed; a key it does not hold is no error). Both
// answer the object after the change. Sora lists both targets (Sora Labo's
// API page); their bodies are Hayate's reading of the Put ones.
func (a *API) deleteNotifyMetadata(item bool) operation {
	return func(_ context.Context, p params) (any, error) {
		ch, sel, _, err := p.selector("connection_id", "")
		if err != nil {
			return nil, err
		}
		u := signal.MetadataUpdate{Delete: true}
		if u.Push, err = p.flag("push"); err != nil {
			return nil, err
		}
		if item {
			if u.Key, err = p.id("key"); err != nil {
				return nil, err
			}
		}
		return a.updateNotifyMetadata(ch, sel.ConnectionID, u)
	}
}

// putNotifyMetadata is Sora_20201124.PutSignalingNotifyMetadata
// {channel_id, connection_id, metadata: object, push?: boolean} and, with
// item, PutSignalingNotifyMetadataItem {channel_id, connection_id, key:
// string, value: any JSON, push?: boolean}.
func (a *API) putNotifyMetadata(item bool) operation {
	return func(_ context.Context, p params) (any, error) {
		ch, sel, _, err := p.selector("connection_id", "")
		if err != nil {
			return nil, err
		}
		var u signal.MetadataUpdate
		if u.Push, err = p.flag("push"); err != nil {
			return nil, err
		}
		if item {
			if u.Key, err = p.id("key"); err != nil {
				return nil, err
			}
			v, ok := p["value"]
			if !ok {
				return nil, missing("value")
			}
			u.Value = v
		} else {
			md, ok := p["metadata"]
			if !ok || string(md) == "null" {
				return nil, missing("metadata")
			}
			u.Metadata = md // an object, or signal.ErrMetadataNotObject
		}
		return a.updateNotifyMetadata(ch, sel.ConnectionID, u)
	}
}

// updateNotifyMetadata applies u and answers the object after it.
func (a *API) updateNotifyMetadata(channelID, connectionID string, u signal.MetadataUpdate) (any, error) {
	out, err := a.backend.UpdateNotifyMetadata(channelID, connectionID, u)
	switch {
	case errors.Is(err, signal.ErrMetadataTooLarge):
		return nil, wrapped{errInvalidParameter, "the connection's signaling notify metadata would be over max_signaling_message_bytes"}
	case errors.Is(err, signal.ErrMetadataNotObject):
		return nil, wrapped{errInvalidParameter, `parameter "metadata" must be a JSON object`}
	case err != nil:
		return nil, notFound(err)
	}
	return json.RawMessage(out), nil
}
