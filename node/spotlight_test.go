package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/hayate-sfu/hayate/config"
	"github.com/hayate-sfu/hayate/internal/sigclient"
	"github.com/hayate-sfu/hayate/signal/jsep"
)

// tinyLayers (about 24, 48 and 96 kbit/s) fit the viewer's bandwidth
// estimate three times over: what it receives is the spotlight's choice,
// not congestion control's.
var tinyLayers = [3]layerShape{{1, 100}, {1, 200}, {1, 400}}

// speaker sends a publisher's audio: 50 packets a second, each with the
// audio level extension (RFC 6464), loud (-10 dBov) while loud is set and
// silent (-127 dBov) otherwise.
type speaker struct {
	loud atomic.Bool
	stop chan struct{}
	done chan struct{}
}

func speak(t *testing.T, p *simPublisher) *speaker {
	s := &speaker{stop: make(chan struct{}), done: make(chan struct{})}
	ssrc := p.peer.SSRCs["audio"]
	go func() {
		defer close(s.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		seq, ts := uint16(1), uint32(0)
		for {
			select {
			case <-s.stop:
				return
			case <-tick.C:
			}
			level := byte(127)
			if s.loud.Load() {
				level = 0x80 | 10 // V set, -10 dBov
			}
			h := rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq, Timestamp: ts, SSRC: ssrc}
			_ = h.SetExtension(jsep.ExtAudioLevel.ID, []byte{level})
			b, _ := (&rtp.Packet{Header: h, Payload: make([]byte, 60)}).Marshal()
			_ = p.peer.SendRTP(b)
			seq++
			ts += 960
		}
	}()
	t.Cleanup(func() {
		close(s.stop)
		<-s.done
	})
	return s
}

// sourcesOf maps the SSRC of each video stream an offer announces to the
// connection that publishes it (a=ssrc:N msid:<connection id> ...), RTX
// streams left out.
func sourcesOf(sdp string) map[uint32]string {
	out := map[uint32]string{}
	for _, m := range regexp.MustCompile(`a=ssrc:(\d+) msid:(\S+) (\S+)-video`).FindAllStringSubmatch(sdp, -1) {
		n, _ := strconv.ParseUint(m[1], 10, 32)
		out[uint32(n)] = m[2]
	}
	// Not the RTX streams (the second of each FID group).
	for _, m := range regexp.MustCompile(`a=ssrc-group:FID \d+ (\d+)`).FindAllStringSubmatch(sdp, -1) {
		n, _ := strconv.ParseUint(m[1], 10, 32)
		delete(out, uint32(n))
	}
	return out
}

// TestSpotlightFollowsVoice: three spotlight publishers (simulcast video,
// audio with levels) and a spotlight viewer with spotlight_number 1, focus
// rid r2 and unfocus rid r0. The viewer receives the publisher in focus at
// r2 and the others at r0: first the one that joined first (nobody has
// spoken), then the one that speaks, and the focus moves again when
// another speaks; each move is notified as spotlight.focused /
// spotlight.unfocused. A viewer that asks no spotlight gets every
// publisher at its own rid.
func TestSpotlightFollowsVoice(t *testing.T) {
	r := newSpotRoom(t, "spotlight", 1)
	n, ids, voices, v := r.n, r.ids, r.voices, r.v
	focusOn := func(i int) {
		t.Helper()
		want := map[string]int{}
		for j, id := range ids {
			want[id] = 0
			if j == i {
				want[id] = 2
			}
		}
		r.waitLayers(t, fmt.Sprintf("publisher %d in focus (r2), the others at r0", i), v, want)
		r.waitNotify(t, "spotlight.focused", ids[i])
	}
	focusOn(0) // nobody spoke: the first to join
	voices[2].loud.Store(true)
	focusOn(2)
	voices[2].loud.Store(false)
	voices[1].loud.Store(true)
	focusOn(1)
	r.waitNotify(t, "spotlight.unfocused", ids[2])
	// The event webhooks tell the same moves: each publisher's focused and
	// unfocused alternate, on its own queue.
	waitFor(t, "spotlight.unfocused webhook for publisher 2", patience, func() bool {
		for _, e := range r.ev.ofType("spotlight.unfocused") {
			if e["connection_id"] == ids[2] {
				return true
			}
		}
		return false
	})
	for i, id := range ids {
		var seq []string
		for _, e := range r.ev.all() {
			if e["connection_id"] == id && (e["type"] == "spotlight.focused" || e["type"] == "spotlight.unfocused") {
				seq = append(seq, e["type"].(string))
				if e["type"] == "spotlight.focused" && (e["fixed"] != false || e["spotlight_number"] != 1.0) {
					t.Errorf("publisher %d: %v", i, e)
				}
			}
		}
		if len(seq) == 0 || seq[0] != "spotlight.focused" {
			t.Fatalf("publisher %d: spotlight webhooks %v, want focused first", i, seq)
		}
		for j := 1; j < len(seq); j++ {
			if seq[j] == seq[j-1] {
				t.Fatalf("publisher %d: spotlight webhooks %v do not alternate", i, seq)
			}
		}
	}

	plain := newViewer(t, n, r.api, r.channel, "r1")
	want := map[string]int{ids[0]: 1, ids[1]: 1, ids[2]: 1}
	r.waitLayers(t, "the viewer without spotlight at its own rid r1 for everyone", plain, want)
}

// spotRoom is a spotlight channel of three simulcast publishers that can
// speak (tinyLayers, audio with the level extension) and a spotlight
// viewer (focus r2, unfocus r0, no audio) with spotlight_number number.
type spotRoom struct {
	n       *Node
	channel string
	api     *webrtc.API
	ids     []string
	voices  []*speaker
	v       *viewer
	src     map[uint32]string
	ev      *hookReceiver // the node's event webhook receiver
}

func newSpotRoom(t *testing.T, channel string, number int) *spotRoom {
	ev := newHookReceiver(t)
	// The spotlight's rids are what these tests check, so every viewer gets
	// its cap's layer (simulcast_adaptation false): a loaded machine that
	// squeezes a viewer's estimate must not move the layers under them
	// (adaptation has its own tests).
	r := &spotRoom{n: startNode(t, func(c *config.Config) {
		c.EventWebhookURL = ev.url()
		c.SimulcastAdaptation = false
	}), channel: channel, ev: ev}
	spot := func(m map[string]any) {
		m["audio"] = map[string]any{"codec_type": "OPUS"}
		m["spotlight"] = true
	}
	for range 3 {
		p := newSimPublisher(t, r.n, channel, tinyLayers, spot)
		r.ids = append(r.ids, p.peer.Offer.ConnectionID)
		r.voices = append(r.voices, speak(t, p))
	}
	r.api = simulcastAPI(t, false)
	r.v = newViewer(t, r.n, r.api, channel, "", func(m map[string]any) {
		m["audio"] = false
		m["spotlight"] = true
		m["spotlight_number"] = number
		m["spotlight_focus_rid"] = "r2"
		m["spotlight_unfocus_rid"] = "r0"
	})
	r.src = sourcesOf(r.v.offer.SDP)
	if len(r.src) != 3 {
		t.Fatalf("the viewer's offer announces %d video streams, want 3: %v", len(r.src), r.src)
	}
	return r
}

// waitLayers waits until the newest packet of each publisher's stream w
// receives is of the layer want says.
func (r *spotRoom) waitLayers(t *testing.T, what string, w *viewer, want map[string]int) {
	t.Helper()
	var got map[string]int
	defer func() {
		if t.Failed() {
			t.Logf("%s: the last layers seen %v, want %v", what, got, want)
		}
	}()
	waitFor(t, what, patience, func() bool {
		got = map[string]int{}
		for _, p := range w.snapshot() {
			if id, ok := r.src[p.ssrc]; ok {
				got[id] = p.layer
			}
		}
		return fmt.Sprint(got) == fmt.Sprint(want)
	})
}

// waitNotify waits for the spotlight viewer to be told event about id and
// returns the notify.
func (r *spotRoom) waitNotify(t *testing.T, event, id string) map[string]any {
	t.Helper()
	var found map[string]any
	waitFor(t, event+" for "+id, patience, func() bool {
		r.v.pionPeer.mu.Lock()
		defer r.v.pionPeer.mu.Unlock()
		for _, m := range r.v.notifies {
			if m["event_type"] == event && m["connection_id"] == id {
				found = m
			}
		}
		return found != nil
	})
	return found
}

// TestSpotlightRefusals: spotlight_number and the focus rids are checked.
func TestSpotlightRefusals(t *testing.T) {
	n := startNode(t, nil)
	for _, tc := range []struct {
		key    string
		value  any
		reason string
	}{
		{"spotlight_number", 0, "INVALID-SPOTLIGHT-NUMBER"},
		{"spotlight_number", 9, "INVALID-SPOTLIGHT-NUMBER"},
		{"spotlight_focus_rid", "r3", "INVALID-SPOTLIGHT-RID"},
		{"spotlight_unfocus_rid", "auto", "INVALID-SPOTLIGHT-RID"},
	} {
		msg := connectMsg("spotlight-refused", "sendrecv")
		msg["spotlight"] = true
		msg[tc.key] = tc.value
		c := dial(t, n)
		_, err := c.Connect(msg, soon())
		var cl *sigclient.Closed
		if !errors.As(err, &cl) || cl.Code != 4400 || cl.Reason != tc.reason {
			t.Errorf("%s = %v: %v, want 4400 %s", tc.key, tc.value, err, tc.reason)
		}
	}
}

// TestSpotlightAPI: the spotlight API moves the focus. FocusSpotlightFixed
// keeps a publisher in focus ahead of a speaker (notified with fixed:
// true), ChangeSpotlightNumber widens the focus, UnfocusSpotlight ends a
// fixed focus and ranks the publisher last, RequestSpotlightRid changes
// the rids one viewer gets and ResetSpotlightRid restores its own,
// FocusSpotlight brings a silent publisher into focus; bad requests are
// refused.
func TestSpotlightAPI(t *testing.T) {
	r := newSpotRoom(t, "spotlight-api", 1)
	ids, v := r.ids, r.v
	call := func(target, body string) {
		t.Helper()
		if st, _, raw := apiCall(t, r.n, target, body); st != 200 {
			t.Fatalf("%s %s: %d %s", target, body, st, raw)
		}
	}
	conn := func(i int) string { return `{"channel_id":"spotlight-api","connection_id":"` + ids[i] + `"}` }
	layers := func(l0, l1, l2 int) map[string]int { return map[string]int{ids[0]: l0, ids[1]: l1, ids[2]: l2} }

	r.waitLayers(t, "publisher 0 in focus (nobody spoke)", v, layers(2, 0, 0))
	call("Sora_20200807.FocusSpotlightFixed", conn(2))
	r.waitLayers(t, "publisher 2 in focus, fixed", v, layers(0, 0, 2))
	if m := r.waitNotify(t, "spotlight.focused", ids[2]); m["fixed"] != true {
		t.Errorf("spotlight.focused for a fixed focus: %v, want fixed: true", m)
	}
	waitFor(t, "the spotlight.focused webhook of the fixed focus", patience, func() bool {
		for _, e := range r.ev.ofType("spotlight.focused") {
			if e["connection_id"] == ids[2] && e["fixed"] == true {
				return true
			}
		}
		return false
	})
	// Publisher 1 speaks: the fixed one keeps the only place; with two
	// places both are in focus.
	r.voices[1].loud.Store(true)
	call("Sora_20200807.ChangeSpotlightNumber", `{"channel_id":"spotlight-api","spotlight_number":2}`)
	r.waitLayers(t, "publishers 2 (fixed) and 1 (speaking) in focus", v, layers(0, 2, 2))
	r.voices[1].loud.Store(false)
	call("Sora_20200807.UnfocusSpotlight", conn(2))
	r.waitLayers(t, "publisher 2 unfocused: 1 (spoke) and 0 in focus", v, layers(2, 2, 0))

	// This viewer: the focused at r1 and publisher 0's own at r0, then
	// reset to its own rids.
	rid := func(target, extra string) {
		call(target, `{"channel_id":"spotlight-api","recv_connection_id":"`+v.id+`"`+extra+`}`)
	}
	rid("Sora_20211215.RequestSpotlightRid", `,"spotlight_focus_rid":"r1","spotlight_unfocus_rid":"r0"`)
	r.waitLayers(t, "the focused at r1 after RequestSpotlightRid", v, layers(1, 1, 0))
	rid("Sora_20211215.RequestSpotlightRid", `,"send_connection_id":"`+ids[0]+`","spotlight_focus_rid":"r0","spotlight_unfocus_rid":"r0"`)
	r.waitLayers(t, "publisher 0 at r0 by its own request", v, layers(0, 1, 0))
	rid("Sora_20211215.ResetSpotlightRid", "")
	r.waitLayers(t, "the viewer's own rids after ResetSpotlightRid", v, layers(2, 2, 0))

	call("Sora_20200807.FocusSpotlight", conn(2))
	r.waitLayers(t, "publisher 2 brought into focus, with 1", v, layers(0, 2, 2))

	for _, tc := range []struct {
		target, body string
		status       int
		errType      string
	}{
		{"Sora_20200807.ChangeSpotlightNumber", `{"channel_id":"spotlight-api","spotlight_number":9}`, 400, "INVALID-PARAMETER"},
		{"Sora_20200807.ChangeSpotlightNumber", `{"channel_id":"spotlight-api"}`, 400, "MISSING-PARAMETER"},
		{"Sora_20200807.FocusSpotlight", `{"channel_id":"spotlight-api","connection_id":"NOPE"}`, 404, "CONNECTION-NOT-FOUND"},
		{"Sora_20200807.FocusSpotlight", `{"channel_id":"nowhere","connection_id":"` + ids[0] + `"}`, 404, "CHANNEL-NOT-FOUND"},
		{"Sora_20211215.RequestSpotlightRid", `{"channel_id":"spotlight-api","recv_connection_id":"` + v.id + `","spotlight_focus_rid":"auto","spotlight_unfocus_rid":"r0"}`, 400, "INVALID-PARAMETER"},
		{"Sora_20211215.BatchRequestSpotlightRid", `{"channel_id":"spotlight-api"}`, 400, "MISSING-PARAMETER"},
	} {
		st, body, raw := apiCall(t, r.n, tc.target, tc.body)
		if st != tc.status || body["error_type"] != tc.errType {
			t.Errorf("%s %s: %d %s, want %d %s", tc.target, tc.body, st, raw, tc.status, tc.errType)
		}
	}
	// The listings say spotlight.
	_, _, raw := apiCall(t, r.n, "Sora_20201013.ListChannels", "")
	if !strings.Contains(string(raw), `{"channel_id":"spotlight-api","multistream":true,"spotlight":true}`) {
		t.Errorf("ListChannels: %s, want spotlight-api with spotlight true", raw)
	}
	_, _, raw = apiCall(t, r.n, "Sora_20201013.ListChannelConnections", `{"channel_id":"spotlight-api"}`)
	var conns []struct {
		ConnectionID string `json:"connection_id"`
		Simulcast    bool   `json:"simulcast"`
		Spotlight    bool   `json:"spotlight"`
	}
	if err := json.Unmarshal(raw, &conns); err != nil || len(conns) != 4 {
		t.Fatalf("ListChannelConnections: %v %s", err, raw)
	}
	for _, c := range conns {
		if !c.Simulcast || !c.Spotlight {
			t.Errorf("ListChannelConnections: %+v, want simulcast and spotlight true", c)
		}
	}

	// A channel without spotlight.
	_, o := join(t, r.n, "no-spotlight", "sendonly")
	st, body, raw := apiCall(t, r.n, "Sora_20200807.FocusSpotlight", `{"channel_id":"no-spotlight","connection_id":"`+o.ConnectionID+`"}`)
	if st != 400 || body["error_type"] != "INVALID-PARAMETER" {
		t.Errorf("FocusSpotlight in a channel without spotlight: %d %s", st, raw)
	}
}

// soraBatchSpotlightRid is BatchRequestSpotlightRid's answer: the request.
type soraBatchSpotlightRid struct {
	ChannelID           string   `json:"channel_id"`
	RecvConnectionIDs   []string `json:"recv_connection_ids"`
	SendConnectionID    string   `json:"send_connection_id"`
	SpotlightFocusRid   string   `json:"spotlight_focus_rid"`
	SpotlightUnfocusRid string   `json:"spotlight_unfocus_rid"`
}

// TestSpotlightBatchRequestRid: BatchRequestSpotlightRid sets the rids of
// every viewer it lists, and of none when one of them is not a spotlight
// viewer of the channel.
func TestSpotlightBatchRequestRid(t *testing.T) {
	r := newSpotRoom(t, "spot-batch", 1)
	ids, v1 := r.ids, r.v
	v2 := newViewer(t, r.n, r.api, r.channel, "", func(m map[string]any) {
		m["audio"] = false
		m["spotlight"] = true
		m["spotlight_number"] = 1
		m["spotlight_focus_rid"] = "r2"
		m["spotlight_unfocus_rid"] = "r0"
	})
	plain := newViewer(t, r.n, r.api, r.channel, "r1")
	layers := func(l0, l1, l2 int) map[string]int { return map[string]int{ids[0]: l0, ids[1]: l1, ids[2]: l2} }
	batch := func(recv []string, extra string) string {
		b, _ := json.Marshal(recv)
		return `{"channel_id":"spot-batch","recv_connection_ids":` + string(b) + extra + `}`
	}
	r.waitLayers(t, "viewer 1: publisher 0 in focus at r2", v1, layers(2, 0, 0))
	r.waitLayers(t, "viewer 2: publisher 0 in focus at r2", v2, layers(2, 0, 0))

	// A viewer without spotlight in the list: nobody changes.
	apiErr(t, r.n, "Sora_20211215.BatchRequestSpotlightRid", batch([]string{v1.id, plain.id}, `,"spotlight_focus_rid":"r1","spotlight_unfocus_rid":"r1"`), 400, "INVALID-PARAMETER")
	apiErr(t, r.n, "Sora_20211215.BatchRequestSpotlightRid", batch([]string{v1.id, "NOPE"}, `,"spotlight_focus_rid":"r1","spotlight_unfocus_rid":"r1"`), 404, "CONNECTION-NOT-FOUND")
	apiErr(t, r.n, "Sora_20211215.BatchRequestSpotlightRid", batch([]string{}, `,"spotlight_focus_rid":"r1","spotlight_unfocus_rid":"r1"`), 400, "INVALID-PARAMETER")
	apiErr(t, r.n, "Sora_20211215.BatchRequestSpotlightRid", batch([]string{v1.id}, `,"spotlight_focus_rid":"auto","spotlight_unfocus_rid":"r1"`), 400, "INVALID-PARAMETER")
	apiErr(t, r.n, "Sora_20211215.BatchRequestSpotlightRid", batch([]string{v1.id}, `,"spotlight_focus_rid":"r1"`), 400, "MISSING-PARAMETER")

	// Viewer 2 alone: the focused at r1, the others at r0.
	got := apiOK[soraBatchSpotlightRid](t, r.n, "Sora_20211215.BatchRequestSpotlightRid", batch([]string{v2.id}, `,"spotlight_focus_rid":"r1","spotlight_unfocus_rid":"r0"`))
	if got.ChannelID != "spot-batch" || len(got.RecvConnectionIDs) != 1 || got.SpotlightFocusRid != "r1" {
		t.Errorf("answer %+v, want the request", got)
	}
	r.waitLayers(t, "viewer 2: the focused at r1", v2, layers(1, 0, 0))
	// That batch chose the focus again for every viewer: had a refused
	// batch set viewer 1's rids (unfocus r1), viewer 1 would now get the
	// unfocused publishers at r1. Over its next second of packets they
	// stay at its own unfocus rid r0.
	k := len(v1.snapshot())
	waitFor(t, "a second more of viewer 1's packets", patience, func() bool { return len(v1.snapshot()) > k+90 })
	for _, p := range v1.snapshot()[k:] {
		if id := r.src[p.ssrc]; (id == ids[1] || id == ids[2]) && p.layer != 0 {
			t.Fatalf("viewer 1 after the refused batches: unfocused publisher %s at layer %d, want 0", id, p.layer)
		}
	}

	// Both viewers, and publisher 2's stream only: at r1 while unfocused.
	apiOK[soraBatchSpotlightRid](t, r.n, "Sora_20211215.BatchRequestSpotlightRid",
		batch([]string{v1.id, v2.id}, `,"send_connection_id":"`+ids[2]+`","spotlight_focus_rid":"r1","spotlight_unfocus_rid":"r1"`))
	r.waitLayers(t, "viewer 1: publisher 2 at r1", v1, layers(2, 0, 1))
	r.waitLayers(t, "viewer 2: publisher 2 at r1", v2, layers(1, 0, 1))
}
