package node

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"

	"github.com/hayate-sfu/hayate/config"
	"github.com/hayate-sfu/hayate/internal/impair"
)

// impairedNode starts a node whose offers send clients through an
// impairment relay (media_advertised_address): the relay is started
// first, the node advertises it, then the relay forwards to the node.
func impairedNode(t *testing.T, edit func(*config.Config)) (*Node, *impair.Relay) {
	t.Helper()
	relay, err := impair.New(netip.AddrPort{}, 12)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { relay.Close() })
	n := startNode(t, func(c *config.Config) {
		c.MediaAdvertisedAddress = relay.Addr()
		if edit != nil {
			edit(c)
		}
	})
	relay.SetServer(n.MediaAddr())
	return n, relay
}

// twccAPI is a pion API whose clients send transport-wide congestion
// feedback and NACKs, with RTX (pion's default interceptors).
func twccAPI(t *testing.T) *webrtc.API {
	m := &webrtc.MediaEngine{}
	must(t, m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeVP8, ClockRate: 90000,
		RTCPFeedback: []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}}}, PayloadType: 96}, webrtc.RTPCodecTypeVideo))
	must(t, m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeRTX, ClockRate: 90000, SDPFmtpLine: "apt=96"}, PayloadType: 97}, webrtc.RTPCodecTypeVideo))
	must(t, m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, PayloadType: 111}, webrtc.RTPCodecTypeAudio))
	i := &interceptor.Registry{}
	must(t, webrtc.RegisterDefaultInterceptors(m, i))
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(pionSettings()), webrtc.WithInterceptorRegistry(i))
}

// frameCompleteness is the share of frames in [from, to) the viewer got
// whole (every packet of the frame, in any one layer).
func frameCompleteness(got []viewed, from, to uint32) float64 {
	type key struct {
		frame uint32
		layer int
	}
	have := map[key]map[int]bool{}
	count := map[key]int{}
	for _, p := range got {
		if p.frame < from || p.frame >= to {
			continue
		}
		k := key{p.frame, p.layer}
		if have[k] == nil {
			have[k] = map[int]bool{}
		}
		have[k][p.index] = true
		count[k] = p.count
	}
	whole := map[uint32]bool{}
	for k, idx := range have {
		if len(idx) == count[k] {
			whole[k.frame] = true
		}
	}
	return float64(len(whole)) / float64(to-from)
}

// timeline records a viewer's layer and estimate over time.
type timeline struct {
	mu    sync.Mutex
	start time.Time
	lines []string
	phase string
}

func (tl *timeline) sample(n *Node, viewer string, flow *impair.Flow, pub *simPublisher) {
	est, layers, _ := n.Media().Congestion(viewer)
	layer := -1
	for _, l := range layers {
		layer = l
	}
	d := flow.Down()
	tl.mu.Lock()
	tl.lines = append(tl.lines, fmt.Sprintf("%.1f,%d,%d,%d,%d,%s", time.Since(tl.start).Seconds(), est, layer, d.Bytes, d.QueueDrops+d.Lost, tl.phase))
	tl.mu.Unlock()
}

func (tl *timeline) setPhase(p string) {
	tl.mu.Lock()
	tl.phase = p
	tl.mu.Unlock()
}

// TestSimulcastImpairedLink: a pion viewer (transport feedback, NACKs,
// RTX) of a simulcast publisher, through an impairment relay. With a good
// link it is moved up to r2; at 5% random loss and at 2% burst loss it
// still gets at least 95% of the frames whole; capped below r2 it is moved
// to a layer that fits and loses under 2% on its link after that; when the
// cap lifts it is back on r2. The times to move down and up (targets 5 s
// and 15 s) are logged, not asserted. With
// HAYATE_TIMELINE=file the layer and estimate over time are written there
// (CSV: seconds, estimate bit/s, layer, bytes delivered, link drops, phase)
// for docs/simulcast-timeline.png.
func TestSimulcastImpairedLink(t *testing.T) {
	n, relay := impairedNode(t, func(c *config.Config) { c.ICEConnectionStateFailedTimeout = patience })
	const channel = "impaired"
	pub := newSimPublisher(t, n, channel, heavyLayers)
	v := newViewer(t, n, twccAPI(t), channel, "")
	v.waitConnected(n)
	// The publisher's flow came first, the viewer's second.
	flows := relay.Flows()
	if len(flows) != 2 {
		t.Fatalf("%d relay flows, want the publisher's and the viewer's", len(flows))
	}
	flow := flows[1]
	layer := func() int {
		_, layers, _ := n.Media().Congestion(v.id)
		for _, l := range layers {
			return l
		}
		return -1
	}
	tl := &timeline{start: time.Now(), phase: "good"}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
				tl.sample(n, v.id, flow, pub)
			}
		}
	}()
	defer func() {
		close(stop)
		wg.Wait()
		if path := os.Getenv("HAYATE_TIMELINE"); path != "" {
			must(t, os.WriteFile(path, []byte("t,estimate,layer,bytes,drops,phase\n"+strings.Join(tl.lines, "\n")+"\n"), 0o644))
		}
	}()
	waitFor(t, "the viewer on r2 over a good link", patience, func() bool { return layer() == 2 })

	// Loss: the share of whole frames over 6 s, counted 1 s after the
	// window so that repairs have come.
	for _, c := range []struct {
		name string
		p    impair.Profile
	}{
		{"5% random loss", impair.Profile{Loss: 0.05}},
		{"2% burst loss", impair.Profile{BurstLoss: 0.02, BurstLen: 4}},
	} {
		tl.setPhase(c.name)
		d0 := flow.Down()
		flow.SetDown(c.p)
		from := pub.frames.Load() + 15
		time.Sleep(6 * time.Second)
		to := pub.frames.Load()
		time.Sleep(time.Second)
		share := frameCompleteness(v.snapshot(), from, to)
		d := flow.Down()
		t.Logf("%s: %.1f%% of %d frames whole; link lost %d of %d; layer %d", c.name, 100*share, to-from, d.Lost-d0.Lost, d.Offered-d0.Offered, layer())
		if share < 0.95 {
			t.Errorf("%s: %.1f%% of frames whole", c.name, 100*share)
		}
		flow.SetDown(impair.Profile{})
	}

	// A cap below r2 (1.6 Mbit/s): 1 Mbit/s with a 250 ms queue.
	tl.setPhase("clean")
	waitFor(t, "the viewer back on r2", patience, func() bool { return layer() == 2 })
	tl.setPhase("1 Mbit/s cap")
	capAt := time.Now()
	flow.SetDown(impair.Profile{Rate: 1_000_000, Queue: 31_250})
	waitFor(t, "the viewer moved below r2", 2*patience, func() bool { return layer() < 2 })
	down := time.Since(capAt)
	time.Sleep(2 * time.Second)
	before := flow.Down()
	ms0 := n.Media().Stats()
	time.Sleep(8 * time.Second)
	after := flow.Down()
	ms1 := n.Media().Stats()
	t.Logf("capped, measured window: %d probe packets, %d retransmissions, %d NACKs, %d forwarded", ms1.ProbePackets-ms0.ProbePackets, ms1.Retransmitted-ms0.Retransmitted, ms1.NACKsReceived-ms0.NACKsReceived, ms1.Forwarded-ms0.Forwarded)
	drops := after.QueueDrops + after.Lost - before.QueueDrops - before.Lost
	offered := after.Offered - before.Offered
	// The times are measurements (the targets: 5 s down, 15 s back
	// up), logged rather than bounded: a loaded machine stretches them.
	t.Logf("capped: moved to layer %d after %v (target 5 s); then %d of %d packets dropped on the link", layer(), down, drops, offered)
	if ms1.LayerSwitches == 0 {
		t.Errorf("no layer switch counted in the stats")
	}
	if float64(drops) > 0.02*float64(offered) {
		t.Errorf("under the cap the link dropped %d of %d packets", drops, offered)
	}
	if layer() == 2 {
		t.Errorf("back on r2 under the cap")
	}
	tl.setPhase("cap lifted")
	liftAt := time.Now()
	flow.SetDown(impair.Profile{})
	// The way back up waits out the estimator's calm and probes: under
	// -race on a loaded machine it has taken over 30 s.
	waitFor(t, "the viewer back on r2", 3*patience, func() bool { return layer() == 2 })
	up := time.Since(liftAt)
	t.Logf("cap lifted: back on r2 after %v (target 15 s)", up)
	time.Sleep(2 * time.Second)
}

// TestICEConnectionStateDurations: ice_connection_state in the event
// webhooks. checking is the time from the offer to the peer's first ICE
// check, fixed once it came; disconnected counts a silence of the peer
// longer than two thirds of the failed timeout (here 6 of 9 s), from the
// threshold to its return: a publisher whose uplink is cut until the node
// sees it disconnected, then restored, stays connected and its
// connection.destroyed reports that stretch.
func TestICEConnectionStateDurations(t *testing.T) {
	ev := newHookReceiver(t)
	n, relay := impairedNode(t, func(c *config.Config) {
		c.EventWebhookURL = ev.url()
		c.ICEConnectionStateFailedTimeout = 9 * time.Second
	})
	pub := newSimPublisher(t, n, "ice", tinyLayers)
	id := pub.peer.Offer.ConnectionID
	durations := func() (time.Duration, time.Duration) {
		ck, dc, ok := n.Media().ICEDurations(id)
		if !ok {
			t.Fatal("the publisher's transport is gone")
		}
		return ck, dc
	}
	waitFor(t, "connection.created", patience, func() bool { return ev.count("connection.created") == 1 })
	checking, disconnected := durations()
	if checking <= 0 || disconnected != 0 {
		t.Fatalf("connected: checking %v, disconnected %v", checking, disconnected)
	}
	cut := time.Now()
	for _, f := range relay.Flows() {
		f.SetUp(impair.Profile{Loss: 1})
	}
	waitFor(t, "the node to see the publisher disconnected", patience, func() bool { _, dc := durations(); return dc > 0 })
	for _, f := range relay.Flows() {
		f.SetUp(impair.Profile{})
	}
	if ck, _ := durations(); ck != checking {
		t.Fatalf("checking moved from %v to %v after the first check", checking, ck)
	}
	// Back: the stretch ends (the total stops growing) without a failure.
	waitFor(t, "the disconnected stretch to end", patience, func() bool {
		_, a := durations()
		_, b := durations()
		return a == b
	})
	if ev.count("connection.destroyed") != 0 {
		t.Fatalf("the publisher ended: %v", ev.ofType("connection.destroyed")[0])
	}
	pub.peer.Close()
	lifetime := time.Since(cut)
	waitFor(t, "connection.destroyed", patience, func() bool { return ev.count("connection.destroyed") == 1 })
	d := ev.ofType("connection.destroyed")[0]["data"].(map[string]any)
	st := d["ice_connection_state"].(map[string]any)
	dms := st["total_disconnected_duration_ms"].(float64)
	if d["reason"] == "ICE-CONNECTION-STATE-FAILED" || dms <= 0 || time.Duration(dms)*time.Millisecond > lifetime ||
		st["total_checking_duration_ms"].(float64) != float64(checking.Milliseconds()) {
		t.Fatalf("connection.destroyed data %v (checking %v, cut %v before the end)", d, checking, lifetime)
	}
}
