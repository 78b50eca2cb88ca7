//go:build linux

package rtpcore

import (
	"testing"
	"time"
)

// TestTickDuringStart: the janitor may see a transport between Start's
// state change and its start time (and between the DTLS handshake's state
// change and its first receive time); it must not take the unset time for
// a silence since 1970 and fail the transport (seen as 4408
// ICE-CONNECTION-STATE-FAILED of signaling-only test clients under load).
func TestTickDuringStart(t *testing.T) {
	e := testEngine(t)
	for _, st := range []uint32{stStarted, stConnected} {
		mt, err := e.Open("tick", nil)
		if err != nil {
			t.Fatal(err)
		}
		tr := mt.(*Transport)
		tr.state.Store(st)
		tr.tick(time.Now(), false)
		if tr.isClosed() {
			t.Fatalf("state %d: a transport whose time is not set yet was failed", st)
		}
		tr.Close()
	}
}
