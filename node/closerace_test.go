package node

import (
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/hayate-sfu/hayate/internal/poll"
	"github.com/hayate-sfu/hayate/signal"
)

// TestCloseRacingAdmission: the node shuts down while a connection is
// being admitted, and the client, having got its offer and the 1001 close,
// goes silent without answering the close. The connection must still end
// (the reader's close grace), so that Close returns. It once did not: the
// connect cleared the reader's deadline after admission, undoing the grace
// the close had just set, and Close waited for the silent client forever
// (a 15-minute hang of TestClusterTemporaryNodeJoins under load).
func TestCloseRacingAdmission(t *testing.T) {
	n := startNode(t, nil)
	gotClose := make(chan ws.StatusCode, 1)
	closed := make(chan struct{})
	n.hub.SetTestHooks(signal.TestHooks{AfterAdmit: func(string) {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*patience)
			defer cancel()
			n.Close(ctx)
			close(closed)
		}()
		// The close frame reaches the client before this connect goes on.
		select {
		case <-gotClose:
		case <-closed:
		case <-time.After(patience):
		}
	}})

	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	conn, _, _, err := ws.Dial(ctx, n.signalingURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	msg, _ := json.Marshal(connectMsg("close-race", "recvonly"))
	if err := wsutil.WriteClientText(conn, msg); err != nil {
		t.Fatal(err)
	}
	// Read frames until the close; never answer it.
	go func() {
		for {
			h, err := ws.ReadHeader(conn)
			if err != nil || h.Length > 1<<20 {
				return
			}
			payload := make([]byte, h.Length)
			if _, err := io.ReadFull(conn, payload); err != nil {
				return
			}
			if h.OpCode == ws.OpClose {
				code, _ := ws.ParseCloseFrameData(payload)
				gotClose <- code
				return
			}
		}
	}()
	poll.Soon(t, "the node to close with a silent client admitted during its shutdown", func() bool {
		select {
		case <-closed:
			return true
		default:
			return false
		}
	})
}
