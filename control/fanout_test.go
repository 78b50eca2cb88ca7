package control

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/hayate-sfu/hayate/signal"
)

// absent is a backend with no channel at all: its operations on connections
// answer not found.
type absent struct{ buggy }

func (absent) Disconnect(string, signal.Selector, json.RawMessage) error {
	return signal.ErrChannelNotFound
}
func (absent) RequestKeyFrame(channelID, _ string) error {
	if channelID == "here" {
		return nil
	}
	return signal.ErrChannelNotFound
}

// ListRTCStats has one report here, of channel b.
func (absent) ListRTCStats(string) []signal.RTCStats {
	return []signal.RTCStats{{ChannelID: "b", ConnectionID: "B", Timestamp: "t", RTCStats: json.RawMessage(`[]`)}}
}

// peers is a cluster whose other nodes give fixed answers to a fan-out.
type peers struct {
	Cluster
	answers []PeerAnswer
	calls   int
}

func (p *peers) Fanout(context.Context, string, []byte) []PeerAnswer {
	p.calls++
	return p.answers
}

// TestFanoutMerge: how a cluster-wide operation's answer is made from this
// node's and the others'.
func TestFanoutMerge(t *testing.T) {
	notFound := func(typ string) PeerAnswer {
		return PeerAnswer{Node: "n", Status: 404, Body: []byte(`{"error_type":"` + typ + `","message":"m"}`)}
	}
	for _, c := range []struct {
		name, target, body string
		answers            []PeerAnswer
		status             int
		want               string
		calls              int
	}{
		{"another node has it", "Sora_20151104.DisconnectChannel", `{"channel_id":"c"}`,
			[]PeerAnswer{notFound("CHANNEL-NOT-FOUND"), {Node: "m", Status: 200, Body: []byte(`{"channel_id":"c"}`)}}, 200, `{"channel_id":"c"}`, 1},
		{"nobody has it", "Sora_20151104.DisconnectChannel", `{"channel_id":"c"}`,
			[]PeerAnswer{notFound("CHANNEL-NOT-FOUND"), notFound("CHANNEL-NOT-FOUND")}, 404, `"CHANNEL-NOT-FOUND"`, 1},
		{"a node has the channel, not the connection", "Sora_20151104.DisconnectConnection", `{"channel_id":"c","connection_id":"x"}`,
			[]PeerAnswer{notFound("CONNECTION-NOT-FOUND"), notFound("CHANNEL-NOT-FOUND")}, 404, `"CONNECTION-NOT-FOUND"`, 1},
		{"a node did not answer", "Sora_20151104.DisconnectChannel", `{"channel_id":"c"}`,
			[]PeerAnswer{notFound("CHANNEL-NOT-FOUND"), {Node: "m", Err: errors.New("connection refused")}}, 503, `"CLUSTER-UNAVAILABLE"`, 1},
		{"a node failed", "Sora_20151104.DisconnectChannel", `{"channel_id":"c"}`,
			[]PeerAnswer{{Node: "m", Status: 500, Body: []byte(`{}`)}}, 503, `"CLUSTER-UNAVAILABLE"`, 1},
		{"the node with the channel refuses", "Sora_20151104.DisconnectChannel", `{"channel_id":"c"}`,
			[]PeerAnswer{notFound("CHANNEL-NOT-FOUND"), {Node: "m", Status: 400, Body: []byte(`{"error_type":"INVALID-PARAMETER","message":"m"}`)}}, 400, `"INVALID-PARAMETER"`, 1},
		{"a node that carried it out wins over one that refused", "Sora_20151104.DisconnectChannel", `{"channel_id":"c"}`,
			[]PeerAnswer{{Node: "m", Status: 400, Body: []byte(`{"error_type":"INVALID-PARAMETER","message":"m"}`)}, {Node: "o", Status: 200, Body: []byte(`{"channel_id":"c"}`)}}, 200, `{"channel_id":"c"}`, 1},
		{"a node answered what is not the API's", "Sora_20151104.DisconnectChannel", `{"channel_id":"c"}`,
			[]PeerAnswer{{Node: "m", Status: 404, Body: []byte(`<html>`)}}, 503, `"CLUSTER-UNAVAILABLE"`, 1},
		{"an invalid request goes nowhere", "Sora_20151104.DisconnectChannel", `{}`, nil, 400, `"MISSING-PARAMETER"`, 0},
		{"a connection found here is not looked for elsewhere", "Sora_20241211.RequestKeyFrame", `{"channel_id":"here","connection_id":"x"}`,
			nil, 200, `{"channel_id":"here","connection_id":"x"}`, 0},
		// ListRtcStats asks the others only with local: false (Sora's
		// default is true) and merges every node's list, sorted.
		{"ListRtcStats is local by default", "Sora_20211215.ListRtcStats", `{}`, nil, 200,
			`[{"channel_id":"b","connection_id":"B","timestamp":"t","rtc_stats":[]}]`, 0},
		{"ListRtcStats local: true", "Sora_20211215.ListRtcStats", `{"local":true}`, nil, 200,
			`[{"channel_id":"b","connection_id":"B","timestamp":"t","rtc_stats":[]}]`, 0},
		{"ListRtcStats local: false merges every node's", "Sora_20211215.ListRtcStats", `{"local":false}`,
			[]PeerAnswer{{Node: "m", Status: 200, Body: []byte(`[{"channel_id":"a","connection_id":"A","timestamp":"u","rtc_stats":[{"id":"x"}]}]`)},
				{Node: "o", Status: 200, Body: []byte(`[]`)}}, 200,
			`[{"channel_id":"a","connection_id":"A","timestamp":"u","rtc_stats":[{"id":"x"}]},{"channel_id":"b","connection_id":"B","timestamp":"t","rtc_stats":[]}]`, 1},
		{"ListRtcStats local: false with a node silent", "Sora_20211215.ListRtcStats", `{"local":false}`,
			[]PeerAnswer{{Node: "m", Status: 200, Body: []byte(`[]`)}, {Node: "o", Err: errors.New("connection refused")}}, 503, `"CLUSTER-UNAVAILABLE"`, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl := &peers{answers: c.answers}
			a := New(absent{}, Options{Cluster: cl}, slog.New(slog.DiscardHandler))
			st, body := a.serve(t.Context(), c.target, []byte(c.body))
			if st != c.status || !strings.Contains(string(body), c.want) || cl.calls != c.calls {
				t.Fatalf("got %d %s after %d fan-outs, want %d %s after %d", st, body, cl.calls, c.status, c.want, c.calls)
			}
			// What another node asks runs here only.
			cl.calls = 0
			a.Local(t.Context(), c.target, []byte(c.body))
			if cl.calls != 0 {
				t.Fatal("an operation another node asked for fanned out again")
			}
		})
	}
}
