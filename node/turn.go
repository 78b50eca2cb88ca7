package node

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // the TURN REST API's HMAC is SHA-1 (coturn's use-auth-secret)
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/hayate-sfu/hayate/config"
	"github.com/hayate-sfu/hayate/icetcp"
	"github.com/hayate-sfu/hayate/signal"
	"github.com/hayate-sfu/hayate/turn"
)

// startTURN starts the built-in TURN server (turn = true) and ICE-TCP
// (ice_tcp = true) on the node's media path.
func (n *Node) startTURN(cfg config.Config) error {
	ip := cfg.IPv4Address
	if cfg.TURN {
		tc := turn.Config{
			Realm: cfg.TURNRealm, UDP: netip.AddrPortFrom(ip, uint16(cfg.TURNUDPListenPort)),
			Media: n.media.Candidate(), RelayIP: ip, Core: n.media, InProcess: cfg.TURNRelayInProcess,
			MaxAllocations: cfg.TURNMaxAllocationsPerConnection, RelayIdleTimeout: cfg.TURNAllocationIdleTimeout,
			MaxTCPConnections: cfg.TURNMaxTCPConnections, IdleTimeout: cfg.TURNAllocationIdleTimeout,
			Log: n.log.With("part", "turn"),
		}
		if cfg.TURNTCP {
			tc.TCP = netip.AddrPortFrom(ip, uint16(cfg.TURNTCPListenPort))
		}
		if cfg.TURNTLS && cfg.TURNTLSCertFile != "" {
			kp, err := tls.LoadX509KeyPair(cfg.TURNTLSCertFile, cfg.TURNTLSKeyFile)
			if err != nil {
				return fmt.Errorf("turn_tls_cert_file: %w", err)
			}
			tc.TLS = netip.AddrPortFrom(ip, uint16(cfg.TURNTLSListenPort))
			tc.TLSConfig = &tls.Config{Certificates: []tls.Certificate{kp}, MinVersion: tls.VersionTLS12}
		}
		t, err := turn.New(tc)
		if err != nil {
			return err
		}
		n.turn = t
	}
	if cfg.ICETCP {
		s, err := icetcp.Listen(icetcp.Config{
			Addr: netip.AddrPortFrom(ip, uint16(cfg.ICETCPPort)), Core: n.media,
			MaxConnections: cfg.TURNMaxTCPConnections, HandshakeTimeout: cfg.ICEConnectionStateFailedTimeout,
			IdleTimeout: cfg.ICEConnectionStateFailedTimeout, Log: n.log.With("part", "ice-tcp"),
		})
		if err != nil {
			return fmt.Errorf("ice_tcp_port: %w", err)
		}
		n.iceTCP = s
	}
	return nil
}

// iceServers implements signal.ICEServers: the built-in TURN server's
// URLs with credentials made for the connection (Sora:
// https://sora-doc.shiguredo.jp/TURN), then an external TURN server's.
type iceServers struct {
	cfg  config.Config
	turn *turn.Server
	// Ports in the URLs.
	udpPort, tcpPort, tlsPort int
}

func newICEServers(cfg config.Config, t *turn.Server) *iceServers {
	s := &iceServers{cfg: cfg, turn: t, udpPort: cfg.TURNUDPPort, tcpPort: cfg.TURNTCPPort, tlsPort: cfg.TURNTLSPort}
	if t != nil {
		udp, tcp, tlsAddr := t.Addrs()
		if s.udpPort == 0 {
			s.udpPort = int(udp.Port())
		}
		if s.tcpPort == 0 {
			s.tcpPort = int(tcp.Port())
		}
		if s.tlsPort == 0 {
			s.tlsPort = cfg.TURNTLSListenPort
			if tlsAddr.IsValid() {
				s.tlsPort = int(tlsAddr.Port())
			}
		}
	}
	return s
}

// Issue implements signal.ICEServers.
func (s *iceServers) Issue(connectionID, ufrag string, p signal.TURNPayout) []signal.ICEServer {
	out := []signal.ICEServer{}
	if s.turn != nil {
		host := s.cfg.IPv4Address.String()
		if s.cfg.TURNFQDN != "" {
			host = s.cfg.TURNFQDN
		}
		if p.FQDN != "" {
			host = p.FQDN
		}
		tlsHost := host
		if s.cfg.TURNTLSFQDN != "" {
			tlsHost = s.cfg.TURNTLSFQDN
		}
		if p.TLSFQDN != "" {
			tlsHost = p.TLSFQDN
		}
		var urls []string
		if !p.TCPOnly && !p.TLSOnly {
			urls = append(urls, "turn:"+hostPort(host, s.udpPort)+"?transport=udp")
		}
		if s.cfg.TURNTCP && !p.TLSOnly {
			urls = append(urls, "turn:"+hostPort(host, s.tcpPort)+"?transport=tcp")
		}
		if s.cfg.TURNTLS && !p.TCPOnly {
			urls = append(urls, "turns:"+hostPort(tlsHost, s.tlsPort)+"?transport=tcp")
		}
		if len(urls) > 0 {
			c := s.turn.Issue(connectionID, ufrag)
			out = append(out, signal.ICEServer{URLs: urls, Username: c.Username, Credential: c.Password})
		} else {
			// A payout that keeps no URL still gets no credentials.
			s.turn.Revoke(connectionID)
		}
	}
	if urls := s.cfg.ExternalTURNURLs(); len(urls) > 0 {
		user, pass := restCredentials(s.cfg.TURNExternalSecret, connectionID, time.Now().Add(s.cfg.TURNExternalTTL))
		out = append(out, signal.ICEServer{URLs: urls, Username: user, Credential: pass})
	}
	return out
}

// Revoke implements signal.ICEServers.
func (s *iceServers) Revoke(connectionID string) {
	if s.turn != nil {
		s.turn.Revoke(connectionID)
	}
}

func hostPort(host string, port int) string { return host + ":" + strconv.Itoa(port) }

// restCredentials are time-limited credentials of a TURN server that
// shares secret with the node (the TURN REST API of
// draft-uberti-behave-turn-rest-00, coturn's use-auth-secret): the
// username is the expiry in Unix seconds and a name, the password the
// base64 HMAC-SHA1 of the username keyed with the secret.
func restCredentials(secret, name string, expires time.Time) (username, password string) {
	username = strconv.FormatInt(expires.Unix(), 10) + ":" + name
	m := hmac.New(sha1.New, []byte(secret))
	m.Write([]byte(username))
	return username, base64.StdEncoding.EncodeToString(m.Sum(nil))
}
