package node

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/hayate-sfu/hayate/jsep"
	"github.com/hayate-sfu/hayate/sigclient"
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
	n := startNode(t, nil)
	const channel = "spotlight"
	spot := func(m map[string]any) {
		m["audio"] = map[string]any{"codec_type": "OPUS"}
		m["spotlight"] = true
	}
	var pubs []*simPublisher
	var voices []*speaker
	for range 3 {
		p := newSimPublisher(t, n, channel, tinyLayers, spot)
		pubs = append(pubs, p)
		voices = append(voices, speak(t, p))
	}
	ids := make([]string, len(pubs))
	for i, p := range pubs {
		ids[i] = p.peer.Offer.ConnectionID
	}
	api := simulcastAPI(t, false)
	v := newViewer(t, n, api, channel, "", func(m map[string]any) {
		m["audio"] = false
		m["spotlight"] = true
		m["spotlight_number"] = 1
		m["spotlight_focus_rid"] = "r2"
		m["spotlight_unfocus_rid"] = "r0"
	})
	plain := newViewer(t, n, api, channel, "r1")
	src := sourcesOf(v.offer.SDP)
	if len(src) != 3 {
		t.Fatalf("the viewer's offer announces %d video streams, want 3: %v", len(src), src)
	}
	// layers is the layer of the newest packet of each publisher's stream.
	layers := func(w *viewer) map[string]int {
		out := map[string]int{}
		for _, p := range w.snapshot() {
			if id, ok := src[p.ssrc]; ok {
				out[id] = p.layer
			}
		}
		return out
	}
	focusOn := func(i int) {
		t.Helper()
		want := map[string]int{}
		for j, id := range ids {
			want[id] = 0
			if j == i {
				want[id] = 2
			}
		}
		waitFor(t, fmt.Sprintf("publisher %d in focus (r2), the others at r0", i), patience, func() bool {
			return fmt.Sprint(layers(v)) == fmt.Sprint(want)
		})
		waitFor(t, fmt.Sprintf("spotlight.focused for publisher %d", i), patience, func() bool {
			v.pionPeer.mu.Lock()
			defer v.pionPeer.mu.Unlock()
			for _, m := range v.notifies {
				if m["event_type"] == "spotlight.focused" && m["connection_id"] == ids[i] {
					return true
				}
			}
			return false
		})
	}
	focusOn(0) // nobody spoke: the first to join
	voices[2].loud.Store(true)
	focusOn(2)
	voices[2].loud.Store(false)
	voices[1].loud.Store(true)
	focusOn(1)
	unfocused := func() bool {
		v.pionPeer.mu.Lock()
		defer v.pionPeer.mu.Unlock()
		for _, m := range v.notifies {
			if m["event_type"] == "spotlight.unfocused" && m["connection_id"] == ids[2] {
				return true
			}
		}
		return false
	}
	waitFor(t, "spotlight.unfocused for publisher 2", patience, unfocused)

	want := map[string]int{ids[0]: 1, ids[1]: 1, ids[2]: 1}
	waitFor(t, "the viewer without spotlight at its own rid r1 for everyone", patience, func() bool {
		return fmt.Sprint(layers(plain)) == fmt.Sprint(want)
	})
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
