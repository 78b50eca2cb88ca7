package signal

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
)

// The signaling notify metadata extension
// (https://sora-doc.shiguredo.jp/SIGNALING_NOTIFY_METADATA_EXT, its API
// https://sora-doc.shiguredo.jp/EXPERIMENTAL_API_SIGNALING_NOTIFY_METADATA_EXT
// and the RPC methods of https://sora-doc.shiguredo.jp/RPC): each
// connection holds a JSON object that the API and the connection itself
// (over the rpc DataChannel) change, a key at a time or whole. A change
// with push: true is pushed at once to every connection of the channel,
// the changed one included, as
//
//	{"type": "push", "data": {"type": "signaling_notify_metadata_ext",
//	 "action": "PutMetadataItem", "connection_id": ..., "key": ..., "value": ...}}
//
// (the shape Shiguredo's own end-to-end tests of Sora expect); a whole
// replacement is pushed with "action": "PutMetadata" and "metadata", a
// deletion with "DeleteMetadata" or "DeleteMetadataItem" and "key"
// (Hayate's choices by analogy: the part of Sora's page that shows them is
// not readable here). The object starts as the auth webhook's
// signaling_notify_metadata_ext payout, or {}.
//
// With signaling_notify_metadata_ext = true in the configuration the
// notifies carry it as metadata (connection.created's data list too, so a
// newcomer learns everyone's), and the signaling_notify_metadata of
// connect and of the auth webhook move to authn_metadata and
// authz_metadata, as Sora's SIGNALING_NOTIFY_METADATA page says. Without
// it the notifies are as before and the object is read through the API.

// MetadataUpdate is one change of a connection's extension metadata: the
// whole object (Metadata set), or one key (Key set) to Value; with Delete,
// the whole object emptied, or the key removed.
type MetadataUpdate struct {
	Metadata json.RawMessage
	Key      string
	Value    json.RawMessage
	Delete   bool
	// Push sends the change to every connection of the channel.
	Push bool
}

// NotifyMetadataInfo is one connection's extension metadata, as
// ListSignalingNotifyMetadata answers it.
type NotifyMetadataInfo struct {
	ClientID     string          `json:"client_id"`
	BundleID     string          `json:"bundle_id"`
	ConnectionID string          `json:"connection_id"`
	Metadata     json.RawMessage `json:"metadata"`
}

// Errors of the extension's operations.
var (
	// ErrMetadataNotObject is metadata (or a payout) that is not a JSON
	// object, or a key that is empty.
	ErrMetadataNotObject = errors.New("signal: signaling notify metadata must be a JSON object")
	// ErrMetadataTooLarge is metadata over max_signaling_message_bytes:
	// no notify could carry it.
	ErrMetadataTooLarge = errors.New("signal: signaling notify metadata over max_signaling_message_bytes")
)

// extMetadata is a connection's extension metadata; nil is {}.
type extMetadata map[string]json.RawMessage

func (m extMetadata) marshal() json.RawMessage {
	if len(m) == 0 {
		return json.RawMessage("{}")
	}
	b, err := json.Marshal(map[string]json.RawMessage(m))
	if err != nil {
		return json.RawMessage("{}") // values are valid JSON by construction
	}
	return b
}

// parseExtMetadata reads a JSON object (null is {}).
func parseExtMetadata(raw json.RawMessage) (extMetadata, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	if raw[0] != '{' {
		return nil, ErrMetadataNotObject
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, ErrMetadataNotObject
	}
	return m, nil
}

// ListNotifyMetadata lists the extension metadata of every connection of
// channelID (Sora_20201124.ListSignalingNotifyMetadata), in no promised
// order (Sora promises none; Hayate's is the order they joined).
func (h *Hub) ListNotifyMetadata(channelID string) ([]NotifyMetadataInfo, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	picked, err := h.selectLocked(channelID, Selector{})
	if err != nil {
		return nil, err
	}
	out := make([]NotifyMetadataInfo, 0, len(picked))
	for _, c := range picked {
		out = append(out, NotifyMetadataInfo{ClientID: c.clientID, BundleID: c.bundleID, ConnectionID: c.id, Metadata: c.ext.marshal()})
	}
	return out, nil
}

// NotifyMetadata is one connection's extension metadata
// (Sora_20201124.GetSignalingNotifyMetadata).
func (h *Hub) NotifyMetadata(channelID, connectionID string) (json.RawMessage, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	picked, err := h.selectLocked(channelID, Selector{ConnectionID: connectionID})
	if err != nil {
		return nil, err
	}
	return picked[0].ext.marshal(), nil
}

// UpdateNotifyMetadata changes one connection's extension metadata
// (Sora_20201124.PutSignalingNotifyMetadata, PutSignalingNotifyMetadataItem,
// DeleteSignalingNotifyMetadata and DeleteSignalingNotifyMetadataItem, and
// the RPC methods of the Put names)
// and returns the connection's metadata after the change.
func (h *Hub) UpdateNotifyMetadata(channelID, connectionID string, u MetadataUpdate) (json.RawMessage, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	picked, err := h.selectLocked(channelID, Selector{ConnectionID: connectionID})
	if err != nil {
		return nil, err
	}
	return h.updateExtLocked(picked[0], u)
}

// updateExtLocked applies u to c's extension metadata; h.mu held.
func (h *Hub) updateExtLocked(c *Conn, u MetadataUpdate) (json.RawMessage, error) {
	next := extMetadata{}
	push := struct {
		Type         string          `json:"type"`
		Action       string          `json:"action"`
		ConnectionID string          `json:"connection_id"`
		Key          string          `json:"key,omitempty"`
		Value        json.RawMessage `json:"value,omitempty"`
		Metadata     json.RawMessage `json:"metadata,omitempty"`
	}{Type: "signaling_notify_metadata_ext", ConnectionID: c.id}
	switch {
	case u.Delete && u.Key == "":
		push.Action = "DeleteMetadata"
	case u.Delete:
		for k, v := range c.ext {
			if k != u.Key {
				next[k] = v
			}
		}
		push.Action, push.Key = "DeleteMetadataItem", u.Key
	case u.Key == "":
		m, err := parseExtMetadata(u.Metadata)
		if err != nil || m == nil {
			return nil, ErrMetadataNotObject // null included: Put sets an object
		}
		for k, v := range m {
			next[k] = v
		}
		push.Action = "PutMetadata"
	default:
		if !json.Valid(u.Value) {
			return nil, ErrMetadataNotObject
		}
		for k, v := range c.ext {
			next[k] = v
		}
		next[u.Key] = slices.Clone(u.Value)
		push.Action, push.Key, push.Value = "PutMetadataItem", u.Key, u.Value
	}
	out := next.marshal()
	if h.set.MaxMessageBytes > 0 && len(out) > h.set.MaxMessageBytes {
		return nil, ErrMetadataTooLarge
	}
	c.ext = next
	if push.Action == "PutMetadata" {
		push.Metadata = out
	}
	if u.Push && c.ch != nil {
		data, _ := json.Marshal(push)
		_, _ = pushLocked(c.ch.members, data)
	}
	return out, nil
}
