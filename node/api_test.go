package node

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/hayate-sfu/hayate/config"
)

func TestAPIMode(t *testing.T) {
	n := startNode(t, nil)
	for _, m := range []string{"block_new_session", "block_new_connection", "normal"} {
		setMode(t, n, m)
		st, body, raw := apiCall(t, n, "Sora_20211215.GetMode", "")
		if st != 200 || body["mode"] != m {
			t.Fatalf("GetMode after %s: %d %s", m, st, raw)
		}
	}
	setMode(t, n, "block_new_session")
	errs := []struct {
		name, target, body string
		status             int
		errType            string
	}{
		{"bad JSON", "Sora_20211215.ChangeMode", `{"mode":`, 400, "INVALID-JSON"},
		{"not an object", "Sora_20211215.ChangeMode", `"normal"`, 400, "INVALID-JSON"},
		{"missing mode", "Sora_20211215.ChangeMode", `{}`, 400, "MISSING-PARAMETER"},
		{"empty body", "Sora_20211215.ChangeMode", ``, 400, "MISSING-PARAMETER"},
		{"null mode", "Sora_20211215.ChangeMode", `{"mode":null}`, 400, "MISSING-PARAMETER"},
		{"invalid mode", "Sora_20211215.ChangeMode", `{"mode":"maintenance"}`, 400, "INVALID-MODE"},
		{"mode of wrong case", "Sora_20211215.ChangeMode", `{"mode":"NORMAL"}`, 400, "INVALID-MODE"},
		{"mode not a string", "Sora_20211215.ChangeMode", `{"mode":1}`, 400, "INVALID-MODE"},
		{"unknown target", "Sora_20211215.ChangeModes", `{"mode":"normal"}`, 400, "UNKNOWN-TARGET"},
		{"missing target", "", `{"mode":"normal"}`, 400, "UNKNOWN-TARGET"},
		{"too large", "Sora_20211215.ChangeMode", `{"mode":"normal","pad":"` + strings.Repeat("x", 1<<20) + `"}`, 413, "BODY-TOO-LARGE"},
	}
	for _, e := range errs {
		t.Run(e.name, func(t *testing.T) {
			st, body, raw := apiCall(t, n, e.target, e.body)
			if st != e.status || body["error_type"] != e.errType {
				t.Fatalf("got %d %s, want %d %s", st, raw, e.status, e.errType)
			}
			if _, _, raw := apiCall(t, n, "Sora_20211215.GetMode", ""); !strings.Contains(string(raw), "block_new_session") {
				t.Fatalf("mode changed by a failed request: %s", raw)
			}
		})
	}
	t.Run("other methods", func(t *testing.T) {
		for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
			req, _ := http.NewRequest(m, n.apiURL(), nil)
			req.Header.Set("x-sora-target", "Sora_20211215.GetMode")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var body map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode != 405 || body["error_type"] != "METHOD-NOT-ALLOWED" || resp.Header.Get("Allow") != "POST, OPTIONS" {
				t.Fatalf("%s: %d %v allow=%q", m, resp.StatusCode, body, resp.Header.Get("Allow"))
			}
		}
	})
	t.Run("other path", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, n.apiURL()+"api", strings.NewReader(`{}`))
		req.Header.Set("x-sora-target", "Sora_20211215.GetMode")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 404 || body["error_type"] != "NOT-FOUND" {
			t.Fatalf("POST /api: %d %v, want 404 NOT-FOUND", resp.StatusCode, body)
		}
	})
	t.Run("OPTIONS preflight and CORS", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodOptions, n.apiURL(), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "x-sora-target") ||
			resp.Header.Get("Access-Control-Allow-Methods") != "POST, OPTIONS" || resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("%d %v", resp.StatusCode, resp.Header)
		}
	})
}

func TestAPICORSOrigin(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.APICORSOrigin = "http://127.0.0.1:5000" })
	req, _ := http.NewRequest(http.MethodPost, n.apiURL(), nil)
	req.Header.Set("x-sora-target", "Sora_20211215.GetMode")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "http://127.0.0.1:5000" || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("allow-origin %q, content-type %q", got, resp.Header.Get("Content-Type"))
	}
}

func TestAPIConnections(t *testing.T) {
	ev := newHookReceiver(t)
	n := startNode(t, func(c *config.Config) { c.EventWebhookURL = ev.url() })
	a, oa := join(t, n, "one", "sendrecv")
	_, ob := join(t, n, "two", "recvonly")
	c, oc := join(t, n, "two", "sendonly")
	// Each is created once the node has taken its answer (asynchronous):
	// one disconnected before that would never count as created.
	waitFor(t, "three connections created", patience, func() bool { return n.hub.Stats().ConnectionCreated.Load() == 3 })

	list := func(target, body string) []map[string]any {
		t.Helper()
		st, _, raw := apiCall(t, n, target, body)
		var out []map[string]any
		if st != 200 || json.Unmarshal(raw, &out) != nil {
			t.Fatalf("%s: %d %s", target, st, raw)
		}
		return out
	}
	all := list("Sora_20201013.ListConnections", "")
	if len(all) != 3 {
		t.Fatalf("ListConnections: %v", all)
	}
	two := list("Sora_20201013.ListChannelConnections", `{"channel_id":"two"}`)
	if len(two) != 2 || two[0]["connection_id"] != ob.ConnectionID || two[1]["connection_id"] != oc.ConnectionID {
		t.Fatalf("ListChannelConnections two: %v", two)
	}
	e := two[1]
	if e["role"] != "sendonly" || e["session_id"] != oc.SessionID || e["channel_id"] != "two" || e["client_id"] != oc.ClientID ||
		e["audio"].(map[string]any)["codec_type"] != "OPUS" || e["video"].(map[string]any)["codec_type"] != "VP9" || e["created_time"].(float64) <= 0 {
		t.Fatalf("entry: %v", e)
	}
	if got := list("Sora_20201013.ListChannelConnections", `{"channel_id":"nobody"}`); len(got) != 0 {
		t.Fatalf("unknown channel lists %v", got)
	}

	errs := []struct {
		name, target, body string
		status             int
		errType            string
	}{
		{"list: missing channel_id", "Sora_20201013.ListChannelConnections", `{}`, 400, "MISSING-PARAMETER"},
		{"list: channel_id not a string", "Sora_20201013.ListChannelConnections", `{"channel_id":5}`, 400, "INVALID-PARAMETER"},
		{"list: bad JSON", "Sora_20201013.ListChannelConnections", `{`, 400, "INVALID-JSON"},
		{"disconnect channel: unknown", "Sora_20151104.DisconnectChannel", `{"channel_id":"nobody"}`, 404, "CHANNEL-NOT-FOUND"},
		{"disconnect channel: missing", "Sora_20151104.DisconnectChannel", `{}`, 400, "MISSING-PARAMETER"},
		{"disconnect connection: unknown channel", "Sora_20151104.DisconnectConnection", `{"channel_id":"nobody","connection_id":"` + oa.ConnectionID + `"}`, 404, "CHANNEL-NOT-FOUND"},
		{"disconnect connection: unknown connection", "Sora_20151104.DisconnectConnection", `{"channel_id":"one","connection_id":"` + oc.ConnectionID + `"}`, 404, "CONNECTION-NOT-FOUND"},
		{"disconnect connection: missing connection_id", "Sora_20151104.DisconnectConnection", `{"channel_id":"one"}`, 400, "MISSING-PARAMETER"},
		{"disconnect connection: bad JSON", "Sora_20151104.DisconnectConnection", `[]`, 400, "INVALID-JSON"},
	}
	for _, e := range errs {
		t.Run(e.name, func(t *testing.T) {
			st, body, raw := apiCall(t, n, e.target, e.body)
			if st != e.status || body["error_type"] != e.errType {
				t.Fatalf("got %d %s, want %d %s", st, raw, e.status, e.errType)
			}
		})
	}

	st, body, raw := apiCall(t, n, "Sora_20151104.DisconnectConnection", `{"channel_id":"two","connection_id":"`+oc.ConnectionID+`","reason":{"why":"test"}}`)
	if st != 200 || body["channel_id"] != "two" || body["connection_id"] != oc.ConnectionID {
		t.Fatalf("DisconnectConnection: %d %s", st, raw)
	}
	closed, err := c.AwaitClose(soon())
	if err != nil || closed.Code != 1000 || closed.Reason != "DISCONNECTED-API" {
		t.Fatalf("disconnected client saw %v %v", closed, err)
	}
	waitFor(t, "connection.destroyed", patience, func() bool { return ev.count("connection.destroyed") == 1 })
	d := ev.ofType("connection.destroyed")[0]["data"].(map[string]any)
	// Sora types disconnect_api_reason as a string: JSON other than a
	// string comes as its text.
	if d["reason"] != "DISCONNECTED-API" || d["disconnect_api_reason"] != `{"why":"test"}` {
		t.Fatalf("connection.destroyed data: %v", d)
	}

	st, body, raw = apiCall(t, n, "Sora_20151104.DisconnectChannel", `{"channel_id":"one"}`)
	if st != 200 || body["channel_id"] != "one" {
		t.Fatalf("DisconnectChannel: %d %s", st, raw)
	}
	closed, err = a.AwaitClose(soon())
	if err != nil || closed.Code != 1000 || closed.Reason != "DISCONNECTED-API" {
		t.Fatalf("channel member saw %v %v", closed, err)
	}
	waitFor(t, "one connection left", patience, func() bool { return n.hub.Connections() == 1 })

	st, stats, raw := apiCall(t, n, "Sora_20171010.GetStatsReport", "")
	if st != 200 {
		t.Fatalf("GetStatsReport: %d %s", st, raw)
	}
	for k, want := range map[string]any{
		"mode": "normal", "total_connection_created": 3.0, "total_connection_destroyed": 2.0,
		"total_ongoing_connections": 1.0, "total_ongoing_sessions": 1.0, "total_session_created": 2.0,
		"total_session_destroyed": 1.0, "total_successful_connections": 3.0,
	} {
		if stats[k] != want {
			t.Errorf("GetStatsReport %s = %v, want %v", k, stats[k], want)
		}
	}
	if rt, _ := stats["runtime"].(map[string]any); rt == nil || rt["goroutines"].(float64) < 1 || rt["total_mallocs"].(float64) < 1 {
		t.Errorf("runtime section: %v", stats["runtime"])
	}
	if _, ok := stats["refused_connections"].(map[string]any)["BLOCKED-NEW-SESSION"]; !ok {
		t.Errorf("no refusal counters: %s", raw)
	}
}
