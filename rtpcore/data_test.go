//go:build linux

package rtpcore

import (
	"sync"
	"testing"
	"time"

	"github.com/hayate-sfu/hayate/internal/poll"
)

// panicky is Events whose DataChannel events panic (a bug in the
// signaling), recording the transport's failure.
type panicky struct {
	mu     sync.Mutex
	failed []string
}

func (p *panicky) Connected() {}
func (p *panicky) Failed(reason string) {
	p.mu.Lock()
	p.failed = append(p.failed, reason)
	p.mu.Unlock()
}
func (p *panicky) DataOpen(string)                  { panic("bug in DataOpen") }
func (p *panicky) DataMessage(string, []byte, bool) { panic("bug in DataMessage") }
func (p *panicky) DataClosed(string)                { panic("bug in DataClosed") }

// TestDataEventPanicContained: a panic in a DataChannel event is caught on
// the channel's reader goroutine, counted in total_panics, and fails that
// transport with INTERNAL-ERROR; the node goes on.
func TestDataEventPanicContained(t *testing.T) {
	e := testEngine(t)
	ev := &panicky{}
	tr, err := e.Open("conn", ev)
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan struct{})
	close(ready)
	h := dataHandler{t: tr.(*Transport), ready: ready}
	h.Message(nil, []byte("x"), false) // the panic stays here
	poll.Until(t, "the transport to fail", 10*time.Second, func() bool {
		ev.mu.Lock()
		defer ev.mu.Unlock()
		return len(ev.failed) == 1
	})
	if ev.failed[0] != "INTERNAL-ERROR" || e.Stats().Panics != 1 {
		t.Errorf("failed %v, panics %d", ev.failed, e.Stats().Panics)
	}
}
