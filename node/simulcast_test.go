package node

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/hayate-sfu/hayate/config"
	"github.com/hayate-sfu/hayate/internal/loadpeer"
)

// simPublisher is a simulcast publisher on Hayate's own stack: three VP8
// streams r0..r2, each with its own SSRC, sequence numbers, timestamps and
// picture IDs, every packet naming its rid (RFC 8852). A stream sends a
// key frame when asked by a PLI (and every keyEvery frames). Each payload
// starts with the VP8 descriptor and header, then its layer, its own
// sequence number, the frame's number and the packet's index and count in
// the frame, so a receiver can tell where a packet came from.
type simPublisher struct {
	t      *testing.T
	peer   *loadpeer.Peer
	layers [3]*simLayer
	stop   chan struct{}
	done   chan struct{}
	// Sent counts packets sent per layer; frames the frames sent.
	sent   [3]atomic.Uint64
	frames atomic.Uint32
}

// layerShape is one stream's packets per frame and packet size.
type layerShape struct{ packets, size int }

// smallLayers are light streams; heavyLayers about 120 kbit/s, 500 kbit/s
// and 1.6 Mbit/s at 30 frames a second.
var (
	smallLayers = [3]layerShape{{1, 300}, {2, 600}, {3, 900}}
	heavyLayers = [3]layerShape{{1, 500}, {2, 1000}, {6, 1100}}
)

type simLayer struct {
	ssrc    uint32
	seq     uint16
	ts      uint32
	pic     uint16
	packets int // per frame
	size    int
	wantKey atomic.Bool
}

const keyEvery = 90

func newSimPublisher(t *testing.T, n *Node, channel string, shape [3]layerShape, edit ...func(map[string]any)) *simPublisher {
	t.Helper()
	p := &simPublisher{t: t, stop: make(chan struct{}), done: make(chan struct{})}
	for i := range p.layers {
		p.layers[i] = &simLayer{ssrc: rand.Uint32() | 1, seq: uint16(rand.Uint32()), ts: rand.Uint32(), pic: uint16(rand.Uint32() & 0x7fff),
			packets: shape[i].packets, size: shape[i].size}
	}
	msg := connectMsg(channel, "sendonly")
	msg["video"] = map[string]any{"codec_type": "VP8"}
	msg["audio"] = false
	msg["simulcast"] = true
	for _, e := range edit {
		e(msg)
	}
	peer, err := loadpeer.Dial(context.Background(), loadpeer.Options{URL: n.signalingURL(), Connect: msg, Simulcast: true, Feedback: true,
		ConsentInterval: 200 * time.Millisecond, Timeout: patience, OnRTCP: p.onRTCP})
	if err != nil {
		t.Fatalf("simulcast publisher: %v", err)
	}
	t.Cleanup(peer.Close)
	p.peer = peer
	go p.run()
	t.Cleanup(func() {
		close(p.stop)
		<-p.done
	})
	return p
}

// onRTCP turns a PLI for a stream into a key frame on it.
func (p *simPublisher) onRTCP(b []byte) {
	for len(b) >= 12 {
		size := (int(binary.BigEndian.Uint16(b[2:4])) + 1) * 4
		if size > len(b) {
			return
		}
		if b[1] == 206 && b[0]&0x1f == 1 {
			for _, l := range p.layers {
				if l.ssrc == binary.BigEndian.Uint32(b[8:12]) {
					l.wantKey.Store(true)
				}
			}
		}
		b = b[size:]
	}
}

// run sends 30 frames a second on each layer.
func (p *simPublisher) run() {
	defer close(p.done)
	tick := time.NewTicker(33 * time.Millisecond)
	defer tick.Stop()
	frame := 0
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
		}
		for i, l := range p.layers {
			key := frame%keyEvery == 0 || l.wantKey.Swap(false)
			for k := range l.packets {
				payload := make([]byte, l.size)
				payload[0] = 0x80 // X
				if k == 0 {
					payload[0] |= 0x10 // S, partition 0
				}
				payload[1] = 0x80 // I
				payload[2], payload[3] = 0x80|byte(l.pic>>8), byte(l.pic)
				payload[4] = 0x01 // P: delta frame
				if key {
					payload[4] = 0x10
				}
				payload[5] = byte(i)
				binary.BigEndian.PutUint16(payload[6:], l.seq)
				binary.BigEndian.PutUint32(payload[8:], uint32(frame))
				payload[12], payload[13] = byte(k), byte(l.packets)
				h := rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: l.seq, Timestamp: l.ts, SSRC: l.ssrc, Marker: k == l.packets-1}
				_ = h.SetExtension(loadpeer.RIDExtension, []byte(fmt.Sprintf("r%d", i)))
				b, _ := (&rtp.Packet{Header: h, Payload: payload}).Marshal()
				if err := p.peer.SendRTP(b); err == nil {
					p.sent[i].Add(1)
				}
				l.seq++
			}
			l.ts += 3000
			l.pic = (l.pic + 1) & 0x7fff
		}
		frame++
		p.frames.Store(uint32(frame))
	}
}

// viewed is one packet a viewer received.
type viewed struct {
	seq    uint16
	ts     uint32
	ssrc   uint32
	layer  int
	inSeq  uint16
	pic    uint16
	key    bool
	marker bool
	frame  uint32
	index  int
	count  int
}

// viewer is a subscriber recording the video packets it receives: a pion
// client, or one on Hayate's own stack (lp) that accepts duplicates, so
// that a retransmission in the stream itself is seen.
type viewer struct {
	*pionPeer
	lp      *loadpeer.Peer
	id      string
	mu      sync.Mutex
	packets []viewed
}

// record notes one received video packet.
func (v *viewer) record(pkt *rtp.Packet) {
	if len(pkt.Payload) < 14 {
		return
	}
	p := pkt.Payload
	v.mu.Lock()
	v.packets = append(v.packets, viewed{seq: pkt.SequenceNumber, ts: pkt.Timestamp, ssrc: pkt.SSRC, layer: int(p[5]),
		inSeq: binary.BigEndian.Uint16(p[6:]), pic: uint16(p[2]&0x7f)<<8 | uint16(p[3]), key: p[0]&0x10 != 0 && p[4]&1 == 0, marker: pkt.Marker,
		frame: binary.BigEndian.Uint32(p[8:]), index: int(p[12]), count: int(p[13])})
	v.mu.Unlock()
}

// nack asks for seq of ssrc again.
func (v *viewer) nack(t *testing.T, ssrc uint32, seq uint16) {
	if v.lp != nil {
		must(t, v.lp.SendRTCP(nack(1, ssrc, seq, 0)))
		return
	}
	must(t, v.pc.WriteRTCP([]rtcp.Packet{&rtcp.TransportLayerNack{MediaSSRC: ssrc, Nacks: []rtcp.NackPair{{PacketID: seq}}}}))
}

// newLoadViewer is a viewer on Hayate's own stack.
func newLoadViewer(t *testing.T, n *Node, channel, rid string) *viewer {
	v := &viewer{}
	msg := connectMsg(channel, "recvonly")
	msg["video"] = map[string]any{"codec_type": "VP8"}
	msg["simulcast_rid"] = rid
	lp, err := loadpeer.Dial(context.Background(), loadpeer.Options{URL: n.signalingURL(), Connect: msg, AcceptDuplicates: true,
		ConsentInterval: 200 * time.Millisecond, Timeout: patience, OnRTP: func(b []byte) {
			var p rtp.Packet
			if p.Unmarshal(b) == nil && p.PayloadType == 96 {
				v.record(&p)
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lp.Close)
	v.lp, v.id = lp, lp.Offer.ConnectionID
	return v
}

func simulcastAPI(t *testing.T, rtx bool) *webrtc.API {
	m := &webrtc.MediaEngine{}
	must(t, m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeVP8, ClockRate: 90000,
		RTCPFeedback: []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}}}, PayloadType: 96}, webrtc.RTPCodecTypeVideo))
	if rtx {
		must(t, m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: "apt=96"}, PayloadType: 97}, webrtc.RTPCodecTypeVideo))
	}
	must(t, m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, PayloadType: 111}, webrtc.RTPCodecTypeAudio))
	s := pionSettings()
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(s))
}

func newViewer(t *testing.T, n *Node, api *webrtc.API, channel, rid string, edit ...func(map[string]any)) *viewer {
	v := &viewer{}
	msg := connectMsg(channel, "recvonly")
	msg["video"] = map[string]any{"codec_type": "VP8"}
	msg["simulcast"] = true
	if rid != "" {
		msg["simulcast_rid"] = rid
	}
	for _, e := range edit {
		e(msg)
	}
	v.pionPeer = newPionPeerMsg(t, n, api, msg, func(tr *webrtc.TrackRemote) {
		if tr.Kind() != webrtc.RTPCodecTypeVideo {
			return
		}
		for {
			pkt, _, err := tr.ReadRTP()
			if err != nil {
				return
			}
			v.record(pkt)
		}
	}, nil)
	v.id = v.offer.ConnectionID
	return v
}

func (v *viewer) snapshot() []viewed {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]viewed(nil), v.packets...)
}

// lastLayer is the layer of the newest packet received.
func (v *viewer) lastLayer() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	if len(v.packets) == 0 {
		return -1
	}
	return v.packets[len(v.packets)-1].layer
}

func requestRid(t *testing.T, n *Node, channel, viewer, rid string) {
	t.Helper()
	st, _, raw := apiCall(t, n, "Sora_20251210.RequestSimulcastRid",
		fmt.Sprintf(`{"channel_id":%q,"receiver_connection_id":%q,"rid":%q}`, channel, viewer, rid))
	if st != 200 {
		t.Fatalf("RequestSimulcastRid %s: %d %s", rid, st, raw)
	}
}

// TestSimulcastSwitchesRewrite: a viewer switched between the three
// streams of a simulcast publisher by the API sees one stream: one SSRC,
// continuous sequence numbers, monotonic timestamps, continuous VP8
// picture IDs, each switch on a key frame; NACKs for rewritten packets are
// answered with their own payloads, through RTX and in the stream itself;
// each switch is notified (simulcast.switched).
func TestSimulcastSwitchesRewrite(t *testing.T) {
	// The switches are the API's (simulcast_adaptation false): a loaded
	// machine that squeezes a viewer's estimate must not hold it below the
	// rid asked for.
	n := startNode(t, func(c *config.Config) {
		c.ICEConnectionStateFailedTimeout = patience
		c.SimulcastAdaptation = false
	})
	const channel = "simulcast-rewrite"
	pub := newSimPublisher(t, n, channel, smallLayers)
	// A pion viewer with RTX, one without, and one on Hayate's own stack
	// that sees retransmissions in the stream itself.
	viewers := []*viewer{newViewer(t, n, simulcastAPI(t, true), channel, "r0"), newViewer(t, n, simulcastAPI(t, false), channel, "r0"),
		newLoadViewer(t, n, channel, "r0")}
	for _, v := range viewers {
		if v.pionPeer != nil {
			v.waitConnected(n)
		}
		waitFor(t, "r0 at the viewer", patience, func() bool { return v.lastLayer() == 0 })
	}
	for _, rid := range []string{"r2", "r1", "r0", "r2"} {
		for _, v := range viewers {
			requestRid(t, n, channel, v.id, rid)
		}
		want := int(rid[1] - '0')
		for _, v := range viewers {
			waitFor(t, "the viewer on "+rid, patience, func() bool { return v.lastLayer() == want })
		}
		time.Sleep(300 * time.Millisecond) // some packets of each stretch
	}
	for vi, v := range viewers {
		got := v.snapshot()
		checkStream(t, vi, got)
		if vi == 1 {
			continue // its SRTP drops a packet it has as a replay
		}
		// NACK packets of the last stretch, rewritten by four switches
		// (earlier stretches are not resent: the viewer's decoder
		// restarted at the switch).
		var asked []viewed
		for i := len(got) - 1; i >= 0 && got[i].layer == got[len(got)-1].layer && len(asked) < 3; i -= 7 {
			asked = append(asked, got[i])
		}
		count := func(seq uint16) (int, []viewed) {
			var k int
			var all []viewed
			for _, p := range v.snapshot() {
				if p.seq == seq {
					k++
					all = append(all, p)
				}
			}
			return k, all
		}
		for _, a := range asked {
			waitFor(t, fmt.Sprintf("viewer %d: seq %d retransmitted", vi, a.seq), patience, func() bool {
				v.nack(t, a.ssrc, a.seq)
				k, _ := count(a.seq)
				return k >= 2
			})
			_, all := count(a.seq)
			for _, r := range all {
				if r.layer != a.layer || r.inSeq != a.inSeq || r.pic != a.pic || r.ts != a.ts || r.ssrc != a.ssrc {
					t.Fatalf("viewer %d: retransmission of %d is %+v, first sent %+v", vi, a.seq, r, a)
				}
			}
		}
	}
	// Every switch was notified: r0 first, then the four requested, in
	// order. A loaded machine may add others between them (a layer silent
	// for 1.5 s during a stall of the publisher's goroutine counts as
	// stopped, and the viewer falls back and returns).
	for _, v := range viewers[:2] {
		var rids []string
		waitFor(t, "the switches notified", patience, func() bool {
			v.pionPeer.mu.Lock()
			defer v.pionPeer.mu.Unlock()
			rids = rids[:0]
			for _, nt := range v.pionPeer.notifies {
				if nt["event_type"] == "simulcast.switched" && nt["sender_connection_id"] == pub.peer.Offer.ConnectionID {
					rids = append(rids, nt["current_rid"].(string))
				}
			}
			return isSubsequence([]string{"r0", "r2", "r1", "r0", "r2"}, rids)
		})
		if len(rids) != 5 {
			t.Logf("switches notified: %v (more than requested: the machine stalled)", rids)
		}
	}
}

// checkStream checks one viewer's packets (in arrival order, without
// retransmissions yet): one SSRC; sequence numbers without a gap or a
// jump; timestamps and picture IDs moving forward; layer changes only at a
// key frame's first packet.
func checkStream(t *testing.T, vi int, got []viewed) {
	t.Helper()
	if len(got) < 50 {
		t.Fatalf("viewer %d: %d packets", vi, len(got))
	}
	switches := 0
	for i := 1; i < len(got); i++ {
		a, b := got[i-1], got[i]
		if b.ssrc != a.ssrc {
			t.Fatalf("viewer %d: SSRC changed from %x to %x at packet %d", vi, a.ssrc, b.ssrc, i)
		}
		if b.seq != a.seq+1 {
			t.Fatalf("viewer %d: sequence %d after %d (packet %d)", vi, b.seq, a.seq, i)
		}
		if d := b.ts - a.ts; int32(d) < 0 {
			t.Fatalf("viewer %d: timestamp went back from %d to %d", vi, a.ts, b.ts)
		}
		if d := (b.pic - a.pic) & 0x7fff; d > 1 {
			t.Fatalf("viewer %d: picture ID %d after %d (packet %d, layers %d→%d)", vi, b.pic, a.pic, i, a.layer, b.layer)
		}
		if b.ts != a.ts && b.pic == a.pic || b.ts == a.ts && b.pic != a.pic {
			t.Fatalf("viewer %d: timestamps and picture IDs disagree at packet %d: %+v %+v", vi, i, a, b)
		}
		if b.layer != a.layer {
			switches++
			if !b.key {
				t.Fatalf("viewer %d: switch from layer %d to %d not on a key frame (packet %d)", vi, a.layer, b.layer, i)
			}
		}
	}
	if switches < 4 {
		t.Fatalf("viewer %d: %d switches seen", vi, switches)
	}
}

// isSubsequence reports whether want appears in got in order, with
// perhaps other elements between.
func isSubsequence(want, got []string) bool {
	i := 0
	for _, g := range got {
		if i < len(want) && g == want[i] {
			i++
		}
	}
	return i == len(want)
}
