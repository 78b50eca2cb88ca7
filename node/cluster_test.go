package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hayate-sfu/hayate/config"
	"github.com/hayate-sfu/hayate/internal/sigclient"
)

// clusterEdit makes a node a cluster member on free ports with fast
// timings and its raft state in a test directory.
func clusterEdit(t *testing.T, name string) func(*config.Config) {
	dir := t.TempDir()
	return func(c *config.Config) {
		c.Cluster = true
		c.ClusterNodeName = name
		c.ClusterPort, c.ClusterRaftPort = 0, 0
		c.ClusterDataDir = dir
		// Fast enough for a short test, slow enough that raft elections
		// and lease renewals survive a loaded machine under -race (raft's
		// heartbeat and election timeouts are 2H = 500 ms).
		c.ClusterHeartbeatInterval = 250 * time.Millisecond
		c.ClusterLeaseTTL = 3 * time.Second
		c.ClusterLeaseGrace = time.Second
	}
}

// startCluster starts n cluster nodes and forms the cluster through the
// first one's API; it returns once every node holds a lease (mode normal).
func startCluster(t *testing.T, size int, edits ...func(*config.Config)) []*Node {
	t.Helper()
	var nodes []*Node
	var rpcs []string
	for i := range size {
		n := startNode(t, func(c *config.Config) {
			clusterEdit(t, fmt.Sprintf("n%d", i+1))(c)
			for _, e := range edits {
				e(c)
			}
		})
		if n.Mode().String() != "block_new_connection" {
			t.Fatalf("a cluster node starts in %s, want block_new_connection", n.Mode())
		}
		nodes = append(nodes, n)
		rpcs = append(rpcs, n.cl.c.RPCAddr())
	}
	body, _ := json.Marshal(map[string]any{"node_name_list": rpcs})
	if got := apiOK[soraInitCluster](t, nodes[0], "Sora_20221221.InitCluster", string(body)); len(got.NodeNameList) != size {
		t.Fatalf("InitCluster answered %+v", got)
	}
	waitFor(t, "every node in normal mode", patience, func() bool {
		for _, n := range nodes {
			if n.Mode().String() != "normal" {
				return false
			}
		}
		return true
	})
	waitReplicatedNormal(t, nodes, nodes...)
	return nodes
}

// waitReplicatedNormal waits until the table of every node in tables shows
// every node in nodes normal and connected. A node's own mode turns normal
// when its lease is granted, one heartbeat before the heartbeat that
// carries the new mode reaches the table; placement reads the table, so
// until then a new channel asked of the node goes elsewhere.
func waitReplicatedNormal(t *testing.T, tables []*Node, nodes ...*Node) {
	t.Helper()
	for _, tn := range tables {
		for _, n := range nodes {
			name := n.cl.c.Name()
			waitFor(t, name+" normal in "+tn.cl.c.Name()+"'s table", patience, func() bool {
				for _, st := range tn.cl.c.Nodes() {
					if st.Name == name {
						return st.Mode.String() == "normal" && st.Connected
					}
				}
				return false
			})
		}
	}
}

// serveHere asks n for new channels named prefix-1, prefix-2... until n
// serves one (an offer) and returns its name with the client left
// connected. A loaded machine may let n's lease renewal run late for a
// moment, so that the table shows n in block_new_session: a new channel is
// then placed elsewhere (a redirect) or nowhere (4503). Redirected and
// refused attempts never reach the auth webhook... except a connect
// admitted by the precheck and refused at admission, hence new names.
func serveHere(t *testing.T, n *Node, prefix string) string {
	t.Helper()
	var ch string
	i := 0
	waitFor(t, "a new channel served by "+n.cl.c.Name(), patience, func() bool {
		i++
		ch = fmt.Sprintf("%s-%d", prefix, i)
		m, _, refused := tryConnect(t, n, ch, false)
		return refused == nil && m["type"] == "offer"
	})
	return ch
}

// tryConnect sends connect for channel to n once and returns the first
// message (offer or redirect) and, after a redirect, the close; or the
// refusal, if the node closed with 4503 (no lease, or no node can take a
// new channel, for now). Any other failure fails the test.
func tryConnect(t *testing.T, n *Node, channel string, redirect bool) (map[string]any, *sigclient.Closed, *sigclient.Closed) {
	t.Helper()
	c := dial(t, n)
	msg := connectMsg(channel, "sendrecv")
	if redirect {
		msg["redirect"] = true
	}
	if err := c.SendJSON(msg); err != nil {
		t.Fatal(err)
	}
	raw, err := c.ReadMessage(soon())
	var refused *sigclient.Closed
	if errors.As(err, &refused) && refused.Code == 4503 {
		return nil, nil, refused
	}
	if err != nil {
		t.Fatalf("connect %s on %s: %v", channel, n.cl.c.Name(), err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	if m["type"] != "redirect" {
		return m, nil, nil
	}
	cl, err := c.AwaitClose(soon())
	if err != nil {
		t.Fatalf("no close after redirect: %v", err)
	}
	return m, cl, nil
}

// connectRetry sends connect for channel to n and returns the first
// message (offer or redirect) and, after a redirect, the close; it asks
// again while the node refuses with 4503 (no lease, or no node can take a
// new channel, for the moment).
func connectRetry(t *testing.T, n *Node, channel string, redirect bool) (map[string]any, *sigclient.Closed) {
	t.Helper()
	var m map[string]any
	var cl *sigclient.Closed
	waitFor(t, "connect "+channel+" on "+n.cl.c.Name()+" not refused", patience, func() bool {
		var refused *sigclient.Closed
		m, cl, refused = tryConnect(t, n, channel, redirect)
		return refused == nil
	})
	return m, cl
}

// TestClusterRedirect: the node a connect reaches owns a new channel (equal
// loads, the node asked wins the tie); another node answers a connect for it
// with Sora's redirect and closes 1000 REDIRECT, before any auth webhook
// call; the redirected connect (redirect: true) is admitted by the owner,
// and session.created carries the owner's external_signaling_url.
func TestClusterRedirect(t *testing.T) {
	hooks := newHookReceiver(t)
	base := goroutineBaseline()
	var mu sync.Mutex
	authCalls := map[any]int{} // per channel
	hooks.respond = func(w http.ResponseWriter, body map[string]any) {
		if body["type"] == nil { // the auth webhook's body has no type
			mu.Lock()
			authCalls[body["channel_id"]]++
			mu.Unlock()
			w.Write([]byte(`{"allowed":true}`))
		}
	}
	nodes := startCluster(t, 3, func(c *config.Config) {
		c.AuthWebhookURL = hooks.url() + "?auth"
		c.SessionWebhookURL = hooks.url()
	})
	a, b := nodes[0], nodes[1]
	room := serveHere(t, a, "room")
	msg, cl := connectRetry(t, b, room, false)
	if msg["type"] != "redirect" || msg["location"] != a.signalingURL() {
		t.Fatalf("connect to a non-owner got %v, want a redirect to %s", msg, a.signalingURL())
	}
	if cl.Code != 1000 || cl.Reason != "REDIRECT" {
		t.Fatalf("closed with %d %s after the redirect", cl.Code, cl.Reason)
	}
	again, _ := connectRetry(t, a, room, true)
	if again["type"] != "offer" {
		t.Fatalf("redirected connect: %v", again)
	}
	mu.Lock()
	calls := authCalls[room]
	mu.Unlock()
	if calls != 2 {
		t.Fatalf("auth webhook called %d times for %s, want 2 (never for the redirected connect)", calls, room)
	}
	_, st, _ := apiCall(t, b, "Sora_20171010.GetStatsReport", "")
	if st["total_redirects"] != 1.0 || st["total_failed_connections"] != 0.0 {
		t.Fatalf("non-owner stats: redirects %v, failed %v", st["total_redirects"], st["total_failed_connections"])
	}
	cs := st["cluster"].(map[string]any)
	if cs["raft_state"] == nil || cs["raft_term"] == nil || cs["raft_commit_index"] == nil {
		t.Fatalf("GetStatsReport cluster section: %v", cs)
	}
	waitFor(t, "session.created", patience, func() bool { return hooks.count("session.created") == 1 })
	if u := hooks.ofType("session.created")[0]["external_signaling_url"]; u != a.signalingURL() {
		t.Fatalf("session.created external_signaling_url %v, want %s", u, a.signalingURL())
	}
	// ListClusterChannels on any node names the owner.
	_, _, raw := apiCall(t, nodes[2], "Sora_20211215.ListClusterChannels", "")
	if !strings.Contains(string(raw), `"channel_id":"`+room+`","cluster_node_name":"n1"`) {
		t.Fatalf("ListClusterChannels: %s", raw)
	}
	// Stopped, the nodes leave nothing running (raft included).
	for _, n := range nodes {
		n.Close(t.Context())
	}
	checkGoroutines(t, base, nodes...)
}

// TestClusterOperatorModeSkipsNode: ChangeMode on a node is replicated, so
// a new channel asked of that node goes to another one (redirect), while a
// channel it already serves keeps accepting connections in
// block_new_session. ListClusterNodes shows each node's effective mode.
func TestClusterOperatorModeSkipsNode(t *testing.T) {
	nodes := startCluster(t, 3)
	a := nodes[0]
	live := serveHere(t, a, "live")
	setMode(t, a, "block_new_session")
	waitFor(t, "the mode replicated", patience, func() bool {
		_, _, raw := apiCall(t, nodes[1], "Sora_20211215.ListClusterNodes", "")
		var list []map[string]any
		json.Unmarshal(raw, &list)
		for _, n := range list {
			if n["cluster_node_name"] == "n1" {
				return n["mode"] == "block_new_session"
			}
		}
		return false
	})
	for i := range 10 {
		// Redirected elsewhere; refused (4503) only while no other node
		// can take it (their renewals late on a loaded machine), which a
		// new channel placed on n1 would be every time.
		m, _ := connectRetry(t, a, fmt.Sprintf("new-%d", i), false)
		if m["type"] != "redirect" || m["location"] == a.signalingURL() {
			t.Fatalf("new channel asked of a node in block_new_session: %v", m)
		}
	}
	if m, _ := connectRetry(t, a, live, false); m["type"] != "offer" {
		t.Fatalf("a live channel in block_new_session: %v", m)
	}
	setMode(t, a, "normal")
}

// TestClusterLeaseLost: when the other two nodes stop, the survivor has no
// majority: its lease lapses, its connections are closed with 1012
// CLUSTER-LEASE-LOST, and it refuses new ones with BLOCKED-NEW-CONNECTION.
func TestClusterLeaseLost(t *testing.T) {
	nodes := startCluster(t, 3)
	c, a := joinOwner(t, nodes, "room")
	for _, n := range nodes {
		if n != a {
			n.Close(t.Context())
		}
	}
	cl, err := c.AwaitClose(soon())
	if err != nil || cl.Code != 1012 || cl.Reason != "CLUSTER-LEASE-LOST" {
		t.Fatalf("connection of a fenced node closed with %v %v", cl, err)
	}
	if a.Mode().String() != "block_new_connection" {
		t.Fatalf("fenced node in %s", a.Mode())
	}
	routes := a.cl.routes.Load()
	_, err = dial(t, a).Connect(connectMsg("elsewhere", "sendrecv"), soon())
	expectClosed(t, err, 4503, "BLOCKED-NEW-CONNECTION")
	if got := a.cl.routes.Load(); got != routes {
		t.Fatalf("a cut-off node tried to route the connect (%d routes): it must refuse without waiting for a claim", got-routes)
	}
	// Without a majority the cluster cannot answer a consistent read;
	// the node's own copy is still there when asked for.
	if st, body, raw := apiCall(t, a, "Sora_20211215.ListClusterChannels", ""); st != 503 || body["error_type"] != "CLUSTER-UNAVAILABLE" {
		t.Fatalf("ListClusterChannels without a majority: %d %s, want 503 CLUSTER-UNAVAILABLE", st, raw)
	}
	if st, _, raw := apiCall(t, a, "Sora_20211215.ListClusterNodes", `{"stale":true}`); st != 200 || !strings.Contains(string(raw), `"cluster_node_name":"n2"`) {
		t.Fatalf("ListClusterNodes stale: %d %s", st, raw)
	}
}

// joinOwner joins channel through the first node, following a redirect
// (placement may pick another node when the first one's lease renewal is
// late), and returns the live client and the node that serves it.
func joinOwner(t *testing.T, nodes []*Node, channel string) (*sigclient.Client, *Node) {
	t.Helper()
	n := nodes[0]
	deadline := time.Now().Add(patience)
	for hops := 0; hops < 3; {
		c := dial(t, n)
		o, err := c.Connect(connectMsg(channel, "sendrecv"), soon())
		var cl *sigclient.Closed
		if errors.As(err, &cl) && cl.Code == 4503 && time.Now().Before(deadline) {
			// No node can take the channel for the moment (their lease
			// renewals ran late on a loaded machine): ask again.
			c.Close()
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatalf("connect %s on %s: %v", channel, n.cl.c.Name(), err)
		}
		if o.Type != "redirect" {
			answer(t, c, o)
			return c, n
		}
		c.Close()
		hops++
		for _, m := range nodes {
			if m.signalingURL() == o.Location {
				n = m
			}
		}
	}
	t.Fatalf("connect %s: redirected too often", channel)
	return nil, nil
}

// TestClusterAPIErrors: the cluster operations' errors, and the API of a
// node without cluster = true.
func TestClusterAPIErrors(t *testing.T) {
	single := startNode(t, nil)
	for _, target := range []string{"Sora_20221221.InitCluster", "Sora_20211215.RegisterClusterNode",
		"Sora_20211215.ListClusterNodes", "Sora_20211215.ListClusterChannels", "Sora_20220629.PurgeClusterNode"} {
		if st, body, _ := apiCall(t, single, target, `{}`); st != 400 || body["error_type"] != "CLUSTER-NOT-ENABLED" {
			t.Errorf("%s without cluster: %d %v", target, st, body)
		}
	}
	nodes := startCluster(t, 3)
	a := nodes[0]
	for _, c := range []struct {
		target, body string
		status       int
		errorType    string
	}{
		{"Sora_20221221.InitCluster", `{"node_name_list":["` + a.cl.c.RPCAddr() + `"]}`, 409, "CLUSTER-ALREADY-INITIALISED"},
		{"Sora_20221221.InitCluster", `{}`, 400, "MISSING-PARAMETER"},
		{"Sora_20221221.InitCluster", `{"node_name_list":"n1"}`, 400, "INVALID-PARAMETER"},
		{"Sora_20221221.InitCluster", `{"node_name_list":[]}`, 400, "INVALID-PARAMETER"},
		{"Sora_20220629.PurgeClusterNode", `{"target_node_name":"n2"}`, 409, "CLUSTER-NODE-ALIVE"},
		{"Sora_20220629.PurgeClusterNode", `{"target_node_name":"n1"}`, 400, "CLUSTER-INVALID-NODE"},
		{"Sora_20220629.PurgeClusterNode", `{"target_node_name":"nobody"}`, 404, "CLUSTER-NODE-NOT-FOUND"},
		{"Sora_20220629.PurgeClusterNode", `{}`, 400, "MISSING-PARAMETER"},
		{"Sora_20211215.RegisterClusterNode", `{"contact_node_name":7}`, 400, "INVALID-PARAMETER"},
	} {
		st, body, raw := apiCall(t, a, c.target, c.body)
		if st != c.status || body["error_type"] != c.errorType {
			t.Errorf("%s %s: %d %s, want %d %s", c.target, c.body, st, raw, c.status, c.errorType)
		}
	}
	_, _, raw := apiCall(t, a, "Sora_20211215.ListClusterNodes", "")
	var list []map[string]any
	if err := json.Unmarshal(raw, &list); err != nil || len(list) != 3 {
		t.Fatalf("ListClusterNodes: %s", raw)
	}
	for _, n := range list {
		for _, k := range []string{"cluster_node_name", "epoch", "mode", "cluster_signaling_url", "cluster_api_url", "member_since", "connected", "temporary_node"} {
			if _, ok := n[k]; !ok {
				t.Errorf("ListClusterNodes entry lacks %s: %v", k, n)
			}
		}
	}
}

// TestClusterTemporaryNodeJoins: a temporary node joins through
// RegisterClusterNode sent to it, takes channels by load like the others,
// and leaves the cluster when it stops.
func TestClusterTemporaryNodeJoins(t *testing.T) {
	nodes := startCluster(t, 3)
	tmp := startNode(t, func(c *config.Config) {
		clusterEdit(t, "temp-1")(c)
		c.ClusterTemporaryNode = true
	})
	if tmp.Mode().String() != "block_new_connection" {
		t.Fatalf("an unjoined node is in %s", tmp.Mode())
	}
	_, err := dial(t, tmp).Connect(connectMsg("x", "sendrecv"), soon())
	expectClosed(t, err, 4503, "BLOCKED-NEW-CONNECTION")
	body := `{"contact_node_name":"` + nodes[1].cl.c.RPCAddr() + `"}`
	if got := apiOK[soraRegisterClusterNode](t, tmp, "Sora_20211215.RegisterClusterNode", body); got.ContactNodeName != nodes[1].cl.c.RPCAddr() {
		t.Fatalf("RegisterClusterNode answered %+v", got)
	}
	waitFor(t, "the temporary node in normal mode", patience, func() bool { return tmp.Mode().String() == "normal" })
	listed := func() (bool, bool) {
		_, _, raw := apiCall(t, nodes[0], "Sora_20211215.ListClusterNodes", "")
		var list []map[string]any
		json.Unmarshal(raw, &list)
		for _, n := range list {
			if n["cluster_node_name"] == "temp-1" {
				return true, n["temporary_node"] == true
			}
		}
		return false, false
	}
	if in, temp := listed(); !in || !temp {
		t.Fatalf("temporary node listed %v, temporary_node %v", in, temp)
	}
	// A new channel asked of it is its own (equal loads, the node asked
	// wins) once the table shows it normal.
	waitReplicatedNormal(t, []*Node{nodes[0], tmp}, tmp)
	serveHere(t, tmp, "on-temp")
	tmp.Close(t.Context())
	waitFor(t, "the temporary node gone from the cluster", patience, func() bool { in, _ := listed(); return !in })
}
