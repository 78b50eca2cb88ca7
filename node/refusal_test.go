package node

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/hayate-sfu/hayate/config"
	"github.com/hayate-sfu/hayate/internal/sigclient"
	"github.com/hayate-sfu/hayate/mode"
)

// maskedFrame is one masked client text (or other) frame on the wire.
func maskedFrame(op ws.OpCode, payload []byte) []byte {
	var b bytes.Buffer
	_ = ws.WriteFrame(&b, ws.MaskFrameInPlace(ws.NewFrame(op, true, append([]byte(nil), payload...))))
	return b.Bytes()
}

// stillWriting is what a client keeps sending after the message that gets
// it refused: 256 more messages of 4 KiB, far more than the socket buffers
// hold, so the client is still writing when the server decides. Closing
// the socket with them unread makes the kernel reset the connection: the
// client's write fails, and it never reads the close (a browser reports
// 1006).
var stillWriting = func() []byte {
	var b []byte
	for range 256 {
		b = append(b, maskedFrame(ws.OpText, bytes.Repeat([]byte(" "), 4096))...)
	}
	return b
}()

func connectJSON(channel string, extra map[string]any) []byte {
	m := connectMsg(channel, "sendrecv")
	for k, v := range extra {
		m[k] = v
	}
	b, _ := json.Marshal(m)
	return b
}

// TestEveryRefusalReachesTheClient: for every kind of refusal, 100 of 100
// clients that are still writing when they are refused read the close
// frame with its documented code and reason (the server drains what they
// send before it closes the socket).
func TestEveryRefusalReachesTheClient(t *testing.T) {
	const attempts = 100
	const limit = 256 << 10
	plain := startNode(t, func(c *config.Config) { c.MaxSignalingMessageBytes = limit })
	blocked := startNode(t, func(c *config.Config) { c.InitialMode = mode.BlockNewSession })
	denier := newHookReceiver(t)
	denier.respond = func(w http.ResponseWriter, _ map[string]any) {
		w.Write([]byte(`{"allowed":false,"reason":"NOT-ON-THE-LIST"}`))
	}
	denied := startNode(t, func(c *config.Config) { c.AuthWebhookURL = denier.url() })
	// Its one connection must stay through the whole test: it reads
	// nothing, so it answers no ping.
	full := startNode(t, func(c *config.Config) { c.MaxConnections = 1; c.SignalingPongTimeout = time.Hour })
	join(t, full, "occupied", "sendrecv")
	// The pending socket must stay pending through the whole test.
	pendingFull := startNode(t, func(c *config.Config) { c.MaxPendingConnections = 1; c.ConnectTimeout = time.Hour })
	dial(t, pendingFull) // one WebSocket that never sends connect
	waitFor(t, "one pending socket", patience, func() bool { return pendingFull.hub.Pending() == 1 })

	oversize := connectJSON("c", map[string]any{"metadata": strings.Repeat("m", limit+1<<20)})
	cases := []struct {
		name   string
		n      *Node
		send   []byte
		code   int
		reason string
	}{
		// The oversized message is itself what the client is still writing.
		{"message over max_signaling_message_bytes", plain, maskedFrame(ws.OpText, oversize), 4400, "MESSAGE-TOO-LARGE"},
		{"message over the limit after admission", plain, append(maskedFrame(ws.OpText, connectJSON("admitted", nil)), maskedFrame(ws.OpText, oversize)...), 4400, "MESSAGE-TOO-LARGE"},
		{"binary frame", plain, maskedFrame(ws.OpBinary, connectJSON("c", nil)), 4400, "BINARY-FRAME"},
		{"not JSON", plain, maskedFrame(ws.OpText, []byte("hello")), 4400, "INVALID-JSON"},
		{"message before connect", plain, maskedFrame(ws.OpText, []byte(`{"type":"pong"}`)), 4400, "MESSAGE-BEFORE-CONNECT"},
		{"unmasked frame", plain, func() []byte {
			var b bytes.Buffer
			_ = ws.WriteFrame(&b, ws.NewTextFrame(connectJSON("c", nil)))
			return b.Bytes()
		}(), 4400, "UNMASKED-FRAME"},
		{"block_new_session", blocked, maskedFrame(ws.OpText, connectJSON("idle", nil)), 4503, "BLOCKED-NEW-SESSION"},
		{"auth webhook denies", denied, maskedFrame(ws.OpText, connectJSON("c", nil)), 4401, "NOT-ON-THE-LIST"},
		{"max_connections", full, maskedFrame(ws.OpText, connectJSON("c", nil)), 4429, "MAX-CONNECTIONS"},
		{"max_pending_connections", pendingFull, maskedFrame(ws.OpText, connectJSON("c", nil)), 4429, "TOO-MANY-PENDING-CONNECTIONS"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			msg := c.send
			if c.reason != "MESSAGE-TOO-LARGE" {
				msg = append(append([]byte(nil), c.send...), stillWriting...)
			}
			seen := map[string]int{}
			for range attempts {
				seen[refusedWith(t, c.n, msg)]++
			}
			want := closeText(c.code, c.reason)
			if seen[want] != attempts {
				t.Fatalf("%d of %d attempts saw %s; all outcomes: %v", seen[want], attempts, want, seen)
			}
		})
	}
}

// refusedWith opens a WebSocket, writes msg at once (the message that gets
// it refused and what follows it) and returns what the client saw: the
// close frame's code and reason, or the read error.
func refusedWith(t *testing.T, n *Node, msg []byte) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	c, err := sigclient.Dial(ctx, n.signalingURL())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	c.Conn().SetWriteDeadline(time.Now().Add(patience))
	if _, err := c.Conn().Write(msg); err != nil {
		return "write: " + err.Error()
	}
	closed, err := c.AwaitClose(time.Now().Add(patience))
	if err != nil {
		return "read: " + err.Error()
	}
	return closeText(closed.Code, closed.Reason)
}

func closeText(code int, reason string) string { return fmt.Sprintf("%d %s", code, reason) }
