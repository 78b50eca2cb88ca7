package cluster

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/hayate-sfu/hayate/mode"
)

var rpcPaths = []string{pathInfo, pathBootstrap, pathPropose, pathJoin, pathLeave, pathPurge, pathAPI}

// FuzzDecodeRPC feeds the RPC decoder arbitrary bodies on every path (the
// seeds are real requests). Whatever it accepts must encode and decode to
// the same request, and a proposal must apply to a table without breaking
// its invariant: every channel belongs to a node of the table.
func FuzzDecodeRPC(f *testing.F) {
	seed := func(path string, v any) {
		data, err := json.Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		for i, p := range rpcPaths {
			if p == path {
				f.Add(uint8(i), data)
			}
		}
	}
	seed(pathInfo, struct{}{})
	seed(pathBootstrap, bootstrapReq{Servers: []bootstrapServer{{Name: "a", RaftAddr: "127.0.0.1:5691"}, {Name: "b", RaftAddr: "127.0.0.1:5692"}}})
	seed(pathPropose, command{Op: opRegister, Node: "a", Inc: 7, SignalingURL: "ws://a/signaling", RPCAddr: "127.0.0.1:5690", MaxConns: 10, At: 1})
	seed(pathPropose, command{Op: opHeartbeat, Node: "a", Inc: 7, Seq: 3, Conns: 2, Mode: mode.Normal})
	seed(pathPropose, command{Op: opClaim, Node: "b", Channel: "room", Eligible: []string{"a", "b"}})
	seed(pathPropose, command{Op: opRelease, Node: "a", Inc: 7, Channel: "room", Index: 12})
	seed(pathPropose, command{Op: opSetMode, Node: "a", Mode: mode.BlockNewSession})
	seed(pathPropose, command{Op: opExpire, Node: "a", Inc: 7, Bye: true})
	seed(pathPropose, command{Op: opRemove, Node: "c"})
	seed(pathJoin, joinReq{Name: "d", RaftAddr: "127.0.0.1:5694", Temporary: true})
	seed(pathLeave, nameReq{Name: "d"})
	seed(pathPurge, nameReq{Name: "c"})
	seed(pathAPI, apiReq{Target: "Sora_20160711.PushChannel", Body: json.RawMessage(`{"channel_id":"room","data":{"a":"<b>"}}`)})
	f.Add(uint8(6), []byte(`{"target":"Sora_20151104.DisconnectChannel","body":  {"channel_id" : "x"} }`))
	f.Add(uint8(6), []byte(`{"target":"","body":{}}`))
	f.Add(uint8(6), []byte(`{"target":"x","body":[1]}`))
	f.Add(uint8(2), []byte(`{"op":4,"node":"a","ch":"","mode":"normal"}`))
	f.Add(uint8(2), []byte(`{"op":1,"node":"a b","mode":"bogus"}`))
	f.Add(uint8(1), []byte(`{"servers":[{"name":"a","raft_addr":"x:1"},{"name":"a","raft_addr":"x:2"}]}`))
	f.Add(uint8(3), []byte(`null`))

	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		path := rpcPaths[int(which)%len(rpcPaths)]
		q, err := decodeRPC(path, body)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("%s: error %v is not ErrBadRequest", path, err)
			}
			return
		}
		var v any
		switch {
		case q.cmd != nil:
			v = q.cmd
		case q.join != nil:
			v = q.join
		case q.name != nil:
			v = q.name
		case q.boot != nil:
			v = q.boot
		case q.api != nil:
			v = q.api
		default:
			return // info carries nothing
		}
		again, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		q2, err := decodeRPC(path, again)
		if err != nil || !reflect.DeepEqual(q, q2) {
			t.Fatalf("%s: %s decodes to %+v, re-encoded %s to %+v (%v)", path, body, q, again, q2, err)
		}
		if q.cmd == nil {
			return
		}
		tab := newTable()
		for _, c := range []command{
			{Op: opRegister, Node: "a", Inc: 7, MaxConns: 10},
			{Op: opRegister, Node: "b", Inc: 8},
			{Op: opClaim, Node: "a", Channel: "room", Eligible: []string{"a", "b"}},
		} {
			tab.apply(tab.Applied+1, &c)
		}
		cmd := *q.cmd
		cmd.Eligible = []string{"a", "b", q.cmd.Node} // what the leader would stamp
		tab.apply(tab.Applied+1, &cmd)
		for id, ch := range tab.Channels {
			if tab.Nodes[ch.Owner] == nil {
				t.Fatalf("after %+v channel %s belongs to unknown node %s", cmd, id, ch.Owner)
			}
		}
	})
}

// TestDecodeRPCRefuses lists requests no node may send.
func TestDecodeRPCRefuses(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		path string
		body string
	}{
		{pathPropose, `{"op":7,"node":"c"}`},                   // Remove: the leader's own
		{pathPropose, `{"op":6,"node":"c","inc":1,"beats":3}`}, // Expire of a node: the leader's own
		{pathPropose, `{"op":4,"node":"a","ch":""}`},           // claim without channel
		{pathPropose, `{"op":2,"node":"a","conns":-1}`},        // negative load
		{pathPropose, `{"op":99,"node":"a"}`},                  // unknown op
		{pathPropose, `{"op":2,"node":"a/b"}`},                 // not a node name
		{pathJoin, `{"name":"","raft_addr":"127.0.0.1:1"}`},    // no name
		{pathBootstrap, `{"servers":[]}`},                      // nobody
		{pathPurge, `{"name":"has space"}`},                    // not a node name
		{"/cluster/v1/other", `{}`},                            // no such operation
		{pathPropose, `{"op":2,"node":"a"} trailing`},          // not one JSON value
	} {
		if _, err := decodeRPC(c.path, []byte(c.body)); !errors.Is(err, ErrBadRequest) {
			t.Errorf("%s %s: %v, want ErrBadRequest", c.path, c.body, err)
		}
	}
	q, err := decodeRPC(pathPropose, []byte(`{"op":4,"node":"a","ch":"x","eligible":["evil"]}`))
	if err != nil || q.cmd.Eligible != nil {
		t.Errorf("a claim's eligible list from the wire survived: %+v %v", q.cmd, err)
	}
}
