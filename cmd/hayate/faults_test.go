package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/hayate-sfu/hayate/internal/loadpeer"
	"github.com/hayate-sfu/hayate/internal/poll"
)

// mediaCall is a publisher and a subscriber in one channel of a running
// binary, on our own stack (ICE, DTLS, SRTP).
type mediaCall struct {
	pub, sub *loadpeer.Peer
	ssrc     uint32
	seq      uint16

	mu   sync.Mutex
	seen map[uint16]bool
}

func newMediaCall(t *testing.T, url, channel string) *mediaCall {
	t.Helper()
	c := &mediaCall{seen: map[uint16]bool{}, seq: 1000}
	dial := func(role string, onRTP func([]byte)) *loadpeer.Peer {
		msg := map[string]any{"type": "connect", "role": role, "channel_id": channel, "video": map[string]any{"codec_type": "VP8"}}
		ctx, cancel := context.WithTimeout(context.Background(), poll.Patience)
		defer cancel()
		p, err := loadpeer.Dial(ctx, loadpeer.Options{URL: url, Connect: msg, OnRTP: onRTP, ConsentInterval: 200 * time.Millisecond})
		if err != nil {
			t.Fatalf("%s: %v", role, err)
		}
		t.Cleanup(p.Close)
		return p
	}
	c.sub = dial("recvonly", func(b []byte) {
		var h rtp.Header
		if _, err := h.Unmarshal(b); err != nil {
			return
		}
		c.mu.Lock()
		if h.SSRC == c.ssrc {
			c.seen[h.SequenceNumber] = true
		}
		c.mu.Unlock()
	})
	c.pub = dial("sendonly", nil)
	c.mu.Lock()
	c.ssrc = c.pub.SSRCs["video"]
	c.mu.Unlock()
	// The subscriber is fed only once it has answered the re-offer that
	// announced the publisher's track: packets before that are dropped.
	poll.Soon(t, "media at the subscriber", func() bool { return c.sendWait(t, 1, 100*time.Millisecond) == 1 })
	return c
}

// send sends n video packets and returns how many of them arrived.
func (c *mediaCall) send(t *testing.T, n int) int { return c.sendWait(t, n, poll.Patience) }

// sendWait sends n video packets and returns how many of them arrived
// within wait.
func (c *mediaCall) sendWait(t *testing.T, n int, wait time.Duration) int {
	t.Helper()
	first := c.seq + 1
	for range n {
		c.seq++
		b, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: c.seq,
			Timestamp: uint32(c.seq) * 3000, SSRC: c.ssrc}, Payload: make([]byte, 900)}).Marshal()
		if err := c.pub.SendRTP(b); err != nil {
			t.Fatal(err)
		}
	}
	count := func() int {
		c.mu.Lock()
		defer c.mu.Unlock()
		got := 0
		for s := first; s != c.seq+1; s++ {
			if c.seen[s] {
				got++
			}
		}
		return got
	}
	deadline := time.Now().Add(wait)
	for count() < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	return count()
}

// TestSIGTERMDrainWithMedia: during the drain, new connects are refused
// while the live call's media keeps flowing without loss; when the call
// leaves, the node exits 0.
func TestSIGTERMDrainWithMedia(t *testing.T) {
	p := start(t, freeArgs("--drain_timeout=30 s")...)
	call := newMediaCall(t, p.signaling, "drain-media")
	p.cmd.Process.Signal(syscall.SIGTERM)
	expectRefusedAtOnce(t, p, "drain-media")
	const rounds, per = 20, 50
	for i := range rounds {
		if got := call.send(t, per); got != per {
			t.Fatalf("round %d of the drain: %d of %d packets arrived", i, got, per)
		}
	}
	select {
	case <-p.done:
		t.Fatal("exited with the call live")
	default:
	}
	for _, peer := range []*loadpeer.Peer{call.pub, call.sub} {
		if cl, err := peer.Disconnect(poll.Patience); err != nil || cl.Code != 1000 {
			t.Fatalf("disconnect: %v %v", cl, err)
		}
	}
	if code := p.wait(t, poll.Patience); code != 0 {
		t.Fatalf("exit code %d", code)
	}
}

// TestSIGKILLRestart: a node killed mid-call restarts at once on the same
// ports, clean (no session of the old process), and serves a new call.
//
// The ports are fixed, in a network namespace of the test's own: ports
// found free (listen on port 0, close) could be taken by anything else on
// the machine before the node binds them, or between the kill and the
// restart; 5000, 3000 and 5004 are outside the kernel's range for port 0,
// so nothing in the namespace takes them either.
func TestSIGKILLRestart(t *testing.T) {
	if !isolated(t) {
		return
	}
	sig, api, media := 5000, 3000, 5004
	args := []string{fmt.Sprintf("--signaling_port=%d", sig), fmt.Sprintf("--api_port=%d", api),
		fmt.Sprintf("--media_port=%d", media), "--turn_udp_listen_port=0", "--turn_tcp_listen_port=0", "--ice_connection_state_failed_timeout=5 min"}
	p := start(t, args...)
	old := newMediaCall(t, p.signaling, "room")
	p.cmd.Process.Kill()
	<-p.done
	// The old clients see their signaling go.
	if _, ok := old.sub.SignalingClosed(poll.Patience); !ok {
		t.Fatal("the old subscriber's WebSocket survived the kill")
	}
	p2 := start(t, args...)
	if p2.signaling != p.signaling || p2.api != p.api {
		t.Fatalf("restarted on %s %s, want %s %s", p2.signaling, p2.api, p.signaling, p.api)
	}
	var out bytes.Buffer
	if code := ctl([]string{"-api", p2.api, "mode", "get"}, &out, &out); code != 0 || strings.TrimSpace(out.String()) != "normal" {
		t.Fatalf("mode after restart: %d %s", code, out.String())
	}
	data, err := call(p2.api, "", "Sora_20201013.ListConnections", nil, poll.Patience)
	if err != nil || strings.TrimSpace(string(data)) != "[]" {
		t.Fatalf("connections after restart: %s %v", data, err)
	}
	c := newMediaCall(t, p2.signaling, "room")
	if got := c.send(t, 50); got != 50 {
		t.Fatalf("after restart %d of 50 packets arrived", got)
	}
}

// TestCtlToken: with api_token, ctl needs -token (or HAYATE_API_TOKEN).
func TestCtlToken(t *testing.T) {
	p := start(t, freeArgs("--api_token=tok-123")...)
	var out, errOut bytes.Buffer
	if code := ctl([]string{"-api", p.api, "mode", "get"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "UNAUTHORIZED") {
		t.Fatalf("without token: %d %q", code, errOut.String())
	}
	out.Reset()
	if code := ctl([]string{"-api", p.api, "-token", "tok-123", "mode", "set", "block_new_session"}, &out, &errOut); code != 0 ||
		strings.TrimSpace(out.String()) != "block_new_session" {
		t.Fatalf("with -token: %d %q %q", code, out.String(), errOut.String())
	}
	t.Setenv("HAYATE_API_TOKEN", "tok-123")
	out.Reset()
	if code := ctl([]string{"-api", p.api, "mode", "get"}, &out, &errOut); code != 0 || strings.TrimSpace(out.String()) != "block_new_session" {
		t.Fatalf("with HAYATE_API_TOKEN: %d %q", code, out.String())
	}
}
