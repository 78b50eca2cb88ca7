package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/pion/webrtc/v4"

	"github.com/hayate-sfu/hayate/config"
	"github.com/hayate-sfu/hayate/internal/sigclient"
	"github.com/hayate-sfu/hayate/internal/zlibmsg"
)

// dcPeer is a pion/webrtc client using DataChannel signaling the way the
// sora-js-sdk does (docs/spec/sora-js-sdk-client.md §8): it takes the channels
// the server opens, answers re-offers on the `signaling` channel once it
// exists, reads notifies there or on the WebSocket, and records what
// arrives on every label.
type dcPeer struct {
	t     *testing.T
	sig   *sigclient.Client
	pc    *webrtc.PeerConnection
	offer *sigclient.Offer
	// described are the offer's data_channels by label.
	described map[string]struct {
		Direction string          `json:"direction"`
		Compress  bool            `json:"compress"`
		Header    json.RawMessage `json:"header"`
	}
	id string

	mu       sync.Mutex
	chans    map[string]*webrtc.DataChannel
	got      map[string][]dcMsg
	switched []bool // ignore_disconnect_websocket of each switched
	notifies []string
	closes   []map[string]any
	dcReoff  int
	tracks   int
	wsClosed *sigclient.Closed
	wsDone   chan struct{}
}

type dcMsg struct {
	data   string
	binary bool
}

// newDCPeer connects a pion client with DataChannel signaling; extra adds
// to (or overrides) the connect message.
func newDCPeer(t *testing.T, n *Node, channel, role string, extra map[string]any, publish ...webrtc.TrackLocal) *dcPeer {
	t.Helper()
	return newDCPeerVia(t, n, nil, channel, role, extra, publish...)
}

// newDCPeerVia is newDCPeer with the offer's SDP passed through rewrite
// (to put a relay between the client and the node).
func newDCPeerVia(t *testing.T, n *Node, rewrite func(string) string, channel, role string, extra map[string]any, publish ...webrtc.TrackLocal) *dcPeer {
	t.Helper()
	p := &dcPeer{t: t, chans: map[string]*webrtc.DataChannel{}, got: map[string][]dcMsg{}, wsDone: make(chan struct{})}
	p.sig = dial(t, n)
	msg := connectMsg(channel, role)
	msg["data_channel_signaling"] = true
	msg["video"] = map[string]any{"codec_type": "VP8"}
	for k, v := range extra {
		msg[k] = v
	}
	o, err := p.sig.Connect(msg, soon())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	p.offer, p.id = o, o.ConnectionID
	var full struct {
		DataChannels []struct {
			Label     string          `json:"label"`
			Direction string          `json:"direction"`
			Compress  bool            `json:"compress"`
			Header    json.RawMessage `json:"header"`
		} `json:"data_channels"`
	}
	must(t, json.Unmarshal(o.Raw, &full))
	p.described = map[string]struct {
		Direction string          `json:"direction"`
		Compress  bool            `json:"compress"`
		Header    json.RawMessage `json:"header"`
	}{}
	for _, d := range full.DataChannels {
		p.described[d.Label] = struct {
			Direction string          `json:"direction"`
			Compress  bool            `json:"compress"`
			Header    json.RawMessage `json:"header"`
		}{d.Direction, d.Compress, d.Header}
	}
	pc, err := pionAPI(t, webrtc.DTLSRoleClient).NewPeerConnection(webrtc.Configuration{})
	must(t, err)
	p.pc = pc
	t.Cleanup(func() { pc.Close() })
	pc.OnTrack(func(*webrtc.TrackRemote, *webrtc.RTPReceiver) { p.mu.Lock(); p.tracks++; p.mu.Unlock() })
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			p.sendSignaling(map[string]any{"type": "candidate", "candidate": "candidate:" + c.ToJSON().Candidate})
		}
	})
	pc.OnDataChannel(func(dc *webrtc.DataChannel) {
		label := dc.Label()
		dc.OnOpen(func() {
			p.mu.Lock()
			p.chans[label] = dc
			p.mu.Unlock()
		})
		dc.OnMessage(func(m webrtc.DataChannelMessage) { p.onMessage(label, m) })
	})
	offerSDP := o.SDP
	if rewrite != nil {
		offerSDP = rewrite(offerSDP)
	}
	must(t, pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offerSDP}))
	for _, tr := range publish {
		_, err := pc.AddTrack(tr)
		must(t, err)
	}
	ans, err := pc.CreateAnswer(nil)
	must(t, err)
	must(t, pc.SetLocalDescription(ans))
	must(t, p.sig.SendJSON(map[string]string{"type": "answer", "sdp": ans.SDP}))
	go p.wsLoop()
	return p
}

// text decodes a message of a signaling label (inflated if compressed).
func (p *dcPeer) text(label string, data []byte) []byte {
	if !p.described[label].Compress {
		return data
	}
	out, err := zlibmsg.Inflate(nil, data, 1<<20)
	if err != nil {
		p.t.Errorf("%s: compressed message does not inflate: %v", label, err)
	}
	return out
}

func (p *dcPeer) onMessage(label string, m webrtc.DataChannelMessage) {
	switch label {
	case "signaling":
		var msg map[string]any
		_ = json.Unmarshal(p.text(label, m.Data), &msg)
		switch msg["type"] {
		case "re-offer":
			p.mu.Lock()
			p.dcReoff++
			p.mu.Unlock()
			p.reanswer(msg["sdp"].(string))
		case "close":
			p.mu.Lock()
			p.closes = append(p.closes, msg)
			p.mu.Unlock()
		}
	case "notify":
		var msg map[string]any
		_ = json.Unmarshal(p.text(label, m.Data), &msg)
		p.mu.Lock()
		p.notifies = append(p.notifies, "dc:"+msg["event_type"].(string)+":"+msg["connection_id"].(string))
		p.mu.Unlock()
	default:
		p.mu.Lock()
		p.got[label] = append(p.got[label], dcMsg{string(m.Data), !m.IsString})
		p.mu.Unlock()
	}
}

// sendSignaling sends on the signaling channel if it is open, else on the
// WebSocket, as the SDK does.
func (p *dcPeer) sendSignaling(v any) {
	b, _ := json.Marshal(v)
	p.mu.Lock()
	dc := p.chans["signaling"]
	p.mu.Unlock()
	if dc == nil {
		_ = p.sig.SendJSON(v)
		return
	}
	if p.described["signaling"].Compress {
		_ = dc.Send(zlibmsg.Deflate(nil, b))
		return
	}
	_ = dc.SendText(string(b))
}

func (p *dcPeer) reanswer(offer string) {
	sdp, err := answerOffer(p.pc, offer)
	if err != nil {
		p.t.Errorf("re-offer: %v", err)
		return
	}
	p.sendSignaling(map[string]string{"type": "re-answer", "sdp": sdp})
}

func (p *dcPeer) wsLoop() {
	defer close(p.wsDone)
	for {
		msg, err := p.sig.ReadMessage(time.Now().Add(time.Minute))
		if err != nil {
			var cl *sigclient.Closed
			if errors.As(err, &cl) {
				p.mu.Lock()
				p.wsClosed = cl
				p.mu.Unlock()
			}
			return
		}
		var m map[string]any
		_ = json.Unmarshal(msg, &m)
		switch m["type"] {
		case "switched":
			p.mu.Lock()
			p.switched = append(p.switched, m["ignore_disconnect_websocket"] == true)
			p.mu.Unlock()
		case "re-offer":
			go p.reanswer(m["sdp"].(string))
		case "notify":
			p.mu.Lock()
			p.notifies = append(p.notifies, "ws:"+m["event_type"].(string)+":"+m["connection_id"].(string))
			p.mu.Unlock()
		}
	}
}

// closeWebSocket closes the signaling WebSocket as a browser does (close
// frame 1005, then the TCP connection).
func (p *dcPeer) closeWebSocket() {
	_ = p.sig.SendFrame(ws.OpClose, nil)
	p.sig.Close()
	<-p.wsDone
}

func (p *dcPeer) waitSwitched() {
	p.t.Helper()
	waitFor(p.t, "switched", patience, func() bool { p.mu.Lock(); defer p.mu.Unlock(); return len(p.switched) == 1 })
}

func (p *dcPeer) channel(label string) *webrtc.DataChannel {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.chans[label]
}

func (p *dcPeer) send(label, data string, binary bool) {
	p.t.Helper()
	dc := p.channel(label)
	if dc == nil {
		p.t.Fatalf("no %s channel", label)
	}
	if binary {
		must(p.t, dc.Send([]byte(data)))
	} else {
		must(p.t, dc.SendText(data))
	}
}

func (p *dcPeer) received(label string) []dcMsg {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]dcMsg(nil), p.got[label]...)
}

func messagingConnect(channels ...map[string]any) map[string]any {
	list := make([]any, len(channels))
	for i, c := range channels {
		list[i] = c
	}
	return map[string]any{"audio": false, "video": false, "data_channels": list}
}

// TestMessagingRelay: messaging-only pion clients exchange messages on a
// `#` label through the real server; directions, ordering and partial
// reliability, compression per connection and the sender_connection_id
// header all apply.
func TestMessagingRelay(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.ICEConnectionStateFailedTimeout = patience })
	base := goroutineBaseline()
	u := func(v int) *int { return &v }
	lossy := []map[string]any{
		{"label": "#unordered", "direction": "sendrecv", "ordered": false},
		{"label": "#rexmit", "direction": "sendrecv", "ordered": false, "max_retransmits": 0},
		{"label": "#lifetime", "direction": "sendrecv", "max_packet_life_time": 150, "protocol": "chat-v1"},
	}
	a := newDCPeer(t, n, "msg", "sendonly", messagingConnect(append([]map[string]any{
		{"label": "#chat", "direction": "sendrecv"},
		{"label": "#z", "direction": "sendrecv", "compress": true}}, lossy...)...))
	b := newDCPeer(t, n, "msg", "sendonly", messagingConnect(append([]map[string]any{
		{"label": "#chat", "direction": "sendrecv", "header": []any{map[string]any{"type": "sender_connection_id"}}},
		{"label": "#z", "direction": "sendrecv"}}, lossy...)...))
	r := newDCPeer(t, n, "msg", "recvonly", messagingConnect(map[string]any{"label": "#chat", "direction": "recvonly"}))
	s := newDCPeer(t, n, "msg", "sendonly", messagingConnect(map[string]any{"label": "#chat", "direction": "sendonly"}))
	for _, p := range []*dcPeer{a, b, r, s} {
		p.waitSwitched()
	}

	// The offer describes the fixed labels and the declared ones.
	if d := a.described["#z"]; !d.Compress || d.Direction != "sendrecv" {
		t.Errorf("offer's #z: %+v", d)
	}
	for _, l := range []string{"signaling", "notify", "push", "stats"} {
		if _, ok := a.described[l]; !ok || a.channel(l) == nil {
			t.Errorf("label %s: described %v, open %v", l, ok, a.channel(l) != nil)
		}
	}
	// Ordering and partial reliability reach the client as declared.
	for _, c := range []struct {
		label         string
		ordered       bool
		rexmit, ltime *int
		protocol      string
	}{{"#chat", true, nil, nil, ""}, {"#unordered", false, nil, nil, ""}, {"#rexmit", false, u(0), nil, ""}, {"#lifetime", true, nil, u(150), "chat-v1"}} {
		dc := b.channel(c.label)
		if dc == nil {
			t.Fatalf("%s not open", c.label)
		}
		eq := func(p *uint16, w *int) bool { return p == nil && w == nil || p != nil && w != nil && int(*p) == *w }
		if dc.Ordered() != c.ordered || !eq(dc.MaxRetransmits(), c.rexmit) || !eq(dc.MaxPacketLifeTime(), c.ltime) || dc.Protocol() != c.protocol {
			t.Errorf("%s: ordered %v rexmit %v lifetime %v protocol %q", c.label, dc.Ordered(), dc.MaxRetransmits(), dc.MaxPacketLifeTime(), dc.Protocol())
		}
	}

	a.send("#chat", "from a", false)
	s.send("#chat", "from s", true)
	r.send("#chat", "from r", false) // recvonly: not relayed
	waitFor(t, "a's and s's messages at b and r", patience, func() bool {
		return len(b.received("#chat")) == 2 && len(r.received("#chat")) == 2 && len(a.received("#chat")) == 1
	})
	// b asked for the sender's connection_id in front.
	got := map[string]bool{}
	for _, m := range b.received("#chat") {
		got[m.data] = m.binary
	}
	if bin, ok := got[a.id+"from a"]; !ok || bin {
		t.Errorf("b got %v", got)
	}
	if bin, ok := got[s.id+"from s"]; !ok || !bin {
		t.Errorf("b got %v", got)
	}
	if m := a.received("#chat"); m[0].data != "from s" {
		t.Errorf("a got %v", m)
	}
	if len(s.received("#chat")) != 0 {
		t.Errorf("sendonly s received %v", s.received("#chat"))
	}

	// Compression is per connection: a compresses #z, b does not.
	a.send("#z", string(zlibmsg.Deflate(nil, []byte("zipped from a"))), true)
	b.send("#z", "plain from b", false)
	for _, lbl := range []string{"#unordered", "#rexmit", "#lifetime"} {
		a.send(lbl, "to b on "+lbl, false)
	}
	waitFor(t, "the #z and lossy-label messages", patience, func() bool {
		return len(b.received("#z")) == 1 && len(a.received("#z")) == 1 && len(b.received("#unordered")) == 1 &&
			len(b.received("#rexmit")) == 1 && len(b.received("#lifetime")) == 1
	})
	if m := b.received("#z")[0]; m.data != "zipped from a" {
		t.Errorf("b's #z: %q", m.data)
	}
	if m := a.received("#z")[0]; !m.binary || string(a.text("#z", []byte(m.data))) != "plain from b" {
		t.Errorf("a's #z: %q binary %v", m.data, m.binary)
	} else if out, err := zlibmsg.Inflate(nil, []byte(m.data), 100); err != nil || string(out) != "plain from b" {
		t.Errorf("a's #z does not inflate: %v", err)
	}

	rep := n.StatsReport()
	if rep.DataChannels.Dropped["direction"] != 1 || rep.DataChannels.MessagesRelayed < 9 || rep.DataChannels.Switched != 4 {
		t.Errorf("data_channels %+v", rep.DataChannels)
	}
	if rep.SCTPPacketsIn == 0 || rep.SCTPPacketsOut == 0 || rep.SCTPBytesIn == 0 || rep.SCTPBytesOut == 0 || rep.Media.DataChannels.Associations != 4 {
		t.Errorf("SCTP counters %d %d %d %d, associations %d", rep.SCTPPacketsIn, rep.SCTPPacketsOut, rep.SCTPBytesIn, rep.SCTPBytesOut, rep.Media.DataChannels.Associations)
	}
	for _, p := range []*dcPeer{a, b, r, s} {
		p.sendSignaling(map[string]string{"type": "disconnect", "reason": "NO-ERROR"})
	}
	waitFor(t, "no connections", patience, func() bool { return n.Hub().Connections() == 0 && n.Media().Stats().Transports == 0 })
	for _, p := range []*dcPeer{a, b, r, s} {
		p.pc.Close()
	}
	checkGoroutines(t, base, n)
}

// TestDataChannelSignalingOutlivesWebSocket: a client with
// data_channel_signaling and ignore_disconnect_websocket gets switched,
// closes its WebSocket and lives on: a publisher joining reaches it as a
// re-offer on `signaling` (answered there, the tracks arrive), the
// publisher leaving as a notify on `notify` (both labels compressed here),
// and the API's disconnect as a close message on `signaling`. A second
// detached client leaves with disconnect on `signaling`. Without
// ignore_disconnect_websocket, closing the WebSocket ends the connection.
func TestDataChannelSignalingOutlivesWebSocket(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.ICEConnectionStateFailedTimeout = patience })
	compressed := []any{map[string]any{"label": "signaling", "compress": true}, map[string]any{"label": "notify", "compress": true}}
	p := newDCPeer(t, n, "dcs", "recvonly", map[string]any{"ignore_disconnect_websocket": true, "data_channels": compressed})
	q := newDCPeer(t, n, "dcs", "sendonly", map[string]any{"ignore_disconnect_websocket": true, "audio": false, "video": false})
	for _, c := range []*dcPeer{p, q} {
		c.waitSwitched()
		c.mu.Lock()
		if !c.switched[0] {
			t.Error("switched says ignore_disconnect_websocket false")
		}
		c.mu.Unlock()
		c.closeWebSocket()
	}
	waitFor(t, "both WebSockets detached", patience, func() bool { return n.Hub().Stats().Detached.Load() == 2 })
	if got := n.Hub().Connections(); got != 2 {
		t.Fatalf("%d connections after the WebSockets closed", got)
	}

	audio, video := newSource(t, webrtc.RTPCodecTypeAudio), newSource(t, webrtc.RTPCodecTypeVideo)
	pub := newPionPeer(t, n, pionAPI(t, webrtc.DTLSRoleClient), "dcs", "sendonly", audio.track, video.track)
	pub.waitConnected(n)
	waitFor(t, "the publisher's tracks at the detached client", patience, func() bool {
		audio.send(t)
		video.send(t)
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.dcReoff >= 1 && p.tracks == 2
	})
	// The publisher (no DataChannels) released DTLS on its first SRTP; the
	// DataChannel connections keep theirs for SCTP, whatever they send.
	waitFor(t, "the publisher's DTLS released", patience, func() bool { return n.Media().Stats().DTLSReleased == 1 })
	if st := n.Media().Stats(); st.DTLSReleased != 1 || st.DataChannels.Associations != 2 {
		t.Errorf("DTLS released %d, associations %d", st.DTLSReleased, st.DataChannels.Associations)
	}
	pubID := pub.offer.ConnectionID
	pub.disconnect()
	waitFor(t, "connection.destroyed on the notify DataChannel", patience, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, e := range p.notifies {
			if e == "dc:connection.destroyed:"+pubID {
				return true
			}
		}
		return false
	})
	p.mu.Lock()
	created := false
	for _, e := range p.notifies {
		created = created || e == "dc:connection.created:"+pubID
	}
	p.mu.Unlock()
	if !created {
		t.Errorf("no connection.created of the publisher on the notify DataChannel: %v", p.notifies)
	}

	// q leaves on its own: disconnect on signaling; its channels close.
	qClosed := make(chan struct{})
	q.channel("signaling").OnClose(func() { close(qClosed) })
	q.sendSignaling(map[string]string{"type": "disconnect", "reason": "NO-ERROR"})
	select {
	case <-qClosed:
	case <-time.After(patience):
		t.Fatal("q's signaling channel did not close after its disconnect")
	}
	waitFor(t, "q gone", patience, func() bool { return n.Hub().Connections() == 1 })

	st, _, raw := apiCall(t, n, "Sora_20151104.DisconnectConnection", `{"channel_id":"dcs","connection_id":"`+p.id+`"}`)
	if st != 200 {
		t.Fatalf("DisconnectConnection: %d %s", st, raw)
	}
	waitFor(t, "the close message on signaling", patience, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.closes) == 1
	})
	p.mu.Lock()
	if c := p.closes[0]; c["code"] != float64(1000) || c["reason"] != "DISCONNECTED-API" {
		t.Errorf("close message %v", c)
	}
	p.mu.Unlock()
	waitFor(t, "no connections", patience, func() bool { return n.Hub().Connections() == 0 && n.Media().Stats().Transports == 0 })

	// Without ignore_disconnect_websocket the WebSocket still ends it.
	w := newDCPeer(t, n, "dcs2", "sendonly", map[string]any{"audio": false, "video": false})
	w.waitSwitched()
	w.closeWebSocket()
	waitFor(t, "the connection to end with its WebSocket", patience, func() bool { return n.Hub().Connections() == 0 })
}

// TestMessagingOnlyAdmission: a connect with audio and video false is
// refused with 4400 AUDIO-AND-VIDEO-DISABLED unless it has DataChannel
// signaling; with it, it is a connection like any other for the mode:
// block_new_session refuses it on an idle channel and admits it to a live
// one, block_new_connection refuses it. Bad data_channels are refused
// with 4400 INVALID-DATA-CHANNELS.
func TestMessagingOnlyAdmission(t *testing.T) {
	n := startNode(t, nil)
	msgOnly := func(channel string) map[string]any {
		m := connectMsg(channel, "sendonly")
		m["audio"], m["video"], m["data_channel_signaling"] = false, false, true
		m["data_channels"] = []any{map[string]any{"label": "#chat", "direction": "sendrecv"}}
		return m
	}
	try := func(m map[string]any) (*sigclient.Offer, error) {
		return dial(t, n).Connect(m, soon())
	}
	plain := connectMsg("m1", "sendonly")
	plain["audio"], plain["video"] = false, false
	_, err := try(plain)
	expectClosed(t, err, 4400, "AUDIO-AND-VIDEO-DISABLED")

	o, err := try(msgOnly("m1"))
	if err != nil {
		t.Fatalf("messaging-only connect in normal mode: %v", err)
	}
	if !strings.Contains(o.SDP, "m=application 9 UDP/DTLS/SCTP webrtc-datachannel") || strings.Contains(o.SDP, "m=audio") ||
		strings.Contains(o.SDP, "m=video") || len(o.Mid) != 0 || !strings.Contains(o.SDP, "a=max-message-size:65536") {
		t.Errorf("messaging-only offer: mid %v\n%s", o.Mid, o.SDP)
	}
	var om map[string]any
	must(t, json.Unmarshal(o.Raw, &om))
	if om["data_channel_signaling"] != true || om["ignore_disconnect_websocket"] != false {
		t.Errorf("offer fields %v %v", om["data_channel_signaling"], om["ignore_disconnect_websocket"])
	}

	setMode(t, n, "block_new_session")
	_, err = try(msgOnly("idle"))
	expectClosed(t, err, 4503, "BLOCKED-NEW-SESSION")
	if _, err := try(msgOnly("m1")); err != nil {
		t.Errorf("messaging-only connect to a live session in block_new_session: %v", err)
	}
	setMode(t, n, "block_new_connection")
	_, err = try(msgOnly("m1"))
	expectClosed(t, err, 4503, "BLOCKED-NEW-CONNECTION")
	_, err = try(msgOnly("idle"))
	expectClosed(t, err, 4503, "BLOCKED-NEW-CONNECTION")
	setMode(t, n, "normal")

	for name, dcs := range map[string]any{
		"not a list":       "#chat",
		"no label":         []any{map[string]any{"direction": "sendrecv"}},
		"unknown label":    []any{map[string]any{"label": "chat", "direction": "sendrecv"}},
		"no direction":     []any{map[string]any{"label": "#chat"}},
		"bad direction":    []any{map[string]any{"label": "#chat", "direction": "both"}},
		"duplicate":        []any{map[string]any{"label": "#a", "direction": "sendrecv"}, map[string]any{"label": "#a", "direction": "recvonly"}},
		"both reliability": []any{map[string]any{"label": "#a", "direction": "sendrecv", "max_retransmits": 1, "max_packet_life_time": 1}},
		"negative":         []any{map[string]any{"label": "#a", "direction": "sendrecv", "max_retransmits": -1}},
		"bad header":       []any{map[string]any{"label": "#a", "direction": "sendrecv", "header": []any{map[string]any{"type": "x"}}}},
	} {
		m := msgOnly("bad")
		m["data_channels"] = dcs
		_, err := try(m)
		var cl *sigclient.Closed
		if !errors.As(err, &cl) || cl.Code != 4400 || cl.Reason != "INVALID-DATA-CHANNELS" {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestDataChannelAuthPayouts: the auth webhook sees the DataChannel fields
// of connect, and its payouts win: data_channel_signaling false refuses a
// messaging-only connect, data_channels and ignore_disconnect_websocket
// replace the client's.
func TestDataChannelAuthPayouts(t *testing.T) {
	hook := newHookReceiver(t)
	hook.respond = func(w http.ResponseWriter, body map[string]any) {
		switch body["channel_id"] {
		case "off":
			w.Write([]byte(`{"allowed":true,"data_channel_signaling":false}`))
		case "replace":
			w.Write([]byte(`{"allowed":true,"ignore_disconnect_websocket":true,"data_channels":[{"label":"#paid","direction":"recvonly","compress":true}]}`))
		default:
			w.Write([]byte(`{"allowed":true,"data_channels":"bad"}`))
		}
	}
	n := startNode(t, func(c *config.Config) { c.AuthWebhookURL = hook.url() })
	m := func(channel string) map[string]any {
		c := connectMsg(channel, "sendonly")
		c["audio"], c["video"], c["data_channel_signaling"] = false, false, true
		c["data_channels"] = []any{map[string]any{"label": "#chat", "direction": "sendrecv"}}
		return c
	}
	_, err := dial(t, n).Connect(m("off"), soon())
	expectClosed(t, err, 4400, "AUDIO-AND-VIDEO-DISABLED")
	o, err := dial(t, n).Connect(m("replace"), soon())
	if err != nil {
		t.Fatal(err)
	}
	var om struct {
		IgnoreDisconnectWebsocket bool `json:"ignore_disconnect_websocket"`
		DataChannels              []struct {
			Label, Direction string
			Compress         bool
		} `json:"data_channels"`
	}
	must(t, json.Unmarshal(o.Raw, &om))
	labels := map[string]bool{}
	for _, d := range om.DataChannels {
		labels[d.Label] = true
		if d.Label == "#paid" && (d.Direction != "recvonly" || !d.Compress) {
			t.Errorf("#paid %+v", d)
		}
	}
	if !om.IgnoreDisconnectWebsocket || !labels["#paid"] || labels["#chat"] || !labels["signaling"] || !labels["notify"] {
		t.Errorf("offer after payouts: %+v", om)
	}
	_, err = dial(t, n).Connect(m("bad"), soon())
	expectClosed(t, err, 4502, "INVALID-AUTH-WEBHOOK-RESPONSE-JSON")
	req := hook.all() // auth requests, in order
	if req[0]["data_channel_signaling"] != true || req[0]["data_channels"] == nil {
		t.Errorf("auth request: data_channel_signaling %v data_channels %v", req[0]["data_channel_signaling"], req[0]["data_channels"])
	}
}

// udpRelay sits between one client and the node's media port; it can stop
// forwarding what the node sends (a client that stops reading and
// acknowledging, seen from the node).
type udpRelay struct {
	conn      *net.UDPConn
	server    netip.AddrPort
	client    atomic.Pointer[netip.AddrPort]
	blackhole atomic.Bool
	dropped   atomic.Int64 // datagrams to the client dropped by the blackhole
}

func newUDPRelay(t *testing.T, server netip.AddrPort) *udpRelay {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	must(t, err)
	r := &udpRelay{conn: c, server: server}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			if from == r.server {
				if to := r.client.Load(); to != nil && !r.blackhole.Load() {
					c.WriteToUDPAddrPort(buf[:n], *to)
				} else {
					r.dropped.Add(1)
				}
				continue
			}
			r.client.Store(&from)
			c.WriteToUDPAddrPort(buf[:n], r.server)
		}
	}()
	return r
}

// rewrite points an offer's candidate at the relay.
func (r *udpRelay) rewrite(sdp string) string {
	return strings.ReplaceAll(sdp, " "+r.server.Addr().String()+" "+strconv.Itoa(int(r.server.Port()))+" typ host",
		" 127.0.0.1 "+strconv.Itoa(r.conn.LocalAddr().(*net.UDPAddr).Port)+" typ host")
}

// TestDataChannelLimits: messages over data_channel_messages_per_second
// are dropped and counted; a receiver that stops acknowledging is closed
// with 4429 DATA-CHANNEL-QUEUE-FULL once data_channel_queue_bytes are
// waiting for it, and the others go on.
func TestDataChannelLimits(t *testing.T) {
	n := startNode(t, func(c *config.Config) {
		c.ICEConnectionStateFailedTimeout = patience
		c.DataChannelMaxMessageSize, c.DataChannelQueueBytes, c.DataChannelMessagesPerSecond = 1024, 4096, 20
	})
	// #bulk, for the queue, only slow and c have: a, a reader that a
	// loaded machine may stall for seconds, is never sent enough to fill
	// its small queue.
	chat := map[string]any{"label": "#chat", "direction": "sendrecv"}
	bulk := map[string]any{"label": "#bulk", "direction": "sendrecv"}
	relay := newUDPRelay(t, n.MediaAddr())
	a := newDCPeer(t, n, "lim", "sendonly", messagingConnect(chat))
	slow := newDCPeerVia(t, n, relay.rewrite, "lim", "sendonly", messagingConnect(chat, bulk))
	c := newDCPeer(t, n, "lim", "sendonly", messagingConnect(chat, bulk))
	for _, p := range []*dcPeer{a, slow, c} {
		p.waitSwitched()
	}

	// Rate: 60 messages at once; the bucket holds 20 and refills 20/s.
	start := time.Now()
	for i := range 60 {
		a.send("#chat", "burst "+strconv.Itoa(i), false)
	}
	st := n.Hub().Stats()
	waitFor(t, "every burst message relayed or dropped", patience, func() bool {
		return st.DataMessagesIn.Load()+st.DataDropRateLimited.Load() == 60 && len(c.received("#chat")) == int(st.DataMessagesIn.Load())
	})
	passed, limit := st.DataMessagesIn.Load(), 20+20*time.Since(start).Seconds()+1
	if passed < 20 || float64(passed) > limit || st.DataDropRateLimited.Load() == 0 {
		t.Errorf("%d of 60 passed (bucket 20 + 20/s over %v allows %.0f), %d dropped", passed, time.Since(start), limit, st.DataDropRateLimited.Load())
	}

	// Queue: slow stops acknowledging; c sends 1000-byte messages on
	// #bulk (one per poll; the rate limit lets 20 a second through).
	relay.blackhole.Store(true)
	waitFor(t, "the slow receiver closed", patience, func() bool {
		if st.DataQueueFull.Load() == 0 {
			c.send("#bulk", strings.Repeat("x", 1000), true)
			return false
		}
		return true
	})
	<-slow.wsDone
	slow.mu.Lock()
	if slow.wsClosed == nil || slow.wsClosed.Code != 4429 || slow.wsClosed.Reason != "DATA-CHANNEL-QUEUE-FULL" {
		t.Errorf("slow receiver's WebSocket closed with %v", slow.wsClosed)
	}
	slow.mu.Unlock()
	// The node removes the connection once its close is done.
	waitFor(t, "the slow receiver removed", patience, func() bool { return n.Hub().Connections() <= 2 })
	if got := n.Hub().Connections(); got != 2 {
		t.Errorf("%d connections left, want the two readers", got)
	}
	before := len(a.received("#chat"))
	c.send("#chat", "still here", false)
	waitFor(t, "a still receives", patience, func() bool { return len(a.received("#chat")) > before })
}

// TestDataChannelPartialReliability: the node sends each channel with the
// reliability its receiver declared. While the path to the receiver is
// down, a message on a max_retransmits: 0 channel is abandoned (RFC 3758,
// RFC 7496 §3.1) and one on the reliable channel is retransmitted and
// arrives once the path is back; a later message on the lossy channel
// arrives without the lost one. (max_packet_life_time channels are opened
// with their lifetime, TestMessagingRelay; pion/sctp v1.12 restarts the
// lifetime at every retransmission, so it is not asserted here: README,
// DataChannels.)
func TestDataChannelPartialReliability(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.ICEConnectionStateFailedTimeout = patience })
	labels := messagingConnect(
		map[string]any{"label": "#reliable", "direction": "sendrecv"},
		map[string]any{"label": "#rexmit", "direction": "sendrecv", "ordered": false, "max_retransmits": 0},
	)
	relay := newUDPRelay(t, n.MediaAddr())
	a := newDCPeer(t, n, "pr", "sendonly", labels)
	b := newDCPeerVia(t, n, relay.rewrite, "pr", "sendonly", labels)
	a.waitSwitched()
	b.waitSwitched()
	for _, l := range []string{"#reliable", "#rexmit"} {
		a.send(l, "warm-up", false)
	}
	waitFor(t, "warm-up on both labels", patience, func() bool {
		return len(b.received("#reliable")) == 1 && len(b.received("#rexmit")) == 1
	})

	relay.blackhole.Store(true)
	dropped := relay.dropped.Load()
	a.send("#reliable", "during the outage", false)
	a.send("#rexmit", "during the outage", false)
	// The node's first transmissions to b are lost in the outage.
	waitFor(t, "the node's transmissions to b dropped", patience, func() bool { return relay.dropped.Load() > dropped })
	// The outage itself: longer than SCTP's minimum RTO (1 s), so the first
	// transmissions are lost and the retransmission timer fires while the
	// path is down.
	time.Sleep(1500 * time.Millisecond)
	relay.blackhole.Store(false)
	a.send("#rexmit", "after", false)
	waitFor(t, "the reliable message and the later lossy one", patience, func() bool {
		return len(b.received("#reliable")) == 2 && len(b.received("#rexmit")) >= 2
	})
	if m := b.received("#reliable"); m[1].data != "during the outage" {
		t.Errorf("#reliable: %v", m)
	}
	if m := b.received("#rexmit"); len(m) != 2 || m[1].data != "after" {
		t.Errorf("#rexmit delivered %v: the message sent during the outage was not abandoned", m)
	}
}

// TestDataChannelRPC: with data_channel_rpc the node opens `rpc` and
// lists its methods in the offer's rpc_methods; RequestSimulcastRid is
// answered with Sora's result and takes effect (counted as a rid
// request), RequestSpotlightRid of a connection without spotlight is
// -32602, an unknown method -32601, an invalid request -32600, text that
// is not JSON -32700; notifications are left unanswered.
func TestDataChannelRPC(t *testing.T) {
	n := startNode(t, func(c *config.Config) {
		c.ICEConnectionStateFailedTimeout = patience
		c.DataChannelRPC = true
	})
	p := newDCPeer(t, n, "rpc", "sendonly", map[string]any{"audio": false, "video": false})
	p.waitSwitched()
	if _, ok := p.described["rpc"]; !ok {
		t.Fatal("the offer does not describe rpc")
	}
	var offer struct {
		RPCMethods []string `json:"rpc_methods"`
	}
	if err := json.Unmarshal(p.offer.Raw, &offer); err != nil || fmt.Sprint(offer.RPCMethods) != "[2025.2.0/RequestSimulcastRid 2025.2.0/RequestSpotlightRid 2025.2.0/ResetSpotlightRid "+
		"2025.2.0/PutSignalingNotifyMetadata 2025.2.0/PutSignalingNotifyMetadataItem]" {
		t.Errorf("the offer's rpc_methods: %v %v", offer.RPCMethods, err)
	}
	for _, req := range []string{
		`{"jsonrpc":"2.0","method":"2025.2.0/RequestSimulcastRid","params":{"rid":"r1"},"id":1}`,
		`{"jsonrpc":"2.0","method":"2025.2.0/PutSignalingNotifyMetadata","params":{}}`, // notification
		`{"jsonrpc":"1.0","method":"x","id":"two"}`,
		`not json`,
		`{"jsonrpc":"2.0","method":"2025.2.0/RequestSpotlightRid","params":{"spotlight_focus_rid":"r1","spotlight_unfocus_rid":"r0"},"id":3}`,
		`{"jsonrpc":"2.0","method":"2025.2.0/PutSignalingNotifyMetadata","params":{},"id":4}`,
		`{"jsonrpc":"2.0","method":"2025.2.0/PutSignalingNotifyMetadataItem","params":{"key":"k","value":"v","push":true},"id":5}`,
		`{"jsonrpc":"2.0","method":"Sora_20201124.PutSignalingNotifyMetadata","params":{"metadata":{"a":1}},"id":6}`,
		`{"jsonrpc":"2.0","method":"2025.2.0/Nothing","id":7}`,
	} {
		p.send("rpc", req, false)
	}
	waitFor(t, "eight answers", patience, func() bool { return len(p.received("rpc")) == 8 })
	want := []string{
		`{"jsonrpc":"2.0","id":1,"result":{"channel_id":"rpc","receiver_connection_id":"` + p.id + `","rid":"r1"}}`,
		`{"jsonrpc":"2.0","id":"two","error":{"code":-32600,"message":"Invalid Request"}}`,
		`{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}`,
		`{"jsonrpc":"2.0","id":3,"error":{"code":-32602,"message":"Invalid params"}}`,
		`{"jsonrpc":"2.0","id":4,"error":{"code":-32602,"message":"Invalid params"}}`,
		`{"jsonrpc":"2.0","id":5,"result":{"k":"v"}}`,
		`{"jsonrpc":"2.0","id":6,"result":{"a":1}}`,
		`{"jsonrpc":"2.0","id":7,"error":{"code":-32601,"message":"Method not found"}}`,
	}
	for i, m := range p.received("rpc") {
		if m.data != want[i] || m.binary {
			t.Errorf("answer %d: %s (binary %v), want %s", i, m.data, m.binary, want[i])
		}
	}
	// The change with push: true is pushed to the caller too (on the push
	// DataChannel, since it switched).
	waitFor(t, "the extension's push", patience, func() bool { return len(p.received("push")) == 1 })
	if m := p.received("push")[0]; m.data != `{"type":"push","data":{"type":"signaling_notify_metadata_ext","action":"PutMetadataItem","connection_id":"`+p.id+`","key":"k","value":"v"}}` {
		t.Errorf("push %s", m.data)
	}
	if _, stats, _ := apiCall(t, n, "Sora_20171010.GetStatsReport", ""); stats["total_rid_requests"] != 1.0 {
		t.Errorf("total_rid_requests %v after one RequestSimulcastRid over RPC, want 1", stats["total_rid_requests"])
	}
}

// TestDataChannelsKeepDTLS: a publisher without DataChannels releases DTLS
// on its first SRTP (the idle memory budget, BENCHMARKS.md); a publisher
// with DataChannels sends SRTP too but keeps DTLS, and its DataChannels
// still carry messages afterwards.
func TestDataChannelsKeepDTLS(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.ICEConnectionStateFailedTimeout = patience })
	chat := []any{map[string]any{"label": "#chat", "direction": "sendrecv"}}
	m := newDCPeer(t, n, "keep", "sendonly", messagingConnect(map[string]any{"label": "#chat", "direction": "sendrecv"}))
	a1, v1 := newSource(t, webrtc.RTPCodecTypeAudio), newSource(t, webrtc.RTPCodecTypeVideo)
	plain := newPionPeer(t, n, pionAPI(t, webrtc.DTLSRoleClient), "keep", "sendonly", a1.track, v1.track)
	a2, v2 := newSource(t, webrtc.RTPCodecTypeAudio), newSource(t, webrtc.RTPCodecTypeVideo)
	withDC := newDCPeer(t, n, "keep", "sendonly", map[string]any{"data_channels": chat}, a2.track, v2.track)
	plain.waitConnected(n)
	m.waitSwitched()
	withDC.waitSwitched()
	const packets = 50
	for range packets {
		for _, s := range []*source{a1, v1, a2, v2} {
			s.send(t)
		}
	}
	// More than one publisher's worth of packets: both have sent SRTP.
	waitFor(t, "SRTP from both publishers", patience, func() bool {
		return n.Media().Stats().ReceivedRTP > 2*packets && n.Media().Stats().DTLSReleased >= 1
	})
	withDC.send("#chat", "after my SRTP", false)
	waitFor(t, "the DataChannel message after SRTP", patience, func() bool { return len(m.received("#chat")) == 1 })
	if st := n.Media().Stats(); st.DTLSReleased != 1 || st.DataChannels.Associations != 2 {
		t.Errorf("DTLS released %d (want only the plain publisher's), associations %d", st.DTLSReleased, st.DataChannels.Associations)
	}
}

// TestRPCMethodsPayout: the auth webhook's rpc_methods narrows what the
// offer lists and what the connection may call (names Hayate does not
// serve are left out); a payout that is not an array of names refuses the
// connect.
func TestRPCMethodsPayout(t *testing.T) {
	auth := authAnswering(t, `{"allowed":true,"rpc_methods":["2025.2.0/PutSignalingNotifyMetadataItem","2099.1.0/Unknown"]}`)
	n := startNode(t, func(c *config.Config) {
		c.ICEConnectionStateFailedTimeout = patience
		c.DataChannelRPC = true
		c.AuthWebhookURL = auth.url()
	})
	p := newDCPeer(t, n, "rpcpaid", "sendonly", map[string]any{"audio": false, "video": false})
	p.waitSwitched()
	var offer struct {
		RPCMethods []string `json:"rpc_methods"`
	}
	if err := json.Unmarshal(p.offer.Raw, &offer); err != nil || fmt.Sprint(offer.RPCMethods) != "[2025.2.0/PutSignalingNotifyMetadataItem]" {
		t.Errorf("the offer's rpc_methods: %v %v", offer.RPCMethods, err)
	}
	p.send("rpc", `{"jsonrpc":"2.0","method":"2025.2.0/RequestSimulcastRid","params":{"rid":"r1"},"id":1}`, false)
	p.send("rpc", `{"jsonrpc":"2.0","method":"2025.2.0/PutSignalingNotifyMetadataItem","params":{"key":"k","value":1},"id":2}`, false)
	waitFor(t, "two answers", patience, func() bool { return len(p.received("rpc")) == 2 })
	want := []string{
		`{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"Method not found"}}`,
		`{"jsonrpc":"2.0","id":2,"result":{"k":1}}`,
	}
	for i, m := range p.received("rpc") {
		if m.data != want[i] {
			t.Errorf("answer %d: %s, want %s", i, m.data, want[i])
		}
	}

	bad := authAnswering(t, `{"allowed":true,"rpc_methods":"2025.2.0/RequestSimulcastRid"}`)
	n2 := startNode(t, func(c *config.Config) { c.AuthWebhookURL = bad.url() })
	_, err := dial(t, n2).Connect(connectMsg("ch", "sendrecv"), soon())
	expectClosed(t, err, 4502, "INVALID-AUTH-WEBHOOK-RESPONSE-JSON")
}
