// Package turn is Hayate's built-in TURN server (RFC 8656) on pion/turn/v5,
// as Sora's (https://sora-doc.shiguredo.jp/TURN): TURN over UDP, TCP and
// TLS, with credentials made for one connection that are valid only while
// it lives, handed to the client in the offer's config.iceServers.
//
// # Relaying to the node only
//
// An allocation's only peer is the node's own media address: permissions
// and channels for any other IP are refused (403), datagrams to any other
// port of it are dropped, a channel bound to another address closes the
// allocation, and RFC 6062 TCP relays are refused. Hayate's TURN server is
// never an open relay. An allocation is also tied to its connection: ICE
// checks through it for another connection's ufrag are dropped.
//
// # In process
//
// By default an allocation's relayed address is a link of the media core
// (rtpcore.Link): datagrams the client relays enter the core's receive
// loops in process and what the core sends to the relayed address comes
// back in process, with no UDP socket per allocation and no trip through
// the kernel between the TURN server and the media port. With InProcess
// off, each allocation gets a UDP socket of its own that talks to the
// media port through the kernel (BENCHMARKS.md compares the two).
//
// # Limits
//
// MaxAllocations per connection (486 beyond), RelayIdleTimeout (an
// allocation nothing was relayed through for this long is closed),
// relayQueueLen datagrams queued per allocation towards a slow client,
// MaxTCPConnections TCP and TLS connections at once with IdleTimeout
// between reads, and TLS handshakes bounded by HandshakeTimeout. Each is
// counted in Stats (GetStatsReport's turn object).
package turn

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	pturn "github.com/pion/turn/v5"

	"github.com/hayate-sfu/hayate/internal/ids"
	"github.com/hayate-sfu/hayate/internal/pionlog"
	"github.com/hayate-sfu/hayate/rtpcore"
)

// Config is what the TURN server needs.
type Config struct {
	// Realm is the TURN realm (turn_realm).
	Realm string
	// UDP, TCP and TLS are the listening addresses of each transport; an
	// invalid AddrPort turns the transport off, port 0 picks a free one.
	UDP, TCP, TLS netip.AddrPort
	// TLSConfig serves TURN over TLS (its certificate, or GetCertificate).
	TLSConfig *tls.Config
	// Media is the node's media address, the only peer; RelayIP the
	// address of relayed transport addresses (ipv4_address).
	Media   netip.AddrPort
	RelayIP netip.Addr
	// Core is the media path allocations relay to.
	Core *rtpcore.Engine
	// InProcess relays through links of the core (true) or through a UDP
	// socket per allocation (false).
	InProcess bool
	// MaxAllocations bounds one connection's allocations (default 8).
	MaxAllocations int
	// RelayIdleTimeout closes an allocation nothing was relayed through for
	// this long (default 30 s; ICE consent checks every few seconds keep a
	// live one busy).
	RelayIdleTimeout time.Duration
	// MaxTCPConnections bounds the TURN-TCP and TURN-TLS connections open
	// at once (default 10000); IdleTimeout closes one that sends nothing
	// for this long (default 30 s); HandshakeTimeout bounds a TLS handshake
	// (default 10 s).
	MaxTCPConnections int
	IdleTimeout       time.Duration
	HandshakeTimeout  time.Duration
	Log               *slog.Logger
}

// Credentials are one connection's TURN username and password.
type Credentials struct {
	Username, Password string
}

// cred is a live connection's credentials and its allocations.
type cred struct {
	username, ufrag string
	key             []byte
	relays          map[*relay]struct{} // guarded by Server.mu
}

// Server is the TURN server.
type Server struct {
	cfg  Config
	pion *pturn.Server
	udp  net.PacketConn
	tcp  *tcpListener
	tls  *tlsListener

	mu     sync.Mutex
	creds  map[string]*cred
	relays map[*relay]struct{}
	port   uint16 // the last relayed port handed out in process

	st        stats
	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// New binds the enabled transports and serves them.
func New(cfg Config) (*Server, error) {
	if !cfg.UDP.IsValid() && !cfg.TCP.IsValid() && !cfg.TLS.IsValid() {
		return nil, ErrNoListener
	}
	if cfg.MaxAllocations <= 0 {
		cfg.MaxAllocations = 8
	}
	if cfg.RelayIdleTimeout <= 0 {
		cfg.RelayIdleTimeout = 30 * time.Second
	}
	if cfg.MaxTCPConnections <= 0 {
		cfg.MaxTCPConnections = 10000
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 30 * time.Second
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Realm == "" {
		cfg.Realm = "hayate"
	}
	s := &Server{cfg: cfg, creds: map[string]*cred{}, relays: map[*relay]struct{}{}, stop: make(chan struct{})}
	sc := pturn.ServerConfig{
		Realm:         cfg.Realm,
		LoggerFactory: pionlog.Factory{Log: cfg.Log},
		AuthHandler:   s.auth,
		QuotaHandler:  s.quota,
		EventHandler: pturn.EventHandler{
			OnAuth:           s.onAuth,
			OnChannelCreated: s.onChannel,
		},
	}
	fail := func(err error) (*Server, error) {
		s.closeListeners()
		return nil, err
	}
	if cfg.UDP.IsValid() {
		pc, err := net.ListenPacket("udp4", cfg.UDP.String())
		if err != nil {
			return fail(fmt.Errorf("turn udp: %w", err))
		}
		s.udp = pc
		sc.PacketConnConfigs = append(sc.PacketConnConfigs, pturn.PacketConnConfig{
			PacketConn: pc, RelayAddressGenerator: &generator{s: s, kind: rtpcore.LinkTURNUDP}, PermissionHandler: s.permit})
	}
	if cfg.TCP.IsValid() {
		ln, err := net.Listen("tcp4", cfg.TCP.String())
		if err != nil {
			return fail(fmt.Errorf("turn tcp: %w", err))
		}
		s.tcp = newTCPListener(s, ln)
		sc.ListenerConfigs = append(sc.ListenerConfigs, pturn.ListenerConfig{
			Listener: pionListener{s.tcp}, RelayAddressGenerator: &generator{s: s, kind: rtpcore.LinkTURNTCP}, PermissionHandler: s.permit})
	}
	if cfg.TLS.IsValid() {
		ln, err := net.Listen("tcp4", cfg.TLS.String())
		if err != nil {
			return fail(fmt.Errorf("turn tls: %w", err))
		}
		s.tls = newTLSListener(s, newTCPListener(s, ln), cfg.TLSConfig)
		sc.ListenerConfigs = append(sc.ListenerConfigs, pturn.ListenerConfig{
			Listener: s.tls, RelayAddressGenerator: &generator{s: s, kind: rtpcore.LinkTURNTLS}, PermissionHandler: s.permit})
	}
	p, err := pturn.NewServer(sc)
	if err != nil {
		return fail(err)
	}
	s.pion = p
	s.wg.Add(1)
	go s.janitor()
	return s, nil
}

// Addrs are the bound addresses of the transports (invalid when off).
func (s *Server) Addrs() (udp, tcp, tls netip.AddrPort) {
	if s.udp != nil {
		udp = s.udp.LocalAddr().(*net.UDPAddr).AddrPort()
	}
	if s.tcp != nil {
		tcp = s.tcp.Addr().(*net.TCPAddr).AddrPort()
	}
	if s.tls != nil {
		tls = s.tls.Addr().(*net.TCPAddr).AddrPort()
	}
	return udp, tcp, tls
}

// Issue makes the TURN credentials of a connection whose transport has the
// local ICE ufrag ufrag. They are valid until Revoke.
func (s *Server) Issue(connectionID, ufrag string) Credentials {
	c := Credentials{Username: connectionID, Password: ids.ICE(24)}
	s.mu.Lock()
	s.creds[c.Username] = &cred{username: c.Username, ufrag: ufrag,
		key: pturn.GenerateAuthKey(c.Username, s.cfg.Realm, c.Password), relays: map[*relay]struct{}{}}
	s.mu.Unlock()
	s.st.issued.Add(1)
	return c
}

// Revoke ends a connection's credentials: later requests with them are
// refused (401) and its allocations are closed.
func (s *Server) Revoke(username string) {
	s.mu.Lock()
	c := s.creds[username]
	delete(s.creds, username)
	var rs []*relay
	if c != nil {
		for r := range c.relays {
			rs = append(rs, r)
		}
	}
	s.mu.Unlock()
	for _, r := range rs {
		s.st.revokedClosed.Add(1)
		r.Close()
	}
}

// auth is pion's AuthHandler: the key of a live connection's credentials.
func (s *Server) auth(ra *pturn.RequestAttributes) (string, []byte, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.creds[ra.Username]
	if c == nil {
		s.st.authFailures.Add(1) // pion answers 401
		return "", nil, false
	}
	return c.username, c.key, true
}

// onAuth counts requests whose MESSAGE-INTEGRITY does not verify with a
// live connection's key (pion answers them 401).
func (s *Server) onAuth(_, _ net.Addr, _, _, _ string, _ string, verdict bool) {
	if !verdict {
		s.st.authFailures.Add(1)
	}
}

// quota is pion's QuotaHandler (486 when it refuses).
func (s *Server) quota(username, _ string, _ net.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.creds[username]
	ok := c != nil && len(c.relays) < s.cfg.MaxAllocations
	if !ok {
		s.st.quotaRefused.Add(1)
	}
	return ok
}

// permit is pion's PermissionHandler: permissions and channels only for
// the node's media IP (403 otherwise).
func (s *Server) permit(_ net.Addr, peer net.IP) bool {
	ip, ok := netip.AddrFromSlice(peer)
	if ok && ip.Unmap() == s.cfg.Media.Addr() {
		return true
	}
	s.st.permissionRefused.Add(1)
	return false
}

// onChannel counts channels bound to a port of the media IP other than
// the media port: what is sent on them is dropped (relay.WriteTo), and
// RFC 8656 §12 bounds them to 4096 per allocation.
func (s *Server) onChannel(_, _ net.Addr, _, _, _ string, _, peer net.Addr, _ uint16) {
	if p, ok := peer.(*net.UDPAddr); !ok || unmapped(p) != s.cfg.Media {
		s.st.wrongPeer.Add(1)
	}
}

// generator is pion's RelayAddressGenerator for one listener: it makes
// the allocations of that transport.
type generator struct {
	s    *Server
	kind string
}

// Validate implements pturn.RelayAddressGenerator.
func (g *generator) Validate() error { return nil }

// AllocatePacketConn implements pturn.RelayAddressGenerator: the relay of
// a new UDP allocation under a live connection's credentials.
func (g *generator) AllocatePacketConn(c pturn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	if c.Network != "udp4" {
		return nil, nil, ErrNotMedia // RFC 6156: IPv4 only, as the media port
	}
	r, err := g.s.allocate(c.UserID, g.kind)
	if err != nil {
		return nil, nil, err
	}
	return r, r.LocalAddr(), nil
}

// AllocateListener implements pturn.RelayAddressGenerator: RFC 6062 TCP
// relays are refused.
func (g *generator) AllocateListener(pturn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	return nil, nil, ErrTCPRelay
}

// AllocateConn implements pturn.RelayAddressGenerator (RFC 6062 Connect):
// refused.
func (g *generator) AllocateConn(pturn.AllocateConnConfig) (net.Conn, error) {
	return nil, ErrTCPRelay
}

// allocate makes a relay for username's connection.
func (s *Server) allocate(username, kind string) (*relay, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.creds[username]
	switch {
	case c == nil:
		return nil, ErrNoCredentials
	case len(c.relays) >= s.cfg.MaxAllocations:
		s.st.quotaRefused.Add(1)
		return nil, ErrQuota
	}
	r := newRelay(s, c, kind)
	if s.cfg.InProcess {
		// Relayed ports are names here, not sockets: any port that no live
		// link of this kind uses will do.
		for tries := 0; ; tries++ {
			s.port++
			if s.port < 49152 {
				s.port = 49152
			}
			r.addr = netip.AddrPortFrom(s.cfg.RelayIP, s.port)
			l, err := s.cfg.Core.Link(kind, r.addr, r.fromCore)
			if err == nil {
				r.link = l
				break
			}
			if !errors.Is(err, rtpcore.ErrLinkAddrInUse) || tries > 1<<16 {
				return nil, err
			}
		}
	} else {
		sock, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(s.cfg.RelayIP, 0)))
		if err != nil {
			return nil, err
		}
		r.sock = sock
		r.addr = sock.LocalAddr().(*net.UDPAddr).AddrPort()
		s.cfg.Core.MarkRelayed(r.addr, kind)
	}
	c.relays[r] = struct{}{}
	s.relays[r] = struct{}{}
	s.st.allocations.Add(1)
	s.st.byKind(kind).Add(1)
	return r, nil
}

// forget drops a closed relay from the tables.
func (s *Server) forget(r *relay) {
	s.mu.Lock()
	_, live := s.relays[r]
	delete(s.relays, r)
	delete(r.cred.relays, r)
	s.mu.Unlock()
	if live {
		s.st.allocations.Add(-1)
	}
}

// janitor closes allocations nothing was relayed through for
// RelayIdleTimeout (a client that left without deleting them, or one
// whose connection's transport has gone).
func (s *Server) janitor() {
	defer s.wg.Done()
	t := time.NewTicker(min(s.cfg.RelayIdleTimeout/4, time.Second))
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-t.C:
			var idle []*relay
			s.mu.Lock()
			for r := range s.relays {
				if now.Sub(time.Unix(0, r.lastActive.Load())) > s.cfg.RelayIdleTimeout {
					idle = append(idle, r)
				}
			}
			s.mu.Unlock()
			for _, r := range idle {
				s.st.idleClosed.Add(1)
				r.Close()
			}
		}
	}
}

// Close stops the server: listeners, allocations, credentials.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.stop)
		if s.pion != nil {
			_ = s.pion.Close()
		} else {
			s.closeListeners()
		}
		if s.tcp != nil {
			s.tcp.closeAll()
		}
		if s.tls != nil {
			s.tls.closeAll()
		}
		s.mu.Lock()
		all := make([]*relay, 0, len(s.relays))
		for r := range s.relays {
			all = append(all, r)
		}
		s.creds = map[string]*cred{}
		s.mu.Unlock()
		for _, r := range all {
			r.Close()
		}
		s.wg.Wait()
	})
}

func (s *Server) closeListeners() {
	if s.udp != nil {
		s.udp.Close()
	}
	if s.tcp != nil {
		s.tcp.Close()
	}
	if s.tls != nil {
		s.tls.Close()
	}
}

// handshake runs a TLS handshake with the server's bound.
func (s *Server) handshake(c *tls.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.HandshakeTimeout)
	defer cancel()
	return c.HandshakeContext(ctx)
}

// stats are the server's counters.
type stats struct {
	issued, authFailures, quotaRefused, permissionRefused atomic.Uint64
	wrongPeer, foreignUfrag, queueFull, idleClosed        atomic.Uint64
	revokedClosed, relayedIn, relayedOut                  atomic.Uint64
	allocations                                           atomic.Int64
	udpAllocs, tcpAllocs, tlsAllocs                       atomic.Uint64
	tcpOpen                                               atomic.Int64
	tcpAccepted, tcpRefused, tcpIdleClosed, tlsFailures   atomic.Uint64
	invalidTCP                                            atomic.Uint64
}

func (st *stats) byKind(kind string) *atomic.Uint64 {
	switch kind {
	case rtpcore.LinkTURNTCP:
		return &st.tcpAllocs
	case rtpcore.LinkTURNTLS:
		return &st.tlsAllocs
	default:
		return &st.udpAllocs
	}
}

// Stats are GetStatsReport's turn object.
type Stats struct {
	Credentials          int               `json:"credentials"`
	Allocations          int64             `json:"allocations"`
	TotalAllocations     map[string]uint64 `json:"total_allocations"`
	CredentialsIssued    uint64            `json:"total_credentials_issued"`
	AuthFailures         uint64            `json:"total_auth_failures"`
	QuotaRefused         uint64            `json:"total_quota_refused"`
	PermissionRefused    uint64            `json:"total_permission_refused"`
	RelayedIn            uint64            `json:"total_relayed_to_node"`
	RelayedOut           uint64            `json:"total_relayed_to_clients"`
	IdleClosed           uint64            `json:"total_idle_closed"`
	RevokedClosed        uint64            `json:"total_revoked_closed"`
	Dropped              map[string]uint64 `json:"dropped"`
	TCPConnections       int64             `json:"tcp_connections"`
	TCPAccepted          uint64            `json:"total_tcp_accepted"`
	TCPRefused           uint64            `json:"total_tcp_refused"`
	TCPIdleClosed        uint64            `json:"total_tcp_idle_closed"`
	TLSHandshakeFailures uint64            `json:"total_tls_handshake_failures"`
	// InvalidTCPPackets counts TURN-TCP and TURN-TLS connections closed
	// for a frame that is neither STUN nor ChannelData (Sora's
	// total_received_invalid_turn_tcp_packet).
	InvalidTCPPackets uint64 `json:"total_received_invalid_turn_tcp_packet"`
	InProcess         bool   `json:"in_process"`
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	n := len(s.creds)
	s.mu.Unlock()
	st := &s.st
	return Stats{
		Credentials: n, Allocations: st.allocations.Load(),
		TotalAllocations:  map[string]uint64{"udp": st.udpAllocs.Load(), "tcp": st.tcpAllocs.Load(), "tls": st.tlsAllocs.Load()},
		CredentialsIssued: st.issued.Load(), AuthFailures: st.authFailures.Load(), QuotaRefused: st.quotaRefused.Load(),
		PermissionRefused: st.permissionRefused.Load(), RelayedIn: st.relayedIn.Load(), RelayedOut: st.relayedOut.Load(),
		IdleClosed: st.idleClosed.Load(), RevokedClosed: st.revokedClosed.Load(),
		Dropped:        map[string]uint64{"wrong_peer": st.wrongPeer.Load(), "foreign_ufrag": st.foreignUfrag.Load(), "queue_full": st.queueFull.Load()},
		TCPConnections: st.tcpOpen.Load(), TCPAccepted: st.tcpAccepted.Load(), TCPRefused: st.tcpRefused.Load(),
		TCPIdleClosed: st.tcpIdleClosed.Load(), TLSHandshakeFailures: st.tlsFailures.Load(),
		InvalidTCPPackets: st.invalidTCP.Load(), InProcess: s.cfg.InProcess,
	}
}
