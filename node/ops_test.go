package node

import (
	"context"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hayate-sfu/hayate/config"
	"github.com/hayate-sfu/hayate/internal/promtest"
)

// get fetches a URL with an optional bearer token.
func get(t testing.TB, url, token string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

// metricValue returns the value of the series written exactly as series
// (name and labels) in an exposition.
func metricValue(t testing.TB, exposition, series string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(exposition)
	if m == nil {
		t.Fatalf("no series %s in\n%s", series, exposition)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestMetrics: /metrics needs the token like the API, passes promtool's
// check, and its values follow the node.
func TestMetrics(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.APIToken = "s3cret" })
	url := n.apiURL() + "metrics"
	if st, body, h := get(t, url, ""); st != 401 || !strings.Contains(body, "UNAUTHORIZED") || h.Get("WWW-Authenticate") == "" {
		t.Fatalf("without token: %d %s", st, body)
	}
	if st, _, _ := get(t, url, "wrong"); st != 401 {
		t.Fatalf("wrong token: %d", st)
	}
	join(t, n, "m1", "sendrecv")
	join(t, n, "m1", "recvonly")
	join(t, n, "m2", "sendrecv")
	waitFor(t, "three connections created", 10*time.Second, func() bool { return n.hub.Stats().ConnectionCreated.Load() == 3 })
	st, body, h := get(t, url, "s3cret")
	if st != 200 || h.Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
		t.Fatalf("with token: %d %s", st, h.Get("Content-Type"))
	}
	promtest.Check(t, []byte(body))
	for series, want := range map[string]float64{
		"sora_ongoing_connections":                                       3,
		"hayate_sessions":                                                2,
		`sora_connections_total{state="created"}`:                        3,
		`sora_session_total{state="created"}`:                            2,
		`hayate_mode{source="effective",mode="normal"}`:                  1,
		`hayate_mode{source="effective",mode="block_new_session"}`:       0,
		"hayate_ready":                                                   1,
		`hayate_draining{reason="shutdown"}`:                             0,
		`hayate_connections{state="negotiating"}`:                        3,
		`hayate_media_transports`:                                        3,
		`hayate_refused_connections_total{reason="BLOCKED-NEW-SESSION"}`: 0,
	} {
		if got := metricValue(t, body, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	for _, family := range []string{"# TYPE hayate_media_received_packets_total counter", `hayate_media_dropped_packets_total{backend="`,
		"# TYPE go_goroutines gauge", "\nhayate_media_node_stalls_total{backend=\"", "\nhayate_media_longest_node_stall_seconds{backend=\"",
		"\nsora_sctp_received_packets_total 0\n", "\nsora_turn_connections_total{proto=\"tcp\"} 0\n", "\nsora_received_invalid_turn_tcp_packet_total 0\n",
		"\nhayate_turn_allocations 0\n", "# TYPE hayate_turn_refused_total counter", "\nhayate_media_links 0\n", "\nhayate_datachannel_relayed_messages_total 0\n", "\nhayate_datachannel_dropped_messages_total{reason=\"", "# TYPE process_open_fds gauge", `hayate_build_info{version="` + Version + `"`} {
		if !strings.Contains(body, family) {
			t.Errorf("no %q", family)
		}
	}

	// A refusal and a mode change show up in the next scrape.
	if st, _, raw := apiCallToken(t, n, "Sora_20211215.ChangeMode", `{"mode":"block_new_session"}`, "s3cret"); st != 200 {
		t.Fatalf("ChangeMode: %d %s", st, raw)
	}
	c := dial(t, n)
	_, err := c.Connect(connectMsg("m3", "sendrecv"), soon())
	expectClosed(t, err, 4503, "BLOCKED-NEW-SESSION")
	_, body, _ = get(t, url, "s3cret")
	for series, want := range map[string]float64{
		`hayate_refused_connections_total{reason="BLOCKED-NEW-SESSION"}`: 1,
		`hayate_mode{source="operator",mode="block_new_session"}`:        1,
		`hayate_mode{source="effective",mode="normal"}`:                  0,
		`hayate_draining{reason="operator"}`:                             1,
		`hayate_drain_start_connections`:                                 3,
		"hayate_ready":                                                   0,
	} {
		if got := metricValue(t, body, series); got != want {
			t.Errorf("after block: %s = %v, want %v", series, got, want)
		}
	}
}

// TestReadyzFollowsChangeMode: /readyz reads the mode word that admission
// reads, so the first answer after ChangeMode returns already reflects it,
// on the API port and on the signaling port alike; /healthz stays 200.
func TestReadyzFollowsChangeMode(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.APIToken = "s3cret" })
	ports := []string{n.apiURL(), "http://" + n.SignalingAddr().String() + "/"}
	expect := func(when string, status int, body string) {
		t.Helper()
		for _, base := range ports {
			if st, got, _ := get(t, base+"readyz", ""); st != status || got != body {
				t.Fatalf("%s: %sreadyz = %d %q, want %d %q", when, base, st, got, status, body)
			}
			if st, _, _ := get(t, base+"healthz", ""); st != 200 {
				t.Fatalf("%s: healthz %d", when, st)
			}
		}
	}
	expect("at start", 200, "ready\n")
	for _, m := range []string{"block_new_session", "normal", "block_new_connection", "normal"} {
		if st, _, raw := apiCallToken(t, n, "Sora_20211215.ChangeMode", `{"mode":"`+m+`"}`, "s3cret"); st != 200 {
			t.Fatalf("ChangeMode: %d %s", st, raw)
		}
		if m == "normal" {
			expect("after ChangeMode normal", 200, "ready\n")
		} else {
			expect("after ChangeMode "+m, 503, "not ready: mode "+m+"\n")
		}
	}
}

func apiCallToken(t testing.TB, n *Node, target, body, token string) (int, string, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, n.apiURL(), strings.NewReader(body))
	req.Header.Set("x-sora-target", target)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, "", data
}

// TestDrainStatus: a shutdown drain makes /readyz false from the moment
// Drain has set the mode, and its progress falls as connections leave.
func TestDrainStatus(t *testing.T) {
	n := startNode(t, nil)
	a, _ := join(t, n, "d1", "sendrecv")
	join(t, n, "d2", "sendrecv")
	if d := n.DrainStatus(); d.Active {
		t.Fatalf("drain before Drain: %+v", d)
	}
	done := make(chan bool, 1)
	go func() { done <- n.Drain(context.Background(), time.Minute) }()
	waitFor(t, "drain recorded", 10*time.Second, func() bool { return n.DrainStatus().Active })
	d := n.DrainStatus()
	if d.Reason != DrainShutdown || d.ConnectionsAtStart != 2 || d.SessionsAtStart != 2 || d.Deadline == nil ||
		d.Deadline.Sub(*d.StartedAt) != time.Minute {
		t.Fatalf("drain status %+v", d)
	}
	// The drain is recorded under the same lock that sets the mode, so
	// readiness is already false.
	if ok, why := n.Ready(); ok || why != "draining for shutdown" {
		t.Fatalf("Ready during drain: %v %q", ok, why)
	}
	if _, err := a.Disconnect(soon()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "one connection left", 10*time.Second, func() bool { return n.DrainStatus().Connections == 1 })
	if d := n.DrainStatus(); d.ConnectionsAtStart != 2 || d.Sessions != 1 {
		t.Fatalf("after one left: %+v", d)
	}
	// Returning the operator mode to normal does not end a shutdown drain.
	if st, body, raw := apiCall(t, n, "Sora_20211215.ChangeMode", `{"mode":"normal"}`); st != 200 || body["mode"] != "block_new_connection" {
		t.Fatalf("ChangeMode during drain: %d %s", st, raw)
	}
	if d := n.DrainStatus(); !d.Active || d.Reason != DrainShutdown {
		t.Fatalf("shutdown drain ended by ChangeMode: %+v", d)
	}
	_, st, raw := apiCall(t, n, "Sora_20171010.GetStatsReport", "")
	drain, _ := st["drain"].(map[string]any)
	if drain["active"] != true || drain["connections_at_start"] != 2.0 || st["ready"] != false {
		t.Fatalf("GetStatsReport drain: %s", raw)
	}
}

// TestOperatorDrain: a block mode set by the operator is a drain that ends
// when the operator returns to normal; initial_mode starts one at boot.
func TestOperatorDrain(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.InitialMode = 2 })
	if d := n.DrainStatus(); !d.Active || d.Reason != DrainOperator || d.Deadline != nil {
		t.Fatalf("booted blocked: %+v", d)
	}
	setMode(t, n, "normal")
	if d := n.DrainStatus(); d.Active {
		t.Fatalf("after normal: %+v", d)
	}
	join(t, n, "o1", "sendrecv")
	setMode(t, n, "block_new_session")
	setMode(t, n, "block_new_connection")
	if d := n.DrainStatus(); !d.Active || d.ConnectionsAtStart != 1 {
		t.Fatalf("operator drain: %+v", d)
	}
}

// TestStatusPageServed: the page shell needs no token (it holds no data)
// and is locked down by its headers.
func TestStatusPageServed(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.APIToken = "s3cret" })
	st, body, h := get(t, n.apiURL()+"status", "")
	if st != 200 || !strings.Contains(body, "<title>") || !strings.HasPrefix(h.Get("Content-Type"), "text/html") ||
		!strings.Contains(h.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Fatalf("status page: %d %v", st, h)
	}
	if st, _, h := get(t, n.apiURL()+"status/app.js", ""); st != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/javascript") {
		t.Fatalf("app.js: %d", st)
	}
	if st, _, _ := get(t, n.apiURL()+"status/nothing", ""); st != 404 {
		t.Fatalf("unknown file: %d", st)
	}
	// The data it shows is the API's, which still needs the token.
	if st, _, _ := apiCall(t, n, "Sora_20201013.ListConnections", ""); st != 401 {
		t.Fatalf("API without token: %d", st)
	}
}

// TestClusterMetricsAndReadiness: a cluster node is not ready until it
// holds its lease; its /metrics carry the cluster families under
// sora_exporter's names and pass promtool.
func TestClusterMetricsAndReadiness(t *testing.T) {
	n := startNode(t, clusterEdit(t, "n1"))
	if st, body, _ := get(t, n.apiURL()+"readyz", ""); st != 503 || body != "not ready: no cluster lease\n" {
		t.Fatalf("before the cluster formed: %d %q", st, body)
	}
	if st, _, raw := apiCall(t, n, "Sora_20221221.InitCluster", `{"node_name_list":["`+n.cl.c.RPCAddr()+`"]}`); st != 200 {
		t.Fatalf("InitCluster: %d %s", st, raw)
	}
	waitFor(t, "ready", 20*time.Second, func() bool { st, _, _ := get(t, n.apiURL()+"readyz", ""); return st == 200 })
	join(t, n, "c1", "sendrecv")
	waitFor(t, "channel owned", 20*time.Second, func() bool { owned, _, _ := n.cl.c.ChannelCounts(); return owned == 1 })
	_, body, _ := get(t, n.apiURL()+"metrics", "")
	promtest.Check(t, []byte(body))
	for series, want := range map[string]float64{
		`sora_cluster_raft_state{state="leader"}`:                             1,
		`sora_cluster_node{node_name="n1",mode="normal",node_type="regular"}`: 1,
		"hayate_cluster_lease_held":                                           1,
		"hayate_cluster_channels_owned":                                       1,
		"hayate_cluster_channels":                                             1,
		"hayate_ready":                                                        1,
	} {
		if got := metricValue(t, body, series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if metricValue(t, body, "sora_cluster_raft_term") < 1 || metricValue(t, body, "sora_cluster_raft_commit_index") < 1 {
		t.Errorf("raft term or commit index not set")
	}
}
