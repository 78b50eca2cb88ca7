package cluster

import (
	"errors"
	"net"
	"testing"
	"time"

	"github.com/hayate-sfu/hayate/internal/poll"
)

// TestTeardownWaitsForHandlers: the stream layer's shutdown ends every
// accepted connection's handler and returns only once each handler is done
// (the raft stores close after it, so a heartbeat being answered must not
// find them closed), and it accepts nothing afterwards.
func TestTeardownWaitsForHandlers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &streamLayer{Listener: ln}
	defer s.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	conn, err := s.Accept()
	if err != nil {
		t.Fatal(err)
	}

	readFailed, finish := make(chan struct{}), make(chan struct{})
	go func() { // a handler: reads until its connection fails, then finishes its work
		var b [1]byte
		_, _ = conn.Read(b[:])
		close(readFailed)
		<-finish
		_ = conn.Close()
	}()

	shut := make(chan bool, 1)
	go func() { shut <- s.handlers.shutdown(time.Hour) }()
	select {
	case <-readFailed:
	case <-time.After(poll.Patience):
		t.Fatal("the handler's read did not fail on shutdown")
	}
	// The handler is still working: shutdown must not return. (A window of
	// absence: a correct shutdown can never fail it.)
	select {
	case <-shut:
		t.Fatal("shutdown returned while a handler was still working")
	case <-time.After(200 * time.Millisecond):
	}
	close(finish)
	select {
	case ok := <-shut:
		if !ok {
			t.Fatal("shutdown reported a busy handler")
		}
	case <-time.After(poll.Patience):
		t.Fatal("shutdown did not return once the handler finished")
	}

	late, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	if _, err := s.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("accept after shutdown: %v, want net.ErrClosed", err)
	}
}
