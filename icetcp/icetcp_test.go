package icetcp

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/pion/stun/v4"

	"github.com/hayate-sfu/hayate/internal/coretest"
	"github.com/hayate-sfu/hayate/internal/poll"
	"github.com/hayate-sfu/hayate/media"
	"github.com/hayate-sfu/hayate/rtpcore"
)

func server(t *testing.T, e *rtpcore.Engine, edit func(*Config)) *Server {
	t.Helper()
	cfg := Config{Addr: netip.MustParseAddrPort("127.0.0.1:0"), Core: e}
	if edit != nil {
		edit(&cfg)
	}
	s, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func dialTCP(t *testing.T, s *Server) *net.TCPConn {
	t.Helper()
	c, err := net.DialTCP("tcp4", nil, net.TCPAddrFromAddrPort(s.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// closedByServer waits until the server closes c.
func closedByServer(t *testing.T, c net.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(poll.Patience))
	if _, err := io.Copy(io.Discard, c); err != nil {
		t.Fatalf("%s: the server did not close the connection: %v", what, err)
	}
}

// TestICEOverTCP: an ICE check in an RFC 4571 frame is answered in a frame
// on the same connection, the transport learns the connection as its path,
// and a second check works on the same stream.
func TestICEOverTCP(t *testing.T) {
	e := coretest.Engine(t)
	s := server(t, e, nil)
	tr, err := e.Open("c1", nil)
	if err != nil {
		t.Fatal(err)
	}
	tr.Start(media.Remote{Ufrag: "peer"})
	c := dialTCP(t, s)
	r := bufio.NewReader(c)
	buf := make([]byte, MaxFrame)
	for i := range 2 {
		if _, err := c.Write(appendFrame(nil, coretest.Check(t, tr))); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(poll.Patience))
		n, err := readFrame(r, buf)
		if err != nil {
			t.Fatalf("answer %d: %v", i, err)
		}
		m := &stun.Message{Raw: buf[:n]}
		if err := m.Decode(); err != nil || m.Type != stun.BindingSuccess {
			t.Fatalf("answer %d: %v %v", i, m.Type, err)
		}
		var xor stun.XORMappedAddress
		if err := xor.GetFrom(m); err != nil || xor.String() != c.LocalAddr().String() {
			t.Fatalf("XOR-MAPPED-ADDRESS %v, want the client's %v", xor, c.LocalAddr())
		}
	}
	if p := tr.(*rtpcore.Transport).Path(); p != rtpcore.LinkICETCP {
		t.Fatalf("path %q, want %q", p, rtpcore.LinkICETCP)
	}
	st := s.Stats()
	if st.Open != 1 || st.Accepted != 1 || st.FramesIn != 2 || st.FramesOut != 2 {
		t.Fatalf("stats %+v", st)
	}
	// The transport closes: the connection is closed with it.
	tr.Close()
	c.SetReadDeadline(time.Time{})
	closedByServer(t, c, "after the transport closed")
	poll.Soon(t, "the close counted", func() bool { return s.Stats().Ended == 1 && s.Stats().Open == 0 })
}

// TestIdleTimeout: a connection that passed an ICE check and then hears
// nothing from the core (its client went quiet, so no consent answers)
// is closed after IdleTimeout.
func TestIdleTimeout(t *testing.T) {
	e := coretest.Engine(t)
	s := server(t, e, func(c *Config) { c.IdleTimeout = 500 * time.Millisecond })
	tr, err := e.Open("c1", nil)
	if err != nil {
		t.Fatal(err)
	}
	c := dialTCP(t, s)
	c.Write(appendFrame(nil, coretest.Check(t, tr)))
	closedByServer(t, c, "idle after one check")
	poll.Soon(t, "the idle close counted", func() bool { return s.Stats().IdleClosed == 1 && s.Stats().Open == 0 })
	if s.Stats().HandshakeTimeouts != 0 {
		t.Fatal("a connection that passed a check counted as a handshake timeout")
	}
}

// TestHandshakeTimeout: a connection that passes no ICE check (here one
// that checks with a wrong password) is closed after HandshakeTimeout.
func TestHandshakeTimeout(t *testing.T) {
	e := coretest.Engine(t)
	s := server(t, e, func(c *Config) { c.HandshakeTimeout = 300 * time.Millisecond })
	tr, err := e.Open("c1", nil)
	if err != nil {
		t.Fatal(err)
	}
	ufrag, _ := tr.LocalCredentials()
	m, _ := stun.Build(stun.BindingRequest, stun.TransactionID, stun.NewUsername(ufrag+":peer"),
		coretest.Attr{Type: stun.AttrPriority, Value: []byte{1, 2, 3, 4}}, stun.NewShortTermIntegrity("wrong password"), stun.Fingerprint)
	c := dialTCP(t, s)
	c.Write(appendFrame(nil, m.Raw))
	closedByServer(t, c, "no ICE check passed")
	poll.Soon(t, "the handshake timeout counted", func() bool {
		st := s.Stats()
		return st.HandshakeTimeouts == 1 && st.Open == 0
	})
}

// TestInvalidFrame: a frame longer than a datagram closes the connection
// and is counted; the server keeps serving.
func TestInvalidFrame(t *testing.T) {
	e := coretest.Engine(t)
	s := server(t, e, nil)
	c := dialTCP(t, s)
	c.Write([]byte{0xff, 0xff, 1, 2, 3})
	closedByServer(t, c, "a 65535-byte frame")
	poll.Soon(t, "the invalid frame counted", func() bool { return s.Stats().InvalidFrames == 1 })
	tr, _ := e.Open("c2", nil)
	c2 := dialTCP(t, s)
	c2.Write(appendFrame(nil, coretest.Check(t, tr)))
	c2.SetReadDeadline(time.Now().Add(poll.Patience))
	if _, err := readFrame(bufio.NewReader(c2), make([]byte, MaxFrame)); err != nil {
		t.Fatalf("the next connection is served: %v", err)
	}
}

// TestMaxConnections: connections over the bound are closed at accept.
func TestMaxConnections(t *testing.T) {
	e := coretest.Engine(t)
	s := server(t, e, func(c *Config) { c.MaxConnections = 2 })
	dialTCP(t, s)
	dialTCP(t, s)
	poll.Soon(t, "two connections open", func() bool { return s.Stats().Open == 2 })
	third := dialTCP(t, s)
	closedByServer(t, third, "the third connection")
	poll.Soon(t, "the refusal counted", func() bool {
		st := s.Stats()
		return st.Refused == 1 && st.Open == 2
	})
}

// TestQueueBound: what the core sends to a client that does not read
// stops at QueueBytes (plus what the kernel buffers) and the rest is
// dropped and counted.
func TestQueueBound(t *testing.T) {
	e := coretest.Engine(t)
	s := server(t, e, func(c *Config) { c.QueueBytes = 4096 })
	c := dialTCP(t, s)
	c.SetReadBuffer(4096)
	poll.Soon(t, "the connection open", func() bool { return s.Stats().Open == 1 })
	s.mu.Lock()
	var sc *conn
	for k := range s.conns {
		sc = k
	}
	s.mu.Unlock()
	p := bytes.Repeat([]byte{0x80}, 1200)
	poll.Soon(t, "datagrams dropped at the bound", func() bool {
		for range 1000 {
			sc.out(p)
		}
		return s.Stats().QueueFull > 0
	})
	sc.mu.Lock()
	n := len(sc.pending)
	sc.mu.Unlock()
	if n > 4096 {
		t.Fatalf("%d bytes pending over a 4096-byte bound", n)
	}
}

// TestClose: Close ends every connection and its link.
func TestClose(t *testing.T) {
	e := coretest.Engine(t)
	s := server(t, e, nil)
	c := dialTCP(t, s)
	poll.Soon(t, "the connection open", func() bool { return e.Stats().Links.Open == 1 })
	s.Close()
	closedByServer(t, c, "server closed")
	if n := e.Stats().Links.Open; n != 0 {
		t.Fatalf("%d links open after Close returned", n)
	}
}

// FuzzReadFrame: any byte stream reads as frames of at most MaxFrame
// bytes that re-frame to the same stream, or stops with an error; never a
// panic or an over-long datagram.
func FuzzReadFrame(f *testing.F) {
	f.Add(appendFrame(appendFrame(nil, []byte("abc")), nil))
	f.Add([]byte{0, 5, 1, 2})
	f.Add([]byte{0xff, 0xff})
	f.Add(binary.BigEndian.AppendUint16(nil, MaxFrame))
	f.Fuzz(func(t *testing.T, stream []byte) {
		r := bufio.NewReader(bytes.NewReader(stream))
		buf := make([]byte, MaxFrame)
		var again []byte
		for {
			n, err := readFrame(r, buf)
			if err != nil {
				if errors.Is(err, io.EOF) && !bytes.Equal(again, stream) {
					t.Fatalf("clean end after %d of %d bytes", len(again), len(stream))
				}
				return
			}
			if n > MaxFrame {
				t.Fatalf("a %d-byte datagram", n)
			}
			again = appendFrame(again, buf[:n])
			if !bytes.HasPrefix(stream, again) {
				t.Fatal("frames do not re-frame to the stream")
			}
		}
	})
}

// TestVanishingClients: clients that go away mid-handshake (after part of
// a frame's length, after part of a frame, after one ICE check, or that
// connect and send nothing) leave no connection, link or goroutine behind.
func TestVanishingClients(t *testing.T) {
	e := coretest.Engine(t)
	s := server(t, e, func(c *Config) { c.HandshakeTimeout = 300 * time.Millisecond })
	tr, err := e.Open("c1", nil)
	if err != nil {
		t.Fatal(err)
	}
	base := runtime.NumGoroutine()
	framed := appendFrame(nil, coretest.Check(t, tr))
	for _, first := range [][]byte{{0}, framed[:2], framed[:10], framed} {
		for range 5 {
			c := dialTCP(t, s)
			c.Write(first)
			c.Close()
		}
	}
	var silent []net.Conn
	for range 5 {
		silent = append(silent, dialTCP(t, s))
	}
	for _, c := range silent {
		closedByServer(t, c, "a silent client")
	}
	poll.Soon(t, "every connection, link and goroutine gone", func() bool {
		return s.Stats().Open == 0 && e.Stats().Links.Open == 0 && runtime.NumGoroutine() <= base
	})
	if st := s.Stats(); st.Accepted != 25 || st.HandshakeTimeouts < 5 {
		t.Fatalf("stats %+v", st)
	}
}
