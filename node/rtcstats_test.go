package node

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hayate-sfu/hayate/config"
	"github.com/hayate-sfu/hayate/internal/sigclient"
)

// Strict types of the statistics API's answers, from Sora's documentation
// (API_RTC_STATS, API_STATS).

// soraRTCStats is one entry of ListRtcStats and ListChannelRtcStats, and
// GetRtcStats' answer: the report is the client's own getStats() list.
type soraRTCStats struct {
	ChannelID    string           `json:"channel_id"`
	ConnectionID string           `json:"connection_id"`
	Timestamp    string           `json:"timestamp"`
	RTCStats     []map[string]any `json:"rtc_stats"`
}

// soraRTCStatsCounters is GetStatsReport's rtc_stats object (Hayate's).
type soraRTCStatsCounters struct {
	TotalRequested uint64 `json:"total_requested"`
	TotalReceived  uint64 `json:"total_received"`
	Refused        struct {
		TooLarge  uint64 `json:"too_large"`
		Malformed uint64 `json:"malformed"`
	} `json:"refused"`
}

// statsRequest reads c's messages, answering keepalive pings, until the
// node asks for stats ({"type":"ping","stats":true}).
func statsRequest(t *testing.T, c *sigclient.Client) {
	t.Helper()
	c.AutoPong = false
	deadline := soon()
	for {
		msg, err := c.ReadMessage(deadline)
		if err != nil {
			t.Fatalf("waiting for a stats request: %v", err)
		}
		var m struct {
			Type  string `json:"type"`
			Stats *bool  `json:"stats"`
		}
		must(t, json.Unmarshal(msg, &m))
		if m.Type != "ping" {
			continue
		}
		if m.Stats == nil {
			t.Fatalf("ping without stats: %s", msg)
		}
		if *m.Stats {
			return
		}
		must(t, c.SendJSON(map[string]string{"type": "pong"}))
	}
}

// rtcStatsOf waits until GetRtcStats answers for the connection with a
// report whose first entry has id and returns it.
func rtcStatsOf(t *testing.T, n *Node, channel, id, entryID string) soraRTCStats {
	t.Helper()
	var got soraRTCStats
	body := `{"channel_id":"` + channel + `","connection_id":"` + id + `"}`
	waitFor(t, "GetRtcStats with the report "+entryID, patience, func() bool {
		st, data := apiRaw(t, n, "Sora_20211215.GetRtcStats", body)
		if st != http.StatusOK {
			return false
		}
		got = soraRTCStats{}
		if err := strictDecode(data, &got); err != nil {
			t.Fatalf("GetRtcStats: %v\n%s", err, data)
		}
		return len(got.RTCStats) > 0 && got.RTCStats[0]["id"] == entryID
	})
	return got
}

func rtcCounters(t *testing.T, n *Node) soraRTCStatsCounters {
	t.Helper()
	var c soraRTCStatsCounters
	must(t, strictDecode(apiOK[soraStatsReport](t, n, "Sora_20171010.GetStatsReport", ``).RTCStats, &c))
	return c
}

// TestRTCStatsWebSocket: the node asks a WebSocket client for its
// getStats() report with ping stats: true; the pong's report shows up in
// GetRtcStats, ListRtcStats and ListChannelRtcStats as sent, with the time
// it came; an oversize or malformed report is refused and counted and the
// connection goes on; the report goes with its connection.
func TestRTCStatsWebSocket(t *testing.T) {
	n := startNode(t, func(c *config.Config) {
		c.WebSocketStatsTimerInterval = 50 * time.Millisecond
		c.RTCStatsMaxBytes = 2048
	})
	c, o := join(t, n, "rtc", "sendrecv")
	_, quiet := join(t, n, "rtc", "recvonly") // answers pings, sends no stats

	report := `[{"id":"RTCPeerConnection","type":"peer-connection","timestamp":1636808733258.573,"dataChannelsOpened":0},` +
		`{"id":"RTCAudioSource_1","kind":"audio","type":"media-source","audioLevel":0,"totalSamplesDuration":90.08}]`
	statsRequest(t, c)
	before := time.Now()
	must(t, c.SendJSON(json.RawMessage(`{"type":"pong","stats":`+report+`}`)))
	got := rtcStatsOf(t, n, "rtc", o.ConnectionID, "RTCPeerConnection")
	at, err := time.Parse(time.RFC3339Nano, got.Timestamp)
	if err != nil || at.Before(before.Add(-time.Millisecond)) || at.After(time.Now()) {
		t.Errorf("timestamp %q (%v), want the report's arrival in UTC", got.Timestamp, err)
	}
	checkTimeFormat(t, "GetRtcStats timestamp", got.Timestamp, 3)
	want := []map[string]any{}
	must(t, json.Unmarshal([]byte(report), &want))
	if got.ChannelID != "rtc" || got.ConnectionID != o.ConnectionID || !jsonEqual(got.RTCStats, want) {
		t.Errorf("GetRtcStats: %+v, want the report as sent", got)
	}
	for _, target := range []struct{ name, body string }{{"Sora_20211215.ListRtcStats", ``}, {"Sora_20211215.ListRtcStats", `{"local":false}`},
		{"Sora_20211215.ListChannelRtcStats", `{"channel_id":"rtc"}`}} {
		list := apiOK[[]soraRTCStats](t, n, target.name, target.body)
		if len(list) != 1 || list[0].ConnectionID != o.ConnectionID || list[0].Timestamp != got.Timestamp {
			t.Errorf("%s %s: %+v, want the one report", target.name, target.body, list)
		}
	}
	if list := apiOK[[]soraRTCStats](t, n, "Sora_20211215.ListChannelRtcStats", `{"channel_id":"elsewhere"}`); len(list) != 0 {
		t.Errorf("ListChannelRtcStats of another channel: %+v", list)
	}
	apiErr(t, n, "Sora_20211215.GetRtcStats", `{"channel_id":"rtc","connection_id":"`+quiet.ConnectionID+`"}`, 404, "RTC-STATS-NOT-FOUND")
	apiErr(t, n, "Sora_20211215.GetRtcStats", `{"channel_id":"rtc","connection_id":"NOPE"}`, 404, "CONNECTION-NOT-FOUND")
	apiErr(t, n, "Sora_20211215.GetRtcStats", `{"channel_id":"nowhere","connection_id":"`+o.ConnectionID+`"}`, 404, "CHANNEL-NOT-FOUND")
	apiErr(t, n, "Sora_20211215.GetRtcStats", `{"channel_id":"rtc"}`, 400, "MISSING-PARAMETER")
	apiErr(t, n, "Sora_20211215.ListChannelRtcStats", `{}`, 400, "MISSING-PARAMETER")
	apiErr(t, n, "Sora_20211215.ListRtcStats", `{"local":"yes"}`, 400, "INVALID-PARAMETER")

	// Refused: over rtc_stats_max_bytes, not an array, an array of
	// numbers. The connection lives on and the kept report stays.
	huge := `[{"id":"huge","type":"codec","mimeType":"` + strings.Repeat("x", 4096) + `"}]`
	for _, bad := range []string{huge, `{"id":"obj"}`, `[1,2,3]`} {
		must(t, c.SendJSON(json.RawMessage(`{"type":"pong","stats":`+bad+`}`)))
	}
	waitFor(t, "the refused reports counted", patience, func() bool {
		r := rtcCounters(t, n)
		return r.Refused.TooLarge == 1 && r.Refused.Malformed == 2
	})
	if again := rtcStatsOf(t, n, "rtc", o.ConnectionID, "RTCPeerConnection"); again.Timestamp != got.Timestamp {
		t.Errorf("a refused report replaced the kept one: %+v", again)
	}
	statsRequest(t, c) // the node still asks: the connection is alive
	must(t, c.SendJSON(json.RawMessage(`{"type":"pong","stats":[{"id":"second","type":"transport"}]}`)))
	rtcStatsOf(t, n, "rtc", o.ConnectionID, "second")
	if r := rtcCounters(t, n); r.TotalReceived != 2 || r.TotalRequested < 2 {
		t.Errorf("rtc_stats counters %+v, want 2 received", r)
	}
	join(t, n, "rtc", "recvonly") // and the node serves others

	// The report goes with its connection.
	if cl, err := c.Disconnect(soon()); err != nil || cl.Code != 1000 {
		t.Fatalf("disconnect: %v %v", cl, err)
	}
	waitFor(t, "the report gone with its connection", patience, func() bool {
		return len(apiOK[[]soraRTCStats](t, n, "Sora_20211215.ListRtcStats", ``)) == 0
	})
}

// checkTimeFormat fails unless s is a UTC time in RFC 3339 with exactly
// digits digits of fractions of a second, ending in Z: Sora's
// API_RTC_STATS shows the report's time with milliseconds
// ("2021-11-13T13:05:33.264Z"), API_STATS gives the answer's time "UTC 時間
// RFC3339 形式 (マイクロ秒)".
func checkTimeFormat(t *testing.T, what, s string, digits int) {
	t.Helper()
	re := regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{` + strconv.Itoa(digits) + `}Z$`)
	if !re.MatchString(s) {
		t.Errorf("%s %q, want UTC RFC 3339 with %d fraction digits", what, s, digits)
	}
}

// jsonEqual compares two values by their JSON.
func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

// TestRTCStatsDataChannel: a client that switched to DataChannel signaling
// is asked with req-stats on the stats DataChannel, also once its
// WebSocket is gone (ignore_disconnect_websocket), and its stats reply
// shows up in GetRtcStats.
func TestRTCStatsDataChannel(t *testing.T) {
	n := startNode(t, func(c *config.Config) {
		c.WebSocketStatsTimerInterval = 0 // only the DataChannel asks
		c.DataChannelStatsTimerInterval = 50 * time.Millisecond
	})
	p := newDCPeer(t, n, "rtc-dc", "sendrecv", map[string]any{"ignore_disconnect_websocket": true})
	p.waitSwitched()
	p.closeWebSocket()
	asked := func() int {
		k := 0
		for _, m := range p.received("stats") {
			if m.data == `{"type":"req-stats"}` {
				k++
			}
		}
		return k
	}
	waitFor(t, "req-stats on the stats DataChannel", patience, func() bool { return asked() > 0 })
	p.send("stats", `{"type":"stats","reports":[{"id":"T01","type":"transport","bytesSent":1200}]}`, false)
	got := rtcStatsOf(t, n, "rtc-dc", p.id, "T01")
	if got.RTCStats[0]["bytesSent"] != 1200.0 || len(got.RTCStats) != 1 {
		t.Errorf("GetRtcStats: %+v, want the DataChannel report", got)
	}
	// A malformed reply on the DataChannel is refused too, and the
	// requests go on.
	k := asked()
	p.send("stats", `{"type":"stats","reports":"nope"}`, false)
	waitFor(t, "the malformed DataChannel report counted", patience, func() bool { return rtcCounters(t, n).Refused.Malformed == 1 })
	waitFor(t, "more req-stats", patience, func() bool { return asked() > k })
	p.send("stats", `{"type":"stats","reports":[{"id":"T02","type":"transport"}]}`, false)
	rtcStatsOf(t, n, "rtc-dc", p.id, "T02")
}
