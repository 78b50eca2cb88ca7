package node

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hayate-sfu/hayate/config"
	"github.com/hayate-sfu/hayate/internal/sigclient"
)

// joinAs joins channel with role and client_id.
func joinAs(t *testing.T, n *Node, channel, role, clientID string) (*sigclient.Client, *sigclient.Offer) {
	t.Helper()
	c := dial(t, n)
	msg := connectMsg(channel, role)
	msg["client_id"] = clientID
	o, err := c.Connect(msg, soon())
	if err != nil {
		t.Fatalf("connect %s: %v", clientID, err)
	}
	answer(t, c, o)
	return c, o
}

// nextPush reads c's messages until a push arrives and returns its data.
func nextPush(t *testing.T, c *sigclient.Client) string {
	t.Helper()
	var m soraPush
	nextOfType(t, c, "push", &m)
	return string(m.Data)
}

// nextOfType reads c's messages until one of type typ arrives and decodes
// it strictly into v.
func nextOfType(t *testing.T, c *sigclient.Client, typ string, v any) {
	t.Helper()
	for {
		raw, err := c.ReadMessage(soon())
		if err != nil {
			t.Fatalf("no %s: %v", typ, err)
		}
		var m struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(raw, &m) == nil && m.Type == typ {
			if err := strictDecode(raw, v); err != nil {
				t.Fatalf("%s message %s: %v", typ, raw, err)
			}
			return
		}
	}
}

// TestAPIStrictAnswers decodes the answers of the targets that touch no
// connection, and of the listing ones, into Sora's types.
func TestAPIStrictAnswers(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.MaxConnections = 77 })
	if m := apiOK[soraMode](t, n, "Sora_20211215.ChangeMode", `{"mode":"block_new_session"}`); m.Mode != "block_new_session" {
		t.Fatalf("ChangeMode: %+v", m)
	}
	if m := apiOK[soraMode](t, n, "Sora_20211215.GetMode", ``); m.Mode != "block_new_session" {
		t.Fatalf("GetMode: %+v", m)
	}
	setMode(t, n, "normal")
	_, o := joinAs(t, n, "strict", "sendrecv", "alice")
	all := apiOK[[]soraConnection](t, n, "Sora_20201013.ListConnections", ``)
	ch := apiOK[[]soraConnection](t, n, "Sora_20201013.ListChannelConnections", `{"channel_id":"strict"}`)
	if len(all) != 1 || len(ch) != 1 || ch[0].ConnectionID != o.ConnectionID || ch[0].ClientID != "alice" ||
		!ch[0].Audio.On || ch[0].Audio.CodecType != "OPUS" || !ch[0].Video.On || ch[0].CreatedTime <= 0 {
		t.Fatalf("ListConnections %+v, ListChannelConnections %+v", all, ch)
	}
	_, ov := joinAs(t, n, "strict", "recvonly", "viewer")
	rs := apiOK[soraRtpStream](t, n, "Sora_20201005.RequestRtpStream", `{"channel_id":"strict","recv_connection_id":"`+ov.ConnectionID+`","rid":"r1"}`)
	if rs.RecvConnectionID != ov.ConnectionID || rs.Rid == nil || *rs.Rid != "r1" {
		t.Fatalf("RequestRtpStream: %+v", rs)
	}
	apiOK[soraRtpStream](t, n, "Sora_20201005.ResetRtpStream", `{"channel_id":"strict","recv_connection_id":"`+ov.ConnectionID+`","send_connection_id":"`+o.ConnectionID+`"}`)
	apiOK[soraSimulcastRid](t, n, "Sora_20251210.RequestSimulcastRid", `{"channel_id":"strict","receiver_connection_id":"`+ov.ConnectionID+`","rid":"r2"}`)
	joinAs(t, n, "another", "sendrecv", "carol")
	if chans := apiOK[[]soraChannel](t, n, "Sora_20201013.ListChannels", ``); len(chans) != 2 ||
		chans[0] != (soraChannel{ChannelID: "another", Multistream: true}) || chans[1].ChannelID != "strict" {
		t.Fatalf("ListChannels: %+v", chans)
	}
	st := apiOK[soraStatsReport](t, n, "Sora_20171010.GetStatsReport", ``)
	if st.TotalOngoingConnections != 3 || st.Version == "" {
		t.Fatalf("GetStatsReport: %+v", st)
	}
	lic := apiOK[soraLicense](t, n, "Sora_20171218.GetLicense", ``)
	if lic.MaxConnections != 77 || lic.ExpiredAt != "9999-12" || lic.ProductName == "" || lic.MaxNodes != nil {
		t.Fatalf("GetLicense: %+v", lic)
	}
	apiErr(t, n, "Sora_20171218.UpdateLicense", ``, 400, "UNSUPPORTED-TARGET")
	apiErr(t, n, "Sora_20211215.GetRtcStats", `{}`, 400, "MISSING-PARAMETER")
	apiErr(t, n, "Sora_20211215.InitCluster", `{}`, 400, "UNKNOWN-TARGET")
	for _, target := range []string{"Sora_20211215.ListClusterNodes", "Sora_20211215.ListClusterChannels"} {
		apiErr(t, n, target, ``, 400, "CLUSTER-NOT-ENABLED")
	}
}

// TestAPIPush: every Push target sends {"type": "push", "data": ...} to the
// connections it names and no other, and answers the message pushed.
func TestAPIPush(t *testing.T) {
	n := startNode(t, nil)
	a, oa := joinAs(t, n, "p", "sendrecv", "alice")
	b, _ := joinAs(t, n, "p", "recvonly", "bob")
	c, _ := joinAs(t, n, "p", "sendonly", "alice")

	got := apiOK[soraPush](t, n, "Sora_20160711.PushChannel", `{"channel_id":"p","data":{"n":1}}`)
	if got.Type != "push" || string(got.Data) != `{"n":1}` {
		t.Fatalf("PushChannel answered %+v", got)
	}
	for _, cl := range []*sigclient.Client{a, b, c} {
		if d := nextPush(t, cl); d != `{"n":1}` {
			t.Fatalf("PushChannel delivered %s", d)
		}
	}
	// Each targeted push is followed by a push to the whole channel: a
	// connection the first did not name gets the second one next.
	check := func(target, body string, named ...*sigclient.Client) {
		t.Helper()
		apiOK[soraPush](t, n, target, body)
		apiOK[soraPush](t, n, "Sora_20160711.PushChannel", `{"channel_id":"p","data":{"all":true}}`)
		for _, cl := range []*sigclient.Client{a, b, c} {
			want := []string{`{"all":true}`}
			for _, m := range named {
				if m == cl {
					want = []string{`{"only":true}`, `{"all":true}`}
				}
			}
			for _, w := range want {
				if d := nextPush(t, cl); d != w {
					t.Fatalf("%s: a connection got %s, want %s", target, d, w)
				}
			}
		}
	}
	check("Sora_20160711.PushClient", `{"channel_id":"p","client_id":"alice","data":{"only":true}}`, a, c)
	check("Sora_20160711.PushConnection", `{"channel_id":"p","connection_id":"`+oa.ConnectionID+`","data":{"only":true}}`, a)
	check("Sora_20201120.PushChannelByRole", `{"channel_id":"p","role":"recvonly","data":{"only":true}}`, b)

	for _, e := range []struct {
		target, body string
		status       int
		errType      string
	}{
		{"Sora_20160711.PushChannel", `{"channel_id":"p"}`, 400, "MISSING-PARAMETER"},
		{"Sora_20160711.PushChannel", `{"channel_id":"p","data":"x"}`, 400, "INVALID-PARAMETER"},
		{"Sora_20160711.PushChannel", `{"channel_id":"p","data":[1]}`, 400, "INVALID-PARAMETER"},
		{"Sora_20160711.PushChannel", `{"channel_id":"nobody","data":{}}`, 404, "CHANNEL-NOT-FOUND"},
		{"Sora_20160711.PushClient", `{"channel_id":"p","client_id":"carol","data":{}}`, 404, "CLIENT-NOT-FOUND"},
		{"Sora_20160711.PushClient", `{"channel_id":"p","data":{}}`, 400, "MISSING-PARAMETER"},
		{"Sora_20160711.PushConnection", `{"channel_id":"p","connection_id":"X","data":{}}`, 404, "CONNECTION-NOT-FOUND"},
		{"Sora_20201120.PushChannelByRole", `{"channel_id":"p","role":"viewer","data":{}}`, 400, "INVALID-PARAMETER"},
		{"Sora_20201120.PushChannelByRole", `{"channel_id":"p","data":{}}`, 400, "MISSING-PARAMETER"},
	} {
		apiErr(t, n, e.target, e.body, e.status, e.errType)
	}
}

// TestAPIDisconnectTargets: DisconnectClient closes every connection with
// the client_id and DisconnectChannelByRole every one with the role, with
// 1000 DISCONNECTED-API; the others stay; each answers its identifying
// fields.
func TestAPIDisconnectTargets(t *testing.T) {
	n := startNode(t, nil)
	a, _ := joinAs(t, n, "d", "sendrecv", "alice")
	b, _ := joinAs(t, n, "d", "recvonly", "bob")
	c, _ := joinAs(t, n, "d", "sendonly", "alice")
	r, _ := joinAs(t, n, "d", "recvonly", "rita")
	s, _ := joinAs(t, n, "d", "sendonly", "sam")

	apiErr(t, n, "Sora_20151104.DisconnectClient", `{"channel_id":"d","client_id":"carol"}`, 404, "CLIENT-NOT-FOUND")
	apiErr(t, n, "Sora_20151104.DisconnectClient", `{"channel_id":"nobody","client_id":"alice"}`, 404, "CHANNEL-NOT-FOUND")
	apiErr(t, n, "Sora_20151104.DisconnectClient", `{"channel_id":"d"}`, 400, "MISSING-PARAMETER")
	apiErr(t, n, "Sora_20151104.DisconnectClient", `{"channel_id":"d","client_id":7}`, 400, "INVALID-PARAMETER")
	apiErr(t, n, "Sora_20201120.DisconnectChannelByRole", `{"channel_id":"d","role":"SENDRECV"}`, 400, "INVALID-PARAMETER")
	apiErr(t, n, "Sora_20201120.DisconnectChannelByRole", `{"channel_id":"d"}`, 400, "MISSING-PARAMETER")

	got := apiOK[soraDisconnectClient](t, n, "Sora_20151104.DisconnectClient", `{"channel_id":"d","client_id":"alice","reason":{"why":"t"}}`)
	if got != (soraDisconnectClient{ChannelID: "d", ClientID: "alice"}) {
		t.Fatalf("DisconnectClient answered %+v", got)
	}
	for _, cl := range []*sigclient.Client{a, c} {
		closed, err := cl.AwaitClose(soon())
		if err != nil || closed.Code != 1000 || closed.Reason != "DISCONNECTED-API" {
			t.Fatalf("alice saw %v %v", closed, err)
		}
	}
	waitFor(t, "alice's two connections gone", patience, func() bool { return n.hub.Connections() == 3 })

	byRole := apiOK[soraDisconnectChannelByRole](t, n, "Sora_20201120.DisconnectChannelByRole", `{"channel_id":"d","role":"recvonly"}`)
	if byRole != (soraDisconnectChannelByRole{ChannelID: "d", Role: "recvonly"}) {
		t.Fatalf("DisconnectChannelByRole answered %+v", byRole)
	}
	for _, cl := range []*sigclient.Client{b, r} {
		closed, err := cl.AwaitClose(soon())
		if err != nil || closed.Code != 1000 || closed.Reason != "DISCONNECTED-API" {
			t.Fatalf("recvonly saw %v %v", closed, err)
		}
	}
	waitFor(t, "the recvonly connections gone", patience, func() bool { return n.hub.Connections() == 1 })
	// sam (sendonly) stays: a push still reaches it.
	apiOK[soraPush](t, n, "Sora_20160711.PushChannel", `{"channel_id":"d","data":{"still":"here"}}`)
	if d := nextPush(t, s); d != `{"still":"here"}` {
		t.Fatalf("sam got %s", d)
	}
}

// TestAPIRequestKeyFrame: RequestKeyFrame makes the node send the publisher
// a PLI for its video, with no subscriber asking for one, and again every
// second until a key frame comes, 5 PLIs at most (Sora's API_CONNECTION).
func TestAPIRequestKeyFrame(t *testing.T) {
	n := startNode(t, nil)
	rec := newRecorder()
	pub := peerWith(t, n, "kf", "sendonly", rec)
	c := &call{n: n, pub: pub, pubRec: rec, video: pub.SSRCs["video"], seq: 100}
	plis := func() int { return len(rec.rtcpOf(206, 1)) }
	// The node decrypts the publisher's video; with no subscriber it asks
	// for no key frame.
	waitFor(t, "video at the node", patience, func() bool { c.sendVideo(t, 1); return n.media.Stats().ReceivedRTP > 0 })
	conns := apiOK[[]soraConnection](t, n, "Sora_20201013.ListChannelConnections", `{"channel_id":"kf"}`)
	if len(conns) != 1 {
		t.Fatalf("connections: %+v", conns)
	}
	c.sendVideo(t, 1)
	before := plis()
	if before != 0 {
		t.Fatalf("%d PLIs before RequestKeyFrame", before)
	}
	body := `{"channel_id":"kf","connection_id":"` + conns[0].ConnectionID + `"}`
	asked := time.Now()
	got := apiOK[soraRequestKeyFrame](t, n, "Sora_20241211.RequestKeyFrame", body)
	if got != (soraRequestKeyFrame{ChannelID: "kf", ConnectionID: conns[0].ConnectionID}) {
		t.Fatalf("RequestKeyFrame answered %+v", got)
	}
	waitFor(t, "a PLI after RequestKeyFrame", patience, func() bool { c.sendVideo(t, 1); return plis() > before })

	// Until a key frame comes, Sora asks again every second, 5 times at
	// most (API_CONNECTION): this publisher sends none, so 5 PLIs come, a
	// second apart (4 s from the first to the fifth at least), then none.
	waitFor(t, "5 PLIs after RequestKeyFrame", patience, func() bool { c.sendVideo(t, 1); return plis() >= 5 })
	fifth := time.Now()
	if el := fifth.Sub(asked); el < 3900*time.Millisecond {
		t.Errorf("5 PLIs %v after RequestKeyFrame, want them a second apart", el)
	}
	waitFor(t, "2.5 s more of video", patience, func() bool { c.sendVideo(t, 1); return time.Since(fifth) > 2500*time.Millisecond })
	if k := plis(); k != 5 {
		t.Errorf("%d PLIs after one RequestKeyFrame, want 5 at most", k)
	}
	// A key frame ends the requests.
	apiOK[soraRequestKeyFrame](t, n, "Sora_20241211.RequestKeyFrame", body)
	waitFor(t, "a PLI after the second RequestKeyFrame", patience, func() bool { c.sendVideo(t, 1); return plis() > 5 })
	// Key frames from now on, for longer than the 5 requests take: with the
	// requests ended by a key frame, fewer than 5 come (the key frame must
	// merely get through within 4 s, which a loaded machine's stalls do
	// not prevent); had they not ended, all 5 would.
	sent := time.Now()
	waitFor(t, "6 s of key frames", patience, func() bool { c.sendVP8KeyFrame(t); return time.Since(sent) > 6*time.Second })
	if k := plis() - 5; k >= 5 {
		t.Errorf("%d PLIs for a request a key frame answered, want the requests ended before the fifth", k)
	}

	apiErr(t, n, "Sora_20241211.RequestKeyFrame", `{"channel_id":"kf","connection_id":"NOPE"}`, 404, "CONNECTION-NOT-FOUND")
	apiErr(t, n, "Sora_20241211.RequestKeyFrame", `{"channel_id":"nope","connection_id":"NOPE"}`, 404, "CHANNEL-NOT-FOUND")
	apiErr(t, n, "Sora_20241211.RequestKeyFrame", `{"channel_id":"kf"}`, 400, "MISSING-PARAMETER")
}

// TestAPIClusterWide: in a cluster the disconnect and push targets reach a
// channel's connections through any node, not only through the one that
// owns the channel; a node with the channel but not the connection answers
// for the cluster; the cluster listings decode into Sora's types.
func TestAPIClusterWide(t *testing.T) {
	nodes := startCluster(t, 3)
	owner, other, third := nodes[0], nodes[1], nodes[2]
	a, oa := join(t, owner, "room", "sendrecv")
	b, ob := join(t, owner, "room", "recvonly")

	waitFor(t, "the channel in the table", patience, func() bool {
		chans := apiOK[[]soraClusterChannel](t, other, "Sora_20211215.ListClusterChannels", ``)
		return len(chans) == 1 && chans[0].ChannelID == "room" && chans[0].ClusterNodeName == owner.cl.c.Name()
	})
	waitFor(t, "three connected nodes", patience, func() bool {
		list := apiOK[[]soraClusterNode](t, third, "Sora_20211215.ListClusterNodes", ``)
		up := 0
		for _, e := range list {
			if e.Connected && e.Mode == "normal" {
				up++
			}
		}
		return len(list) == 3 && up == 3
	})

	// ListRtcStats lists this node's reports, every node's with local:
	// false (API_RTC_STATS).
	must(t, a.SendJSON(json.RawMessage(`{"type":"pong","stats":[{"id":"T1","type":"transport"}]}`)))
	waitFor(t, "a's report through another node with local: false", patience, func() bool {
		l := apiOK[[]soraRTCStats](t, other, "Sora_20211215.ListRtcStats", `{"local":false}`)
		return len(l) == 1 && l[0].ConnectionID == oa.ConnectionID && l[0].RTCStats[0]["id"] == "T1"
	})
	if l := apiOK[[]soraRTCStats](t, other, "Sora_20211215.ListRtcStats", ``); len(l) != 0 {
		t.Errorf("ListRtcStats on a node without the channel: %+v, want [] (local by default)", l)
	}
	if l := apiOK[[]soraRTCStats](t, owner, "Sora_20211215.ListRtcStats", `{"local":false}`); len(l) != 1 {
		t.Errorf("ListRtcStats local: false on the owner: %+v, want the one report once", l)
	}
	for _, n := range nodes {
		st := apiOK[soraStatsReport](t, n, "Sora_20171010.GetStatsReport", ``)
		if c := st.Cluster; c == nil || c.RaftState != "leader" && c.RaftState != "follower" || c.RaftTerm == 0 || c.RaftCommitIndex == 0 || c.ClusterNodeName != n.cl.c.Name() {
			t.Fatalf("GetStatsReport cluster: %+v", st.Cluster)
		}
	}
	got := apiOK[soraPush](t, other, "Sora_20160711.PushChannel", `{"channel_id":"room","data":{"via":"n2"}}`)
	if string(got.Data) != `{"via":"n2"}` {
		t.Fatalf("PushChannel through another node answered %+v", got)
	}
	for _, c := range []*sigclient.Client{a, b} {
		if d := nextPush(t, c); d != `{"via":"n2"}` {
			t.Fatalf("pushed through another node: got %s", d)
		}
	}
	if s := apiOK[soraSession](t, third, "Sora_20231220.GetSession", `{"channel_id":"room"}`); s.SessionID != ob.SessionID ||
		s.ExternalSignalingURL == nil || *s.ExternalSignalingURL != owner.cl.url {
		t.Fatalf("GetSession through another node: %+v", s)
	}
	// A connection's statistics and the channel's spotlight through
	// another node: the node that serves the channel answers (here the
	// channel has no spotlight, which only that node knows).
	if st := apiOK[soraStatsConnection](t, third, "Sora_20170529.GetStatsConnection",
		`{"channel_id":"room","connection_id":"`+ob.ConnectionID+`"}`); st.ConnectionID != ob.ConnectionID || st.ChannelID != "room" {
		t.Fatalf("GetStatsConnection through another node: %+v", st)
	}
	// The signaling notify metadata extension: the connection's node
	// answers, changes and pushes.
	if md := apiOK[json.RawMessage](t, third, "Sora_20201124.PutSignalingNotifyMetadataItem",
		`{"channel_id":"room","connection_id":"`+ob.ConnectionID+`","key":"via","value":"n3","push":true}`); string(md) != `{"via":"n3"}` {
		t.Fatalf("PutSignalingNotifyMetadataItem through another node: %s", md)
	}
	if p := metadataPush(t, b); p.ConnectionID != ob.ConnectionID || p.Key != "via" {
		t.Fatalf("the extension's push through another node: %+v", p)
	}
	if l := apiOK[[]soraMetadataEntry](t, other, "Sora_20201124.ListSignalingNotifyMetadata", `{"channel_id":"room"}`); len(l) != 2 {
		t.Fatalf("ListSignalingNotifyMetadata through another node: %+v", l)
	}
	apiErr(t, other, "Sora_20200807.ChangeSpotlightNumber", `{"channel_id":"room","spotlight_number":2}`, 400, "INVALID-PARAMETER")
	apiErr(t, other, "Sora_20170529.GetStatsConnection", `{"channel_id":"room","connection_id":"NOPE"}`, 404, "CONNECTION-NOT-FOUND")
	apiErr(t, other, "Sora_20160711.PushChannel", `{"channel_id":"room"}`, 400, "MISSING-PARAMETER")
	apiErr(t, other, "Sora_20151104.DisconnectConnection", `{"channel_id":"room","connection_id":"NOPE"}`, 404, "CONNECTION-NOT-FOUND")
	apiErr(t, other, "Sora_20151104.DisconnectChannel", `{"channel_id":"nowhere"}`, 404, "CHANNEL-NOT-FOUND")

	dc := apiOK[soraDisconnectConnection](t, third, "Sora_20151104.DisconnectConnection", `{"channel_id":"room","connection_id":"`+ob.ConnectionID+`"}`)
	if dc != (soraDisconnectConnection{ChannelID: "room", ConnectionID: ob.ConnectionID}) {
		t.Fatalf("DisconnectConnection answered %+v", dc)
	}
	if closed, err := b.AwaitClose(soon()); err != nil || closed.Reason != "DISCONNECTED-API" {
		t.Fatalf("b saw %v %v", closed, err)
	}
	ch := apiOK[soraDisconnectChannel](t, other, "Sora_20151104.DisconnectChannel", `{"channel_id":"room"}`)
	if ch.ChannelID != "room" {
		t.Fatalf("DisconnectChannel answered %+v", ch)
	}
	if closed, err := a.AwaitClose(soon()); err != nil || closed.Code != 1000 || closed.Reason != "DISCONNECTED-API" {
		t.Fatalf("a saw %v %v", closed, err)
	}

	// A stopped node is purged once its heartbeats stop (CLUSTER-NODE-ALIVE
	// until then).
	gone := third.cl.c.Name()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	third.Close(ctx)
	cancel()
	body := `{"target_node_name":"` + gone + `"}`
	var purged []byte
	waitFor(t, "the stopped node purgeable", patience, func() bool {
		st, data := apiRaw(t, other, "Sora_20220629.PurgeClusterNode", body)
		purged = data
		return st == http.StatusOK
	})
	var p soraPurgeClusterNode
	if err := strictDecode(purged, &p); err != nil || p.TargetNodeName != gone {
		t.Fatalf("PurgeClusterNode answered %s: %v", purged, err)
	}
	apiErr(t, other, "Sora_20220629.PurgeClusterNode", body, 404, "CLUSTER-NODE-NOT-FOUND")
}

// TestAPISessions: GetSession and ListSessions describe sessions as
// session.updated does; TerminateSession closes every connection of the
// session with 1000 DISCONNECTED-API and answers its ID. No session is [],
// not null.
func TestAPISessions(t *testing.T) {
	n := startNode(t, nil)
	if st, raw := apiRaw(t, n, "Sora_20231220.ListSessions", ``); st != 200 || strings.TrimSpace(string(raw)) != "[]" {
		t.Fatalf("ListSessions with no session: %d %s", st, raw)
	}
	a, oa := join(t, n, "s", "sendrecv")
	b, _ := join(t, n, "s", "recvonly")
	_, ox := join(t, n, "other", "sendrecv")

	s := apiOK[soraSession](t, n, "Sora_20231220.GetSession", `{"channel_id":"s"}`)
	if s.Type != "session.updated" || s.ChannelID != "s" || s.SessionID != oa.SessionID || s.CreatedTime <= 0 || !s.Multistream {
		t.Fatalf("GetSession: %+v", s)
	}
	if s := apiOK[soraSession](t, n, "Sora_20231220.GetSession", `{"channel_id":"s","session_id":"`+oa.SessionID+`"}`); s.SessionID != oa.SessionID {
		t.Fatalf("GetSession with session_id: %+v", s)
	}
	list := apiOK[[]soraSession](t, n, "Sora_20231220.ListSessions", ``)
	if len(list) != 2 || list[0].SessionID == list[1].SessionID {
		t.Fatalf("ListSessions: %+v", list)
	}
	for _, e := range []struct {
		target, body string
		status       int
		errType      string
	}{
		{"Sora_20231220.GetSession", `{"channel_id":"s","session_id":"` + ox.SessionID + `"}`, 404, "SESSION-NOT-FOUND"},
		{"Sora_20231220.GetSession", `{"channel_id":"none"}`, 404, "CHANNEL-NOT-FOUND"},
		{"Sora_20231220.GetSession", `{"channel_id":"s","session_id":5}`, 400, "INVALID-PARAMETER"},
		{"Sora_20231220.GetSession", `{}`, 400, "MISSING-PARAMETER"},
		{"Sora_20231220.ListSessions", `{"group_id":"g"}`, 400, "INVALID-PARAMETER"},
		{"Sora_20230628.TerminateSession", `{"channel_id":"s","session_id":"` + ox.SessionID + `"}`, 404, "SESSION-NOT-FOUND"},
		{"Sora_20230628.TerminateSession", `{"channel_id":"none"}`, 404, "CHANNEL-NOT-FOUND"},
	} {
		apiErr(t, n, e.target, e.body, e.status, e.errType)
	}
	got := apiOK[soraTerminateSession](t, n, "Sora_20230628.TerminateSession", `{"channel_id":"s","session_id":"`+oa.SessionID+`"}`)
	if got.SessionID != oa.SessionID {
		t.Fatalf("TerminateSession answered %+v", got)
	}
	for _, c := range []*sigclient.Client{a, b} {
		if closed, err := c.AwaitClose(soon()); err != nil || closed.Code != 1000 || closed.Reason != "DISCONNECTED-API" {
			t.Fatalf("a member of the session saw %v %v", closed, err)
		}
	}
	waitFor(t, "the session ended", patience, func() bool {
		st, _ := apiRaw(t, n, "Sora_20231220.GetSession", `{"channel_id":"s"}`)
		return st == 404
	})
	if list := apiOK[[]soraSession](t, n, "Sora_20231220.ListSessions", `{}`); len(list) != 1 || list[0].SessionID != ox.SessionID {
		t.Fatalf("ListSessions after TerminateSession: %+v", list)
	}
}

// TestAPIPushOverDataChannel: a connection that switched to DataChannel
// signaling gets pushes on its push DataChannel (Sora's API_PUSH), from a
// real pion client.
func TestAPIPushOverDataChannel(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.ICEConnectionStateFailedTimeout = patience })
	p := newDCPeer(t, n, "dcpush", "recvonly", map[string]any{"audio": false, "video": false})
	p.waitSwitched()
	apiOK[soraPush](t, n, "Sora_20160711.PushConnection", `{"channel_id":"dcpush","connection_id":"`+p.offer.ConnectionID+`","data":{"over":"dc"}}`)
	waitFor(t, "the push on the push DataChannel", patience, func() bool {
		for _, m := range p.received("push") {
			var got soraPush
			if strictDecode([]byte(m.data), &got) == nil && got.Type == "push" && string(got.Data) == `{"over":"dc"}` {
				return true
			}
		}
		return false
	})
}
