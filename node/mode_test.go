package node

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hayate-sfu/hayate/config"
	"github.com/hayate-sfu/hayate/mode"
	"github.com/hayate-sfu/hayate/sigclient"
)

// TestModeMatrix: for each mode × {channel with a live session, idle
// channel}, a real WebSocket client is either offered or refused with the
// exact close code and reason.
func TestModeMatrix(t *testing.T) {
	n := startNode(t, nil)
	join(t, n, "live", "sendrecv") // keeps channel "live" live
	cases := []struct {
		mode    string
		channel string
		code    int
		reason  string
	}{
		{"normal", "live", 0, ""},
		{"normal", "idle-1", 0, ""},
		{"block_new_session", "live", 0, ""},
		{"block_new_session", "idle-2", 4503, "BLOCKED-NEW-SESSION"},
		{"block_new_connection", "live", 4503, "BLOCKED-NEW-CONNECTION"},
		{"block_new_connection", "idle-3", 4503, "BLOCKED-NEW-CONNECTION"},
	}
	for _, c := range cases {
		t.Run(c.mode+"/"+c.channel, func(t *testing.T) {
			setMode(t, n, c.mode)
			cl := dial(t, n)
			o, err := cl.Connect(connectMsg(c.channel, "sendrecv"), soon())
			if c.code == 0 {
				if err != nil || o.Type != "offer" {
					t.Fatalf("want offer, got %v %v", o, err)
				}
				if o.ChannelID != c.channel || len(o.ConnectionID) != 26 || len(o.SessionID) != 26 {
					t.Fatalf("offer ids: %+v", o)
				}
				return
			}
			expectClosed(t, err, c.code, c.reason)
		})
	}
	setMode(t, n, "normal")
	// Refusals are counted by reason in GetStatsReport.
	_, stats, _ := apiCall(t, n, "Sora_20171010.GetStatsReport", "")
	refused := stats["refused_connections"].(map[string]any)
	if refused["BLOCKED-NEW-SESSION"] != 1.0 || refused["BLOCKED-NEW-CONNECTION"] != 2.0 {
		t.Fatalf("refused_connections = %v", refused)
	}
}

// TestBlockNewSessionRace: connects racing to one idle channel under
// block_new_session are all refused: the live-session check and the join
// are one step.
func TestBlockNewSessionRace(t *testing.T) {
	n := startNode(t, nil)
	setMode(t, n, "block_new_session")
	var wg sync.WaitGroup
	var admitted atomic.Int32
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := dial(t, n)
			_, err := c.Connect(connectMsg(fmt.Sprintf("race-%d", i%2), "sendonly"), soon())
			if err == nil {
				admitted.Add(1)
			}
		}()
	}
	wg.Wait()
	if admitted.Load() != 0 {
		t.Fatalf("%d connects admitted to idle channels under block_new_session", admitted.Load())
	}
}

// TestAdmissionAgainstModeChanges: 64 goroutines connect (and disconnect)
// to a mix of live and idle channels while another goroutine toggles the
// mode through the HTTP API. For every connect, the outcome must agree with
// a mode that could have been in force while it ran: the mode whose
// ChangeMode had been answered before the connect started, or a later one
// requested before its outcome arrived. No connect that starts after a
// ChangeMode response is admitted (or refused) against that mode.
func TestAdmissionAgainstModeChanges(t *testing.T) {
	const goroutines = 64
	total := 10240
	if testing.Short() {
		total = 1024
	}
	n := startNode(t, func(c *config.Config) { c.SignalingNotify = false })
	liveChannels := []string{"live-0", "live-1", "live-2", "live-3"}
	for _, ch := range liveChannels {
		join(t, n, ch, "sendrecv") // anchors: these sessions stay live throughout
	}
	base := goroutineBaseline()

	type change struct {
		m        mode.Mode
		req, ack time.Time
	}
	var (
		chMu    sync.Mutex
		changes = []change{{m: mode.Normal}}
	)
	stop := make(chan struct{})
	togglerDone := make(chan struct{})
	go func() {
		defer close(togglerDone)
		modes := []mode.Mode{mode.Normal, mode.BlockNewSession, mode.BlockNewConnection}
		for {
			select {
			case <-stop:
				return
			default:
			}
			m := modes[rand.IntN(3)]
			chMu.Lock()
			changes = append(changes, change{m: m, req: time.Now()})
			idx := len(changes) - 1
			chMu.Unlock()
			if st, body, raw := apiCall(t, n, "Sora_20211215.ChangeMode", `{"mode":"`+m.String()+`"}`); st != 200 || body["mode"] != m.String() {
				t.Errorf("ChangeMode %v: %d %s", m, st, raw)
				return
			}
			chMu.Lock()
			changes[idx].ack = time.Now()
			chMu.Unlock()
			time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
		}
	}()

	type outcome struct {
		live          bool
		admitted      bool
		reason        string
		start, finish time.Time
	}
	results := make([][]outcome, goroutines)
	var next atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)); i <= total; i = int(next.Add(1)) {
				live := i%2 == 0
				channel := fmt.Sprintf("idle-%d-%d", g, i) // never used twice: idle when connected
				if live {
					channel = liveChannels[i%len(liveChannels)]
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				c, err := sigclient.Dial(ctx, n.signalingURL())
				cancel()
				if err != nil {
					t.Errorf("dial: %v", err)
					return
				}
				start := time.Now()
				o, err := c.Connect(connectMsg(channel, "sendrecv"), time.Now().Add(10*time.Second))
				res := outcome{live: live, start: start, finish: time.Now()}
				var cl *sigclient.Closed
				switch {
				case err == nil && o.Type == "offer":
					res.admitted = true
					if cl, err := c.Disconnect(time.Now().Add(10 * time.Second)); err != nil || cl.Code != 1000 {
						t.Errorf("disconnect: %v %v", cl, err)
					}
				case errors.As(err, &cl) && cl.Code == 4503:
					res.reason = cl.Reason
				default:
					t.Errorf("connect: unexpected %v %v", o, err)
				}
				c.Close()
				results[g] = append(results[g], res)
			}
		}()
	}
	wg.Wait()
	close(stop)
	<-togglerDone

	// allowed reports whether mode m admits (or refuses with reason) a connect.
	decide := func(m mode.Mode, live bool) (bool, string) {
		r := mode.Admit(m, live)
		return r == mode.RefuseNone, r.Reason()
	}
	sort.Slice(changes[1:], func(i, j int) bool { return changes[1+i].req.Before(changes[1+j].req) })
	violations, count, admittedN := 0, 0, 0
	for _, rs := range results {
		for _, r := range rs {
			count++
			if r.admitted {
				admittedN++
			}
			// Modes possibly in force during [start, finish]: the last one
			// acknowledged before start, and any requested before finish.
			var possible []mode.Mode
			last := 0
			for i, c := range changes {
				if i == 0 || (!c.ack.IsZero() && c.ack.Before(r.start)) {
					last = i
				}
			}
			possible = append(possible, changes[last].m)
			for i := last + 1; i < len(changes); i++ {
				if changes[i].req.Before(r.finish) {
					possible = append(possible, changes[i].m)
				}
			}
			ok := false
			for _, m := range possible {
				adm, reason := decide(m, r.live)
				if adm == r.admitted && (adm || reason == r.reason) {
					ok = true
				}
			}
			if !ok {
				violations++
				if violations < 10 {
					t.Errorf("violation: live=%v admitted=%v reason=%q, modes possible %v", r.live, r.admitted, r.reason, possible)
				}
			}
		}
	}
	t.Logf("%d connects (%d admitted), %d mode changes, %d violations", count, admittedN, len(changes)-1, violations)
	if count < total {
		t.Fatalf("only %d connects ran", count)
	}
	if violations != 0 {
		t.Fatalf("%d violations", violations)
	}
	if len(changes) < 10 {
		t.Fatalf("only %d mode changes: the test did not race", len(changes))
	}
	setMode(t, n, "normal")
	waitFor(t, "only the anchors left", 10*time.Second, func() bool { return n.hub.Connections() == len(liveChannels) })
	checkGoroutines(t, base, n)
}
