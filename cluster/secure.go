package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Mutual TLS on both listeners (doc.go, "Security"). Every connection
// between nodes is TLS 1.3 with a certificate on both ends; a peer is
// accepted only if its certificate chains to the cluster CA. On the raft
// listener its name must also be in the raft configuration (or this node
// has none yet: it is being bootstrapped or joined); on the RPC listener a
// request that acts for a node must come from that node's certificate
// (authorize). TLS 1.3 gives each connection fresh keys from both sides'
// randomness, so bytes captured from one connection mean nothing on
// another: a replayed message is refused at the handshake. Go's TLS server
// does not accept 0-RTT early data, the one replayable part of TLS 1.3
// (RFC 8446 section 8).

// handshakeTimeout bounds a TLS handshake; a peer that stalls is dropped.
const handshakeTimeout = 10 * time.Second

// Listener kinds, for logs and for the raft membership rule.
const (
	listenerRaft = "raft"
	listenerRPC  = "rpc"
)

// identity returns the credentials for a new handshake; a replacement of the
// files that cannot be used is logged once and the previous ones stay.
func (c *Cluster) identity() *identity {
	id, err := c.cfg.TLS.current()
	if err != nil {
		c.log.Warn("cluster: new credential files not used; keeping the previous ones", "err", err)
	}
	return id
}

func (c *Cluster) serverTLS(kind string) *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS13,
		SessionTicketsDisabled: true, // every connection proves its certificate afresh
		ClientAuth:             tls.RequireAnyClientCert,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return &c.identity().cert, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			name, err := c.identity().verifyPeer(cs.PeerCertificates, x509.ExtKeyUsageClientAuth)
			if err == nil && kind == listenerRaft {
				err = c.raftPeerAllowed(name)
			}
			return err
		},
	}
}

func (c *Cluster) clientTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The server's certificate is checked in VerifyConnection: it must
		// chain to the cluster CA. Nodes are named by their certificates,
		// not by DNS, so there is no host name to match.
		InsecureSkipVerify: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &c.identity().cert, nil
		},
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := c.identity().verifyPeer(cs.PeerCertificates, x509.ExtKeyUsageServerAuth)
			return err
		},
	}
}

// raftPeerAllowed admits a raft peer by name: a node in the raft
// configuration, or anyone holding a cluster certificate while this node
// has no configuration yet (it is being bootstrapped or joined; a leader
// adds a node to its configuration before it contacts it).
func (c *Cluster) raftPeerAllowed(name string) error {
	r := c.raftReady.Load()
	if r == nil {
		return fmt.Errorf("%w: %s: this node is starting", ErrForbidden, name)
	}
	servers := r.GetConfiguration().Configuration().Servers
	if len(servers) == 0 {
		return nil
	}
	for _, s := range servers {
		if string(s.ID) == name {
			return nil
		}
	}
	return fmt.Errorf("%w: %q is not in the raft configuration", ErrNotMember, name)
}

// dialPeer opens a connection to another node, with TLS when configured.
func (c *Cluster) dialPeer(ctx context.Context, addr string) (net.Conn, error) {
	raw, err := c.dial(ctx, addr)
	if err != nil || c.cfg.TLS == nil {
		return raw, err
	}
	ctx, cancel := context.WithTimeout(ctx, handshakeTimeout)
	defer cancel()
	tc := tls.Client(raw, c.clientTLS())
	if err := tc.HandshakeContext(ctx); err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("cluster: TLS handshake with %s: %w", addr, err)
	}
	return tc, nil
}

// certRefused reports whether err is a TLS handshake that failed over a
// certificate: this node found the peer's untrusted, or the peer answered
// with a TLS alert (it refused ours).
func certRefused(err error) bool {
	return errors.Is(err, ErrPeerUntrusted) || errors.Is(err, ErrPeerNoCertificate) ||
		strings.Contains(err.Error(), "remote error: tls: ")
}

// secure wraps a listener in TLS when configured.
func (c *Cluster) secure(ln net.Listener, kind string) net.Listener {
	if c.cfg.TLS == nil {
		return ln
	}
	return &secureListener{Listener: ln, c: c, kind: kind, cfg: c.serverTLS(kind)}
}

type secureListener struct {
	net.Listener
	c    *Cluster
	kind string
	cfg  *tls.Config
}

// Accept returns at once: the handshake runs on the connection's first
// read or write, in its own goroutine, so that a peer that never completes
// one cannot hold up the accept loop.
func (l *secureListener) Accept() (net.Conn, error) {
	raw, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &peerConn{Conn: tls.Server(raw, l.cfg), l: l}, nil
}

// peerConn is an accepted TLS connection that completes its handshake on
// first use, bounded by handshakeTimeout. A refused peer is logged with its
// address and the reason, and the connection reads as EOF (the log line is
// the report; the raft transport and the HTTP server then close quietly).
type peerConn struct {
	*tls.Conn
	l    *secureListener
	once sync.Once
	err  error
	name string // the peer's node name, once the handshake succeeded
}

func (p *peerConn) handshake() error {
	p.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), handshakeTimeout)
		defer cancel()
		if err := p.Conn.HandshakeContext(ctx); err != nil {
			p.err = err
			p.l.c.refused(p.l.kind, p.RemoteAddr().String(), err)
			return
		}
		if certs := p.ConnectionState().PeerCertificates; len(certs) > 0 {
			p.name = certs[0].Subject.CommonName
		}
	})
	return p.err
}

func (p *peerConn) Read(b []byte) (int, error) {
	if p.handshake() != nil {
		return 0, io.EOF
	}
	return p.Conn.Read(b)
}

func (p *peerConn) Write(b []byte) (int, error) {
	if err := p.handshake(); err != nil {
		return 0, err
	}
	return p.Conn.Write(b)
}

// peerName is the verified node name of the peer that sent r over TLS;
// ok is false on a plain listener.
func peerName(r *http.Request) (name string, ok bool) {
	p, _ := r.Context().Value(peerKey{}).(*peerConn)
	if p == nil || p.handshake() != nil {
		return "", false
	}
	return p.name, true
}

type peerKey struct{}

// connContext stores the connection of every RPC request in its context.
func connContext(ctx context.Context, conn net.Conn) context.Context {
	if p, ok := conn.(*peerConn); ok {
		return context.WithValue(ctx, peerKey{}, p)
	}
	return ctx
}

// refused logs a refused peer or request: which listener, the peer's
// address and why (a certificate's name is in the reason). Lines repeated
// within repeatWindow (same listener, host and reason) are counted, not
// logged: an outsider must not be able to flood the log. Nothing is logged
// once the node is closing (its own connections are cut then).
func (c *Cluster) refused(kind, addr string, err error) {
	if c.ctx.Err() != nil {
		return
	}
	host := addr
	if ap, perr := netip.ParseAddrPort(addr); perr == nil {
		host = ap.Addr().String()
	}
	ok, n := c.refusals.allow(kind+" "+host+" "+err.Error(), time.Now())
	if !ok {
		return
	}
	args := []any{"listener", kind, "peer", addr, "reason", err.Error()}
	if n > 0 {
		args = append(args, "repeated_since_last", n)
	}
	c.log.Warn("cluster: refused peer", args...)
}

// loopbackOnly reports whether a listen address can only be reached from
// this machine.
func loopbackOnly(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}
