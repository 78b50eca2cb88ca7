package turn

import (
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	pturn "github.com/pion/turn/v5"

	"github.com/hayate-sfu/hayate/internal/cert"
	"github.com/hayate-sfu/hayate/internal/coretest"
	"github.com/hayate-sfu/hayate/internal/poll"
	"github.com/hayate-sfu/hayate/media"
	"github.com/hayate-sfu/hayate/rtpcore"
)

type env struct {
	core *rtpcore.Engine
	srv  *Server
}

func newEnv(t *testing.T, inProcess bool, edit func(*Config)) *env {
	t.Helper()
	core := coretest.Engine(t)
	c, err := cert.Generate()
	if err != nil {
		t.Fatal(err)
	}
	lo := netip.MustParseAddrPort("127.0.0.1:0")
	cfg := Config{UDP: lo, TCP: lo, TLS: lo, TLSConfig: &tls.Config{Certificates: []tls.Certificate{c.TLS}},
		Media: core.Candidate(), RelayIP: netip.MustParseAddr("127.0.0.1"), Core: core, InProcess: inProcess}
	if edit != nil {
		edit(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return &env{core: core, srv: s}
}

// client is a pion/turn client over UDP to the server, closed when the
// test ends.
func (e *env) client(t *testing.T, cr Credentials) *pturn.Client {
	t.Helper()
	c, pc := e.dial(t, cr)
	t.Cleanup(func() { c.Close(); pc.Close() })
	return c
}

// dial starts a pion/turn client over UDP to the server on a socket of
// its own.
func (e *env) dial(t *testing.T, cr Credentials) (*pturn.Client, net.PacketConn) {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	udp, _, _ := e.srv.Addrs()
	c, err := pturn.NewClient(&pturn.ClientConfig{TURNServerAddr: udp.String(), STUNServerAddr: udp.String(),
		Username: cr.Username, Password: cr.Password, Realm: "hayate", Conn: pc})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Listen(); err != nil {
		t.Fatal(err)
	}
	return c, pc
}

// allocated is a server (relaying in process or not) with a transport
// "c1" and a client's allocation made with its credentials.
func allocated(t *testing.T, inProcess bool) (*env, media.Transport, *pturn.Client, net.PacketConn) {
	t.Helper()
	e := newEnv(t, inProcess, nil)
	tr := e.transport(t, "c1")
	ufrag, _ := tr.LocalCredentials()
	c := e.client(t, e.srv.Issue("c1", ufrag))
	relay, err := c.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	return e, tr, c, relay
}

// transport opens a transport in the core, ready for ICE checks.
func (e *env) transport(t *testing.T, id string) media.Transport {
	t.Helper()
	tr, err := e.core.Open(id, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr.Start(media.Remote{Ufrag: "peer"})
	t.Cleanup(tr.Close)
	return tr
}

// answered sends ICE checks to tr through relay until one is answered,
// or reports false after a few seconds of silence.
func answered(t *testing.T, relay net.PacketConn, to net.Addr, tr media.Transport, patience time.Duration) bool {
	t.Helper()
	buf := make([]byte, 1500)
	end := time.Now().Add(patience)
	for time.Now().Before(end) {
		if _, err := relay.WriteTo(coretest.Check(t, tr), to); err != nil {
			t.Fatalf("relay write: %v", err)
		}
		relay.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, from, err := relay.ReadFrom(buf)
		if err != nil {
			continue
		}
		m := &stun.Message{Raw: buf[:n]}
		if m.Decode() == nil && m.Type == stun.BindingSuccess && from.String() == to.String() {
			return true
		}
	}
	return false
}

// TestRelayToTheNode: an allocation made with a connection's credentials
// relays that connection's ICE checks to the node and its answers back,
// in process and through a socket; the transport's path is TURN-UDP.
func TestRelayToTheNode(t *testing.T) {
	for _, inProcess := range []bool{true, false} {
		t.Run(map[bool]string{true: "in process", false: "socket"}[inProcess], func(t *testing.T) {
			e, tr, _, relay := allocated(t, inProcess)
			media := net.UDPAddrFromAddrPort(e.core.Candidate())
			if !answered(t, relay, media, tr, poll.Patience) {
				t.Fatal("no ICE answer through the relay")
			}
			if p := tr.(*rtpcore.Transport).Path(); p != rtpcore.LinkTURNUDP {
				t.Fatalf("path %q, want %q", p, rtpcore.LinkTURNUDP)
			}
			st := e.srv.Stats()
			if st.Allocations != 1 || st.TotalAllocations["udp"] != 1 || st.RelayedIn == 0 || st.RelayedOut == 0 {
				t.Fatalf("stats %+v", st)
			}
			if links := e.core.Stats().Links.Opened; (links > 0) != inProcess {
				t.Fatalf("%d links with in-process %v", links, inProcess)
			}
		})
	}
}

// TestNeverAnOpenRelay: an allocation cannot reach any address but the
// node's media address: a permission for another loopback IP is refused
// (403), and datagrams to another port of the media IP, where a socket
// listens, never arrive there: each is dropped at the relay.
func TestNeverAnOpenRelay(t *testing.T) {
	for _, inProcess := range []bool{true, false} {
		t.Run(map[bool]string{true: "in process", false: "socket"}[inProcess], func(t *testing.T) {
			e, tr, c, relay := allocated(t, inProcess)
			other, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			if err := c.CreatePermission(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 9}); err == nil ||
				!strings.Contains(err.Error(), "403") {
				t.Fatalf("permission for 127.0.0.2: %v, want 403 Forbidden", err)
			}
			for range 20 {
				relay.WriteTo([]byte("to another port"), other.LocalAddr())
			}
			// The media address still works through the same allocation.
			if !answered(t, relay, net.UDPAddrFromAddrPort(e.core.Candidate()), tr, poll.Patience) {
				t.Fatal("no ICE answer through the relay")
			}
			// Each of the 20 is dropped at the relay, not handed to the
			// core as if it were for the media port.
			poll.Soon(t, "datagrams to another port dropped", func() bool { return e.srv.Stats().Dropped["wrong_peer"] >= 20 })
			other.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if n, _, err := other.ReadFrom(make([]byte, 100)); err == nil {
				t.Fatalf("a %d-byte datagram reached another address through the relay", n)
			}
			if st := e.srv.Stats(); st.PermissionRefused == 0 {
				t.Fatalf("the refused permission was not counted: %+v", st)
			}
		})
	}
}

// TestCredentialsOfOneConnection: an allocation made with one connection's
// credentials carries no ICE check for another connection's transport;
// after Revoke the credentials are refused and the allocations closed.
func TestCredentialsOfOneConnection(t *testing.T) {
	e := newEnv(t, true, nil)
	trA, trB := e.transport(t, "A"), e.transport(t, "B")
	ufragA, _ := trA.LocalCredentials()
	ufragB, _ := trB.LocalCredentials()
	credA := e.srv.Issue("A", ufragA)
	e.srv.Issue("B", ufragB)
	c := e.client(t, credA)
	relay, err := c.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	media := net.UDPAddrFromAddrPort(e.core.Candidate())
	if answered(t, relay, media, trB, 2*time.Second) {
		t.Fatal("A's allocation reached B's transport")
	}
	if e.srv.Stats().Dropped["foreign_ufrag"] == 0 {
		t.Fatal("the foreign check was not counted")
	}
	if !answered(t, relay, media, trA, poll.Patience) {
		t.Fatal("A's allocation does not reach A")
	}

	e.srv.Revoke("A")
	poll.Soon(t, "A's allocation closed", func() bool { return e.srv.Stats().Allocations == 0 })
	c2 := e.client(t, credA)
	if _, err := c2.Allocate(); err == nil {
		t.Fatal("revoked credentials made an allocation")
	}
	if st := e.srv.Stats(); st.AuthFailures == 0 || st.RevokedClosed != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestAllocationQuota: a connection's allocations stop at MaxAllocations
// (486), and free up when one closes.
func TestAllocationQuota(t *testing.T) {
	e := newEnv(t, true, func(c *Config) { c.MaxAllocations = 2 })
	tr := e.transport(t, "c1")
	ufrag, _ := tr.LocalCredentials()
	cr := e.srv.Issue("c1", ufrag)
	for i := range 2 {
		if _, err := e.client(t, cr).Allocate(); err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
	}
	if _, err := e.client(t, cr).Allocate(); err == nil || !strings.Contains(err.Error(), "486") {
		t.Fatalf("third allocation: %v, want 486", err)
	}
	if e.srv.Stats().QuotaRefused == 0 {
		t.Fatal("quota refusal not counted")
	}
}

// TestRelayIdleTimeout: an allocation nothing is relayed through is
// closed after RelayIdleTimeout and counted.
func TestRelayIdleTimeout(t *testing.T) {
	e := newEnv(t, true, func(c *Config) { c.RelayIdleTimeout = 300 * time.Millisecond })
	tr := e.transport(t, "c1")
	ufrag, _ := tr.LocalCredentials()
	if _, err := e.client(t, e.srv.Issue("c1", ufrag)).Allocate(); err != nil {
		t.Fatal(err)
	}
	poll.Soon(t, "the idle allocation closed", func() bool {
		st := e.srv.Stats()
		return st.Allocations == 0 && st.IdleClosed == 1
	})
	if n := e.core.Stats().Links.Open; n != 0 {
		t.Fatalf("%d links left open", n)
	}
}

// TestTCPLimits: connections over MaxTCPConnections are closed at accept;
// a stream that is neither STUN nor ChannelData is counted as an invalid
// TURN-TCP packet; a failed TLS handshake is counted and closed.
func TestTCPLimits(t *testing.T) {
	e := newEnv(t, true, func(c *Config) { c.MaxTCPConnections = 2 })
	_, tcp, tlsAddr := e.srv.Addrs()
	dial := func(a netip.AddrPort) net.Conn {
		c, err := net.Dial("tcp4", a.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	bad := dial(tcp)
	// 0x80 starts neither a STUN message nor ChannelData (RFC 8656 §12).
	bad.Write([]byte{0x80, 0x60, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17})
	waitClosed(t, bad)
	poll.Soon(t, "the invalid stream counted", func() bool { return e.srv.Stats().InvalidTCPPackets == 1 })

	notTLS := dial(tlsAddr)
	notTLS.Write([]byte("plain text, not a TLS client hello......"))
	waitClosed(t, notTLS)
	poll.Soon(t, "the failed handshake counted", func() bool { return e.srv.Stats().TLSHandshakeFailures == 1 })
	if n := e.srv.Stats().InvalidTCPPackets; n != 1 {
		t.Fatalf("a failed TLS handshake counted as an invalid TURN packet (%d)", n)
	}

	poll.Soon(t, "no TCP connection left", func() bool { return e.srv.Stats().TCPConnections == 0 })
	dial(tcp)
	dial(tcp)
	poll.Soon(t, "two connections open", func() bool { return e.srv.Stats().TCPConnections == 2 })
	third := dial(tcp)
	waitClosed(t, third)
	poll.Soon(t, "the third refused", func() bool { return e.srv.Stats().TCPRefused == 1 })
}

func waitClosed(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(poll.Patience))
	buf := make([]byte, 512)
	for {
		if _, err := c.Read(buf); err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Fatal("the server did not close the connection")
			}
			return
		}
	}
}
