//go:build linux

package soak

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/hayate-sfu/hayate/bench"
	"github.com/hayate-sfu/hayate/internal/loadpeer"
	"github.com/hayate-sfu/hayate/internal/poll"
	"github.com/hayate-sfu/hayate/internal/sigclient"
)

// Settings of one soak run; the duration comes from HAYATE_SOAK_DURATION
// (`make soak` sets 4m30s; `make test` runs the default).
const (
	defaultDuration = 20 * time.Second
	workers         = 6
	anchors         = 2 // channels with a publisher and a subscriber that stay
	churnChannels   = 6
	toggleEvery     = 1500 * time.Millisecond
)

func duration(t *testing.T) time.Duration {
	v := os.Getenv("HAYATE_SOAK_DURATION")
	if v == "" {
		return defaultDuration
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 || d > 5*time.Minute {
		t.Fatalf("HAYATE_SOAK_DURATION=%q: want a duration up to 5m", v)
	}
	return d
}

// receiver is the application server: auth, session and event webhooks.
// It answers with Connection: close so the node keeps no idle HTTP
// connection (they would blur the leak check).
type receiver struct {
	srv *httptest.Server

	mu        sync.Mutex
	auth      int
	byType    map[string]int
	created   map[string]int // connection_id → connection.created received
	destroyed map[string]int
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{byType: map[string]int{}, created: map[string]int{}, destroyed: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Connection", "close")
		data, _ := io.ReadAll(req.Body)
		var m struct {
			Type         string `json:"type"`
			ConnectionID string `json:"connection_id"`
		}
		if err := json.Unmarshal(data, &m); err != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		switch req.URL.Path {
		case "/auth":
			r.auth++
			w.Write([]byte(`{"allowed":true}`))
			return
		case "/event":
			switch m.Type {
			case "connection.created":
				r.created[m.ConnectionID]++
			case "connection.destroyed":
				r.destroyed[m.ConnectionID]++
			}
		}
		r.byType[m.Type]++
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) events() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for typ, c := range r.byType {
		if strings.HasPrefix(typ, "connection.") {
			n += c
		}
	}
	return n
}

// modeChange is one ChangeMode call: sent at req, answered at resp.
type modeChange struct {
	req, resp time.Time
	mode      string
}

// attempt is one connect by a churning client.
type attempt struct {
	start, end time.Time
	channel    string
	anchor     bool
	id         string // connection_id when admitted
	outcome    string // admitted, admitted-then-failed, refused, error
	reason     string // close reason of a refusal, or the error
}

// soak is the state of one run.
type soak struct {
	t    *testing.T
	srv  *bench.Server
	recv *receiver

	mu       sync.Mutex
	changes  []modeChange
	attempts []attempt
}

// TestSoak: clients on our own stack join and leave channels at a steady
// rate with media flowing while the mode is toggled through the API. At the
// end: no admission against the mode, every admitted connection reported
// created and destroyed to a real receiver with no event lost, goroutines,
// file descriptors and heap of the node back near their start, and no
// media lost by the connections that stayed.
func TestSoak(t *testing.T) {
	d := duration(t)
	dir := t.TempDir()
	bin, err := bench.Build(dir, "./cmd/hayate", "hayate")
	if err != nil {
		t.Fatal(err)
	}
	recv := newReceiver(t)
	srv, err := bench.Start("hayate", bin, bench.Limits{},
		"--signaling_port=0", "--api_port=0", "--media_port=0", "--turn_udp_listen_port=0", "--turn_tcp_listen_port=0", "--debug_pprof=true",
		"--auth_webhook_url="+recv.srv.URL+"/auth", "--event_webhook_url="+recv.srv.URL+"/event",
		"--session_webhook_url="+recv.srv.URL+"/session",
		// Three of the anchors' consent intervals (bench's clients check
		// every 2 s): a loaded machine does not fail them; vanished
		// clients are closed after it.
		"--ice_connection_state_failed_timeout=6 s")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Kill()
		if t.Failed() {
			t.Logf("node log (tail):\n%s", tail(srv.Log(), 60))
		}
	})
	s := &soak{t: t, srv: srv, recv: recv}

	// Warm up (lazy state: certificates, pools), then the baseline.
	s.oneCall("warm-up")
	poll.Soon(t, "the warm-up's events", func() bool { return recv.events() == 4 })
	base := s.resources()

	// The connections that stay, and their media accounting.
	type anchor struct {
		pub *bench.Publisher
		sub *bench.Subscriber
	}
	var anch []anchor
	for i := range anchors {
		ch := fmt.Sprintf("anchor-%d", i)
		pub, err := bench.StartPublisher(srv.Signaling, ch)
		if err != nil {
			t.Fatal(err)
		}
		sub, err := bench.NewSubscriber(srv.Signaling, ch, pub.Peer.SSRCs["video"], pub.Peer.SSRCs["audio"])
		if err != nil {
			t.Fatal(err)
		}
		anch = append(anch, anchor{pub, sub})
	}
	poll.Soon(t, "anchor media", func() bool {
		for _, a := range anch {
			if a.sub.Packets() == 0 {
				return false
			}
		}
		return true
	})

	// Media accounting that timing cannot blur: the publishers' positions
	// (next sequence numbers) when the churn starts and when it ends; at
	// the end, every packet in between must reach the subscriber (it is
	// waited for, not timed).
	marks := make([]bench.Mark, anchors)
	for i, a := range anch {
		marks[i] = a.pub.Mark()
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	s.changes = append(s.changes, modeChange{mode: "normal"})
	wg.Go(func() { s.toggle(stop) })
	var churn sync.WaitGroup
	for w := range workers {
		churn.Go(func() { s.churn(w, stop) })
	}
	time.Sleep(d) // the soak's length: the load runs meanwhile
	close(stop)
	churn.Wait()
	wg.Wait()
	s.setMode("normal")
	var expected, received uint64
	var lossy []string
	for i, a := range anch {
		end := a.pub.Mark()
		arrived := func() bool { seen, sent := a.sub.Seen(marks[i], end); return seen == sent }
		deadline := time.Now().Add(poll.Patience)
		for !arrived() && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		seen, sent := a.sub.Seen(marks[i], end)
		expected += uint64(sent)
		received += uint64(seen)
		if seen != sent {
			lossy = append(lossy, fmt.Sprintf("anchor-%d: %d of %d", i, seen, sent))
		}
	}

	// The connections that stayed leave; then nothing may be left.
	for _, a := range anch {
		a.pub.Pause()
		if _, err := a.pub.Peer.Disconnect(poll.Patience); err != nil {
			t.Error(err)
		}
		a.pub.Stop()
		if _, err := a.sub.Peer.Disconnect(poll.Patience); err != nil {
			t.Error(err)
		}
		a.sub.Close()
	}
	poll.Soon(t, "no connection left", func() bool {
		st, err := srv.Stats()
		return err == nil && st["total_ongoing_connections"] == 0.0
	})
	if _, err := srv.Stats(); err != nil {
		t.Fatal(err)
	}
	// Webhooks are asynchronous: wait until the receiver has what the
	// node counted (the report says what is missing if it never does).
	deadline := time.Now().Add(poll.Patience)
	for time.Now().Before(deadline) {
		st, err := srv.Stats()
		if err != nil {
			t.Fatal(err)
		}
		recv.mu.Lock()
		done := float64(recv.byType["connection.created"]) == st["total_connection_created"] &&
			float64(recv.byType["connection.destroyed"]) == st["total_connection_destroyed"] &&
			recv.byType["session.created"] == recv.byType["session.destroyed"]
		recv.mu.Unlock()
		if done {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	end := s.settle(base)
	stats, _ := srv.Stats()

	// The checks, then the report.
	r := s.report(stats)
	r.expected, r.received, r.lossy = expected, received, lossy
	r.base, r.end = base, end
	fmt.Print(r.String())
	t.Log("\n" + r.String())
	for _, v := range r.violations {
		t.Errorf("admission against the mode: %s", v)
	}
	for _, p := range r.problems {
		t.Error(p)
	}
	if expected == 0 || received != expected {
		t.Errorf("the connections that stayed lost media: %d of %d packets received; %v", received, expected, lossy)
	}
	if end.goroutines > base.goroutines+2 || end.fds > base.fds+2 || end.heap > base.heap+2<<20 {
		t.Errorf("node resources not back near their start: %+v, start %+v", end, base)
	}
}

// oneCall joins a channel with a publisher and a subscriber and leaves.
func (s *soak) oneCall(channel string) {
	for _, role := range []string{"sendonly", "recvonly"} {
		p, err := dialPeer(s.srv.Signaling, channel, role)
		if err != nil {
			s.t.Fatal(err)
		}
		if _, err := p.Disconnect(poll.Patience); err != nil {
			s.t.Fatal(err)
		}
		p.Close()
	}
}

func dialPeer(url, channel, role string) (*loadpeer.Peer, error) {
	msg := map[string]any{"type": "connect", "role": role, "channel_id": channel, "video": map[string]any{"codec_type": "VP8"}}
	return loadpeer.Dial(context.Background(), loadpeer.Options{URL: url, Connect: msg, ConsentInterval: 500 * time.Millisecond, Timeout: poll.Patience})
}

// toggle cycles the mode through the API until stop.
func (s *soak) toggle(stop chan struct{}) {
	cycle := []string{"block_new_session", "normal", "block_new_connection", "normal"}
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-time.After(toggleEvery):
		}
		s.setMode(cycle[i%len(cycle)])
	}
}

func (s *soak) setMode(m string) {
	req := time.Now()
	body, err := call(s.srv.API, "Sora_20211215.ChangeMode", `{"mode":"`+m+`"}`)
	resp := time.Now()
	if err != nil || !strings.Contains(string(body), m) {
		s.t.Errorf("ChangeMode %s: %s %v", m, body, err)
		return
	}
	s.mu.Lock()
	s.changes = append(s.changes, modeChange{req: req, resp: resp, mode: m})
	s.mu.Unlock()
}

func call(api, target, body string) ([]byte, error) {
	req, _ := http.NewRequest(http.MethodPost, api, strings.NewReader(body))
	req.Header.Set("x-sora-target", target)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

// churn is one client loop: connect to a random channel in a random role,
// stay a moment (publishers send video), leave in one of three ways.
func (s *soak) churn(w int, stop chan struct{}) {
	rng := rand.New(rand.NewPCG(uint64(w), 42))
	roles := []string{"sendrecv", "sendonly", "recvonly"}
	for {
		select {
		case <-stop:
			return
		default:
		}
		a := attempt{anchor: rng.IntN(3) == 0}
		if a.anchor {
			a.channel = fmt.Sprintf("anchor-%d", rng.IntN(anchors))
		} else {
			a.channel = fmt.Sprintf("churn-%d", rng.IntN(churnChannels))
		}
		role := roles[rng.IntN(len(roles))]
		a.start = time.Now()
		p, err := dialPeer(s.srv.Signaling, a.channel, role)
		a.end = time.Now()
		var cl *sigclient.Closed
		var adm *loadpeer.AdmittedError
		switch {
		case err == nil:
			a.outcome, a.id = "admitted", p.Offer.ConnectionID
		case errors.As(err, &adm):
			a.outcome, a.id, a.reason = "admitted-then-failed", adm.ConnectionID, adm.Err.Error()
		case errors.As(err, &cl):
			a.outcome, a.reason = "refused", fmt.Sprintf("%d %s", cl.Code, cl.Reason)
		default:
			a.outcome, a.reason = "error", err.Error()
		}
		s.mu.Lock()
		s.attempts = append(s.attempts, a)
		s.mu.Unlock()
		if err != nil {
			time.Sleep(100 * time.Millisecond) // a refused client retries after a pause, as SDKs do
			continue
		}
		hold := time.Duration(200+rng.IntN(800)) * time.Millisecond
		if role != "recvonly" {
			sendFor(p, hold)
		} else {
			time.Sleep(hold) // the client stays this long: load, not synchronisation
		}
		switch k := rng.IntN(10); {
		case k < 7: // says goodbye
			if _, err := p.Disconnect(poll.Patience); err != nil {
				s.t.Errorf("disconnect: %v", err)
			}
		case k < 9: // drops the WebSocket and the socket
		default: // its network vanishes: the node's liveness timeout ends it
			p.StopMedia()
			if _, ok := p.SignalingClosed(poll.Patience); !ok {
				s.t.Errorf("vanished client %s not closed after the liveness timeout", a.id)
			}
		}
		p.Close()
	}
}

// sendFor sends 30 video packets a second for d.
func sendFor(p *loadpeer.Peer, d time.Duration) {
	payload := make([]byte, 1000)
	tick := time.NewTicker(33 * time.Millisecond)
	defer tick.Stop()
	end := time.After(d)
	for seq := uint16(1); ; seq++ {
		select {
		case <-end:
			return
		case <-tick.C:
		}
		b, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: seq, Timestamp: uint32(seq) * 3000,
			SSRC: p.SSRCs["video"]}, Payload: payload}).Marshal()
		_ = p.SendRTP(b)
	}
}

// resources are the node's goroutines, open files and live heap after a
// forced collection.
type resources struct {
	goroutines, fds int
	heap            float64
}

func (s *soak) resources() resources {
	s.t.Helper()
	// Two forced collections: the first leaves sync.Pool's victim cache.
	for range 2 {
		resp, err := http.Get(s.srv.API + "debug/pprof/heap?gc=1")
		if err != nil {
			s.t.Fatal(err)
		}
		if p := os.Getenv("HAYATE_SOAK_HEAP_PROFILE"); p != "" {
			f, _ := os.Create(p)
			io.Copy(f, resp.Body)
			f.Close()
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	st, err := s.srv.Stats()
	if err != nil {
		s.t.Fatal(err)
	}
	rt := st["runtime"].(map[string]any)
	fds, _ := os.ReadDir(filepath.Join("/proc", fmt.Sprint(s.srv.PID()), "fd"))
	return resources{goroutines: int(rt["goroutines"].(float64)), fds: len(fds), heap: rt["heap_alloc_bytes"].(float64)}
}

// settle waits for the node to forget every transport and address, then
// for its resources to come back near base.
func (s *soak) settle(base resources) resources {
	poll.Soon(s.t, "no transport or address left", func() bool {
		st, err := s.srv.Stats()
		if err != nil {
			return false
		}
		md := st["media"].(map[string]any)
		return md["transports"] == 0.0 && md["addresses"] == 0.0
	})
	var r resources
	deadline := time.Now().Add(poll.Patience)
	for {
		r = s.resources()
		if r.goroutines <= base.goroutines+2 && r.fds <= base.fds+2 && r.heap <= base.heap+2<<20 || time.Now().After(deadline) {
			return r
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// report is the soak's final report.
type report struct {
	duration             time.Duration
	attempts             int
	outcomes             map[string]int
	refusals             map[string]int
	serverRefusals       map[string]any
	created, destroyed   float64
	hooksSent            map[string]float64
	hooksReceived        map[string]int
	auth                 int
	expected, received   uint64
	lossy                []string
	base, end            resources
	violations, problems []string
	changes              int
	mediaDrops           string
}

func (s *soak) report(stats map[string]any) *report {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := &report{outcomes: map[string]int{}, refusals: map[string]int{}, changes: len(s.changes) - 1, attempts: len(s.attempts)}
	if len(s.attempts) > 0 {
		r.duration = s.attempts[len(s.attempts)-1].end.Sub(s.attempts[0].start)
	}
	r.serverRefusals, _ = stats["refused_connections"].(map[string]any)
	if md, ok := stats["media"].(map[string]any); ok {
		r.mediaDrops = fmt.Sprintf("dropped %v, send errors %v", md["dropped"], md["total_send_errors"])
	}
	r.created, r.destroyed = stats["total_connection_created"].(float64), stats["total_connection_destroyed"].(float64)
	r.hooksSent = map[string]float64{}
	for _, k := range []string{"successful", "failed", "ignored"} {
		for _, h := range []string{"event", "session"} {
			r.hooksSent[k+"_"+h] = stats["total_"+k+"_"+h+"_webhook"].(float64)
		}
	}
	s.recv.mu.Lock()
	r.hooksReceived = map[string]int{}
	for k, v := range s.recv.byType {
		r.hooksReceived[k] = v
	}
	r.auth = s.recv.auth
	created, destroyed := s.recv.created, s.recv.destroyed
	s.recv.mu.Unlock()

	for _, a := range s.attempts {
		r.outcomes[a.outcome]++
		if a.outcome == "refused" {
			r.refusals[a.reason]++
		}
		if a.outcome == "error" || a.outcome == "admitted-then-failed" {
			r.problems = append(r.problems, fmt.Sprintf("connect to %s: %s %s", a.channel, a.outcome, a.reason))
		}
		if a.outcome == "admitted" && (created[a.id] != 1 || destroyed[a.id] != 1) {
			r.problems = append(r.problems, fmt.Sprintf("connection %s: %d connection.created, %d connection.destroyed received",
				a.id, created[a.id], destroyed[a.id]))
		}
		if m, ok := modeDuring(s.changes, a.start, a.end); ok {
			admitted := a.outcome != "refused" && a.outcome != "error"
			switch {
			case m == "block_new_connection" && admitted:
				r.violations = append(r.violations, fmt.Sprintf("%s admitted to %s in block_new_connection", a.id, a.channel))
			case m == "normal" && strings.HasPrefix(a.reason, "4503"):
				r.violations = append(r.violations, fmt.Sprintf("connect to %s refused (%s) in normal", a.channel, a.reason))
			case m == "block_new_session" && a.anchor && !admitted:
				r.violations = append(r.violations, fmt.Sprintf("connect to the live %s refused (%s) in block_new_session", a.channel, a.reason))
			case m == "block_new_connection" && a.reason != "4503 BLOCKED-NEW-CONNECTION":
				r.violations = append(r.violations, fmt.Sprintf("connect in block_new_connection ended with %q", a.reason))
			}
		}
	}
	for id, n := range created {
		if destroyed[id] != n {
			r.problems = append(r.problems, fmt.Sprintf("connection %s: created %d times, destroyed %d times", id, n, destroyed[id]))
		}
	}
	// Every event the node sent arrived; none failed or was dropped.
	evReceived := r.hooksReceived["connection.created"] + r.hooksReceived["connection.destroyed"] + r.hooksReceived["connection.failed"]
	if float64(evReceived) != r.hooksSent["successful_event"] || r.hooksSent["failed_event"] != 0 || r.hooksSent["ignored_event"] != 0 {
		r.problems = append(r.problems, fmt.Sprintf("event webhooks: node sent %v, receiver got %d", r.hooksSent, evReceived))
	}
	if float64(r.hooksReceived["connection.created"]) != r.created || float64(r.hooksReceived["connection.destroyed"]) != r.destroyed {
		r.problems = append(r.problems, fmt.Sprintf("node counts %v created, %v destroyed; receiver got %d, %d",
			r.created, r.destroyed, r.hooksReceived["connection.created"], r.hooksReceived["connection.destroyed"]))
	}
	sessions := r.hooksReceived["session.created"] + r.hooksReceived["session.destroyed"]
	if float64(sessions) != r.hooksSent["successful_session"] || r.hooksReceived["session.created"] != r.hooksReceived["session.destroyed"] {
		r.problems = append(r.problems, fmt.Sprintf("session webhooks: node sent %v, receiver got %d", r.hooksSent, sessions))
	}
	// Refusals seen by clients are the node's, reason by reason.
	for _, reason := range []string{"BLOCKED-NEW-CONNECTION", "BLOCKED-NEW-SESSION"} {
		if got := r.serverRefusals[reason]; got != float64(r.refusals["4503 "+reason]) {
			r.problems = append(r.problems, fmt.Sprintf("%s: node counts %v, clients saw %d", reason, got, r.refusals["4503 "+reason]))
		}
	}
	if r.hooksReceived["connection.failed"] != r.outcomes["refused"] {
		r.problems = append(r.problems, fmt.Sprintf("%d connection.failed for %d refusals", r.hooksReceived["connection.failed"], r.outcomes["refused"]))
	}
	return r
}

// modeDuring returns the mode in force during [start, end] if no change
// was in flight then.
func modeDuring(changes []modeChange, start, end time.Time) (string, bool) {
	i := sort.Search(len(changes), func(i int) bool { return !changes[i].resp.Before(start) }) - 1
	if i < 0 {
		return "", false
	}
	if i+1 < len(changes) && !changes[i+1].req.After(end) {
		return "", false
	}
	return changes[i].mode, true
}

func (r *report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "== soak report: %v of churn, %d mode changes, %d workers\n", r.duration.Round(time.Second), r.changes, workers)
	fmt.Fprintf(&b, "connects: %d (%.1f/s)\n", r.attempts, float64(r.attempts)/max(r.duration.Seconds(), 1))
	keys := func(m map[string]int) []string {
		var k []string
		for s := range m {
			k = append(k, s)
		}
		sort.Strings(k)
		return k
	}
	for _, k := range keys(r.outcomes) {
		fmt.Fprintf(&b, "  %-22s %d\n", k, r.outcomes[k])
	}
	fmt.Fprintf(&b, "refusals by reason (clients):\n")
	for _, k := range keys(r.refusals) {
		fmt.Fprintf(&b, "  %-34s %d\n", k, r.refusals[k])
	}
	fmt.Fprintf(&b, "refusals by reason (node): %v\n", r.serverRefusals)
	fmt.Fprintf(&b, "auth webhook calls: %d\n", r.auth)
	fmt.Fprintf(&b, "node: %v connections created, %v destroyed\n", r.created, r.destroyed)
	fmt.Fprintf(&b, "webhooks sent by the node: %v\n", r.hooksSent)
	fmt.Fprintf(&b, "webhooks received:\n")
	for _, k := range keys(r.hooksReceived) {
		fmt.Fprintf(&b, "  %-22s %d\n", k, r.hooksReceived[k])
	}
	fmt.Fprintf(&b, "anchors' media: %d of %d packets received (loss %.4f%%), lossy anchors: %d\n",
		r.received, r.expected, 100*(1-float64(r.received)/float64(max(r.expected, 1))), len(r.lossy))
	fmt.Fprintf(&b, "node media path: %s\n", r.mediaDrops)
	fmt.Fprintf(&b, "node resources, start → end: goroutines %d → %d, fds %d → %d, live heap %.1f → %.1f MiB\n",
		r.base.goroutines, r.end.goroutines, r.base.fds, r.end.fds, r.base.heap/(1<<20), r.end.heap/(1<<20))
	fmt.Fprintf(&b, "admission against the mode: %d; other problems: %d\n", len(r.violations), len(r.problems))
	return b.String()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
