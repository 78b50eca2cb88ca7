package node

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/hayate-sfu/hayate/config"
	"github.com/hayate-sfu/hayate/internal/sigclient"
)

// soraMetadataEntry is one entry of ListSignalingNotifyMetadata
// (EXPERIMENTAL_API_SIGNALING_NOTIFY_METADATA_EXT's example).
type soraMetadataEntry struct {
	ClientID     string          `json:"client_id"`
	BundleID     string          `json:"bundle_id"`
	ConnectionID string          `json:"connection_id"`
	Metadata     json.RawMessage `json:"metadata"`
}

// soraMetadataPush is the push a change with push: true sends (the shape
// Shiguredo's own tests of Sora expect of PutMetadataItem; PutMetadata's
// metadata is Hayate's reading).
type soraMetadataPush struct {
	Type         string          `json:"type"`
	Action       string          `json:"action"`
	ConnectionID string          `json:"connection_id"`
	Key          string          `json:"key,omitempty"`
	Value        json.RawMessage `json:"value,omitempty"`
	Metadata     json.RawMessage `json:"metadata,omitempty"`
}

// soraNotifyEntry and soraNotify are a notify with the signaling notify
// metadata extension on (SIGNALING_NOTIFY and SIGNALING_NOTIFY_METADATA:
// the extension's object as metadata, connect's signaling_notify_metadata
// as authn_metadata, the auth webhook's as authz_metadata).
type soraNotifyEntry struct {
	ConnectionID  string          `json:"connection_id"`
	ClientID      string          `json:"client_id"`
	Metadata      json.RawMessage `json:"metadata"`
	AuthnMetadata json.RawMessage `json:"authn_metadata"`
	AuthzMetadata json.RawMessage `json:"authz_metadata"`
}

type soraNotify struct {
	Type                       string            `json:"type"`
	EventType                  string            `json:"event_type"`
	Role                       string            `json:"role"`
	SessionID                  string            `json:"session_id"`
	ClientID                   string            `json:"client_id"`
	BundleID                   string            `json:"bundle_id"`
	ConnectionID               string            `json:"connection_id"`
	Audio                      bool              `json:"audio"`
	Video                      bool              `json:"video"`
	Minutes                    int               `json:"minutes"`
	TurnTransportType          string            `json:"turn_transport_type"`
	Timestamp                  string            `json:"timestamp"`
	Metadata                   json.RawMessage   `json:"metadata"`
	AuthnMetadata              json.RawMessage   `json:"authn_metadata"`
	AuthzMetadata              json.RawMessage   `json:"authz_metadata"`
	Data                       []soraNotifyEntry `json:"data"`
	ChannelConnections         int               `json:"channel_connections"`
	ChannelSendrecvConnections int               `json:"channel_sendrecv_connections"`
	ChannelSendonlyConnections int               `json:"channel_sendonly_connections"`
	ChannelRecvonlyConnections int               `json:"channel_recvonly_connections"`
}

// nextNotify reads c's messages until a notify arrives and decodes it
// strictly.
func nextNotify(t *testing.T, c *sigclient.Client) soraNotify {
	t.Helper()
	var n soraNotify
	nextOfType(t, c, "notify", &n)
	return n
}

// metadataPush reads c's messages until a push arrives and decodes its
// data as the extension's push.
func metadataPush(t *testing.T, c *sigclient.Client) soraMetadataPush {
	t.Helper()
	var p soraMetadataPush
	if data := nextPush(t, c); strictDecode([]byte(data), &p) != nil {
		t.Fatalf("push data %s is not the extension's", data)
	}
	return p
}

// TestSignalingNotifyMetadataExt: the extension's API lists, reads,
// changes and deletes from a connection's object (starting from the auth webhook's
// payout), a change with push: true reaches every connection of the
// channel and one without reaches none, a newcomer's connection.created
// carries everyone's object as metadata with signaling_notify_metadata as
// authn_metadata / authz_metadata, and bad requests get their errors.
func TestSignalingNotifyMetadataExt(t *testing.T) {
	auth := newHookReceiver(t)
	auth.respond = func(w http.ResponseWriter, body map[string]any) {
		switch body["client_id"] {
		case "alice":
			w.Write([]byte(`{"allowed":true,"signaling_notify_metadata":{"name":"paid"},"signaling_notify_metadata_ext":{"status":"idle"}}`))
		case "mallory":
			w.Write([]byte(`{"allowed":true,"signaling_notify_metadata_ext":"not an object"}`))
		case "trudy":
			w.Write([]byte(`{"allowed":true,"signaling_notify_metadata_ext":{"big":"` + strings.Repeat("x", 5000) + `"}}`))
		default:
			w.Write([]byte(`{"allowed":true}`))
		}
	}
	n := startNode(t, func(c *config.Config) {
		c.AuthWebhookURL = auth.url()
		c.SignalingNotifyMetadataExt = true
		c.MaxSignalingMessageBytes = 4096
	})
	join := func(clientID string) (*sigclient.Client, string) {
		t.Helper()
		c := dial(t, n)
		msg := connectMsg("meta", "sendrecv")
		msg["client_id"] = clientID
		msg["signaling_notify_metadata"] = map[string]any{"name": clientID}
		o, err := c.Connect(msg, soon())
		if err != nil {
			t.Fatalf("connect %s: %v", clientID, err)
		}
		answer(t, c, o)
		return c, o.ConnectionID
	}
	a, aID := join("alice")
	b, bID := join("bob")
	// Both answers handled (join returns once its answer is sent), so that
	// carol's connection.created below lists both.
	waitFor(t, "two connections created", patience, func() bool { return n.hub.Stats().ConnectionCreated.Load() == 2 })

	list := apiOK[[]soraMetadataEntry](t, n, "Sora_20201124.ListSignalingNotifyMetadata", `{"channel_id":"meta"}`)
	got := map[string]string{}
	for _, e := range list {
		got[e.ConnectionID] = e.ClientID + " " + e.BundleID + " " + string(e.Metadata)
	}
	if len(list) != 2 || got[aID] != "alice "+aID+` {"status":"idle"}` || got[bID] != "bob "+bID+" {}" {
		t.Fatalf("ListSignalingNotifyMetadata: %+v", list)
	}
	if md := apiOK[json.RawMessage](t, n, "Sora_20201124.GetSignalingNotifyMetadata", `{"channel_id":"meta","connection_id":"`+aID+`"}`); string(md) != `{"status":"idle"}` {
		t.Fatalf("GetSignalingNotifyMetadata: %s", md)
	}

	md := apiOK[json.RawMessage](t, n, "Sora_20201124.PutSignalingNotifyMetadataItem",
		`{"channel_id":"meta","connection_id":"`+aID+`","key":"mic","value":false,"push":true}`)
	if string(md) != `{"mic":false,"status":"idle"}` {
		t.Fatalf("PutSignalingNotifyMetadataItem answered %s", md)
	}
	want := soraMetadataPush{Type: "signaling_notify_metadata_ext", Action: "PutMetadataItem", ConnectionID: aID, Key: "mic", Value: json.RawMessage("false")}
	for _, c := range []*sigclient.Client{a, b} {
		if p := metadataPush(t, c); p.Type != want.Type || p.Action != want.Action || p.ConnectionID != aID || p.Key != "mic" || string(p.Value) != "false" || p.Metadata != nil {
			t.Fatalf("push %+v, want %+v", p, want)
		}
	}

	// A whole replacement without push is pushed to nobody: the next push
	// each gets is the one with push.
	apiOK[json.RawMessage](t, n, "Sora_20201124.PutSignalingNotifyMetadata", `{"channel_id":"meta","connection_id":"`+bID+`","metadata":{"hand":"up"}}`)
	md = apiOK[json.RawMessage](t, n, "Sora_20201124.PutSignalingNotifyMetadata", `{"channel_id":"meta","connection_id":"`+aID+`","metadata":{"x":1},"push":true}`)
	if string(md) != `{"x":1}` {
		t.Fatalf("PutSignalingNotifyMetadata answered %s", md)
	}
	for _, c := range []*sigclient.Client{a, b} {
		if p := metadataPush(t, c); p.Action != "PutMetadata" || p.ConnectionID != aID || string(p.Metadata) != `{"x":1}` || p.Key != "" {
			t.Fatalf("push %+v after PutSignalingNotifyMetadata", p)
		}
	}

	// A newcomer learns everyone's object from its connection.created.
	c, cID := join("carol")
	self := nextNotify(t, c)
	entries := map[string]soraNotifyEntry{}
	for _, e := range self.Data {
		entries[e.ConnectionID] = e
	}
	ea, eb := entries[aID], entries[bID]
	if self.EventType != "connection.created" || self.ConnectionID != cID || string(self.Metadata) != "{}" ||
		string(self.AuthnMetadata) != `{"name":"carol"}` || self.AuthzMetadata != nil || len(self.Data) != 3 {
		t.Fatalf("carol's own connection.created: %+v", self)
	}
	if string(ea.Metadata) != `{"x":1}` || string(ea.AuthnMetadata) != `{"name":"alice"}` || string(ea.AuthzMetadata) != `{"name":"paid"}` ||
		string(eb.Metadata) != `{"hand":"up"}` || string(eb.AuthnMetadata) != `{"name":"bob"}` {
		t.Fatalf("connection.created's data: alice %+v, bob %+v", ea, eb)
	}

	// Deletes: a key (pushed with push: true), then the whole object.
	apiOK[json.RawMessage](t, n, "Sora_20201124.PutSignalingNotifyMetadataItem", `{"channel_id":"meta","connection_id":"`+bID+`","key":"mic","value":true}`)
	if md := apiOK[json.RawMessage](t, n, "Sora_20201124.DeleteSignalingNotifyMetadataItem",
		`{"channel_id":"meta","connection_id":"`+bID+`","key":"hand","push":true}`); string(md) != `{"mic":true}` {
		t.Fatalf("DeleteSignalingNotifyMetadataItem answered %s", md)
	}
	if p := metadataPush(t, a); p.Action != "DeleteMetadataItem" || p.ConnectionID != bID || p.Key != "hand" || p.Value != nil {
		t.Fatalf("push %+v after DeleteSignalingNotifyMetadataItem", p)
	}
	if md := apiOK[json.RawMessage](t, n, "Sora_20201124.DeleteSignalingNotifyMetadata", `{"channel_id":"meta","connection_id":"`+bID+`"}`); string(md) != `{}` {
		t.Fatalf("DeleteSignalingNotifyMetadata answered %s", md)
	}
	if md := apiOK[json.RawMessage](t, n, "Sora_20201124.GetSignalingNotifyMetadata", `{"channel_id":"meta","connection_id":"`+bID+`"}`); string(md) != `{}` {
		t.Fatalf("after the deletes: %s", md)
	}

	// Errors.
	for _, e := range []struct{ target, body, typ string }{
		{"Sora_20201124.ListSignalingNotifyMetadata", `{"channel_id":"nowhere"}`, "CHANNEL-NOT-FOUND"},
		{"Sora_20201124.GetSignalingNotifyMetadata", `{"channel_id":"meta","connection_id":"NOPE"}`, "CONNECTION-NOT-FOUND"},
		{"Sora_20201124.PutSignalingNotifyMetadata", `{"channel_id":"meta","connection_id":"` + aID + `"}`, "MISSING-PARAMETER"},
		{"Sora_20201124.PutSignalingNotifyMetadata", `{"channel_id":"meta","connection_id":"` + aID + `","metadata":[1]}`, "INVALID-PARAMETER"},
		{"Sora_20201124.PutSignalingNotifyMetadata", `{"channel_id":"meta","connection_id":"` + aID + `","metadata":{},"push":"yes"}`, "INVALID-PARAMETER"},
		{"Sora_20201124.PutSignalingNotifyMetadataItem", `{"channel_id":"meta","connection_id":"` + aID + `","value":1}`, "MISSING-PARAMETER"},
		{"Sora_20201124.PutSignalingNotifyMetadataItem", `{"channel_id":"meta","connection_id":"` + aID + `","key":"k"}`, "MISSING-PARAMETER"},
		{"Sora_20201124.DeleteSignalingNotifyMetadataItem", `{"channel_id":"meta","connection_id":"` + aID + `"}`, "MISSING-PARAMETER"},
		{"Sora_20201124.DeleteSignalingNotifyMetadata", `{"channel_id":"meta","connection_id":"NOPE"}`, "CONNECTION-NOT-FOUND"},
		{"Sora_20201124.PutSignalingNotifyMetadataItem", `{"channel_id":"meta","connection_id":"` + aID + `","key":"big","value":"` + strings.Repeat("x", 5000) + `"}`, "INVALID-PARAMETER"},
	} {
		status := http.StatusBadRequest
		if strings.HasSuffix(e.typ, "NOT-FOUND") {
			status = http.StatusNotFound
		}
		apiErr(t, n, e.target, e.body, status, e.typ)
	}
	if md := apiOK[json.RawMessage](t, n, "Sora_20201124.GetSignalingNotifyMetadata", `{"channel_id":"meta","connection_id":"`+aID+`"}`); string(md) != `{"x":1}` {
		t.Fatalf("a refused change changed the object: %s", md)
	}

	// A payout that is not an object, or is one over
	// max_signaling_message_bytes, refuses the connect.
	for _, who := range []string{"mallory", "trudy"} {
		msg := connectMsg("meta", "sendrecv")
		msg["client_id"] = who
		_, err := dial(t, n).Connect(msg, soon())
		expectClosed(t, err, 4502, "INVALID-AUTH-WEBHOOK-RESPONSE-JSON")
	}
}
