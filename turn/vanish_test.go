package turn

import (
	"crypto/tls"
	"net"
	"runtime"
	"testing"
	"time"

	"github.com/pion/stun/v4"

	"github.com/hayate-sfu/hayate/internal/poll"
)

// TestVanishingClients: TURN clients that go away mid-handshake leave no
// connection, allocation or goroutine behind: TCP and TLS connections
// closed after nothing, after part of a STUN header or part of a TLS
// client hello; TLS clients that never finish the handshake (closed after
// HandshakeTimeout); unauthenticated Allocate requests answered 401 and
// never repeated; and UDP clients that allocate and vanish without
// deleting (their allocations closed after RelayIdleTimeout).
func TestVanishingClients(t *testing.T) {
	e := newEnv(t, true, func(c *Config) {
		c.HandshakeTimeout = 300 * time.Millisecond
		c.RelayIdleTimeout = 300 * time.Millisecond
	})
	tr := e.transport(t, "c1")
	ufrag, _ := tr.LocalCredentials()
	cr := e.srv.Issue("c1", ufrag)
	udp, tcp, tlsAddr := e.srv.Addrs()
	base := runtime.NumGoroutine()

	alloc, err := stun.Build(stun.TransactionID, stun.NewType(stun.MethodAllocate, stun.ClassRequest),
		stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}, stun.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	hello := clientHello(t)
	for _, tc := range []struct {
		addr  string
		first []byte
	}{
		{tcp.String(), nil}, {tcp.String(), alloc.Raw[:7]}, {tcp.String(), alloc.Raw},
		{tlsAddr.String(), nil}, {tlsAddr.String(), hello[:5]}, {tlsAddr.String(), hello[:len(hello)/2]},
	} {
		for range 5 {
			c, err := net.Dial("tcp4", tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			c.Write(tc.first)
			c.Close()
		}
	}
	var silent []net.Conn
	for range 5 {
		c, err := net.Dial("tcp4", tlsAddr.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		silent = append(silent, c)
	}
	for range 5 {
		c, err := net.Dial("udp4", udp.String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write(alloc.Raw)
		c.Close()
	}
	for range 3 {
		c, pc := e.dial(t, cr)
		relay, err := c.Allocate()
		if err != nil {
			t.Fatal(err)
		}
		// The client vanishes: its socket first, so that the deletion
		// its relay's Close sends never arrives.
		pc.Close()
		relay.Close()
		c.Close()
	}
	for _, c := range silent {
		waitClosed(t, c)
	}
	defer func() {
		if t.Failed() {
			buf := make([]byte, 1<<20)
			t.Logf("stats %+v, %d goroutines (%d before)\n%s", e.srv.Stats(), runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
	}()
	poll.Soon(t, "every connection, allocation and goroutine gone", func() bool {
		st := e.srv.Stats()
		return st.TCPConnections == 0 && st.Allocations == 0 && e.core.Stats().Links.Open == 0 && runtime.NumGoroutine() <= base
	})
	if st := e.srv.Stats(); st.TLSHandshakeFailures < 20 || st.IdleClosed != 3 || st.TCPAccepted != 35 {
		t.Fatalf("stats %+v", st)
	}
}

// clientHello is the first flight of a TLS client, as bytes.
func clientHello(t *testing.T) []byte {
	t.Helper()
	a, b := net.Pipe()
	defer a.Close()
	go func() {
		tls.Client(b, &tls.Config{ServerName: "localhost"}).Handshake()
		b.Close()
	}()
	buf := make([]byte, 4096)
	n, err := a.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return buf[:n]
}
