package loadpeer

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	pturn "github.com/pion/turn/v5"
)

// The ways a peer reaches the server's media (Options.Transport).
const (
	TransportUDP     = "udp"      // its own UDP socket to the UDP host candidate (default)
	TransportTURNUDP = "turn-udp" // an allocation on the server's TURN over UDP (the offer's iceServers)
	TransportTURNTCP = "turn-tcp" // an allocation on the server's TURN over TCP
	TransportTCP     = "tcp"      // ICE-TCP to the passive TCP candidate, RFC 4571 frames
)

// link carries the peer's datagrams to the server's media address and back.
type link interface {
	send(b []byte) error
	recv(buf []byte) (int, error)
	setReadDeadline(t time.Time) error
	local() netip.AddrPort
	close() error
}

// udpLink is the peer's own UDP socket.
type udpLink struct {
	conn   *net.UDPConn
	server netip.AddrPort
}

func (l *udpLink) send(b []byte) error { _, err := l.conn.WriteToUDPAddrPort(b, l.server); return err }

func (l *udpLink) recv(buf []byte) (int, error) {
	n, _, err := l.conn.ReadFromUDPAddrPort(buf)
	return n, err
}

func (l *udpLink) setReadDeadline(t time.Time) error { return l.conn.SetReadDeadline(t) }
func (l *udpLink) local() netip.AddrPort             { return l.conn.LocalAddr().(*net.UDPAddr).AddrPort() }
func (l *udpLink) close() error                      { return l.conn.Close() }

// turnLink is an allocation on the server's TURN: datagrams go to the
// media address through it.
type turnLink struct {
	client *pturn.Client
	under  net.PacketConn // the socket to the TURN server
	relay  net.PacketConn
	server net.Addr
	once   sync.Once
}

func (l *turnLink) send(b []byte) error { _, err := l.relay.WriteTo(b, l.server); return err }

func (l *turnLink) recv(buf []byte) (int, error) {
	n, _, err := l.relay.ReadFrom(buf)
	return n, err
}

func (l *turnLink) setReadDeadline(t time.Time) error { return l.relay.SetReadDeadline(t) }

func (l *turnLink) local() netip.AddrPort {
	a, _ := netip.ParseAddrPort(l.relay.LocalAddr().String())
	return a
}

func (l *turnLink) close() error {
	l.once.Do(func() {
		l.relay.Close()
		l.client.Close()
		l.under.Close()
	})
	return nil
}

// dialTURN allocates on the TURN server of the offer's iceServers whose
// URL has the transport ("udp" or "tcp"), with the offer's credentials.
func dialTURN(config json.RawMessage, transport string, server netip.AddrPort) (*turnLink, error) {
	var c struct {
		ICEServers []struct {
			URLs       []string `json:"urls"`
			Username   string   `json:"username"`
			Credential string   `json:"credential"`
		} `json:"iceServers"`
	}
	if err := json.Unmarshal(config, &c); err != nil {
		return nil, err
	}
	for _, s := range c.ICEServers {
		for _, u := range s.URLs {
			rest, ok := strings.CutPrefix(u, "turn:")
			if !ok || !strings.HasSuffix(rest, "?transport="+transport) {
				continue
			}
			addr := strings.TrimSuffix(rest, "?transport="+transport)
			var under net.PacketConn
			if transport == "tcp" {
				tc, err := net.Dial("tcp4", addr)
				if err != nil {
					return nil, err
				}
				under = pturn.NewSTUNConn(tc)
			} else {
				pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
				if err != nil {
					return nil, err
				}
				under = pc
			}
			cl, err := pturn.NewClient(&pturn.ClientConfig{TURNServerAddr: addr, STUNServerAddr: addr,
				Username: s.Username, Password: s.Credential, Conn: under})
			if err == nil {
				err = cl.Listen()
			}
			var relay net.PacketConn
			if err == nil {
				relay, err = cl.Allocate()
			}
			if err != nil {
				if cl != nil {
					cl.Close()
				}
				under.Close()
				return nil, fmt.Errorf("loadpeer: TURN allocation on %s: %w", u, err)
			}
			return &turnLink{client: cl, under: under, relay: relay, server: net.UDPAddrFromAddrPort(server)}, nil
		}
	}
	return nil, fmt.Errorf("loadpeer: no turn: URL with transport=%s in the offer's iceServers", transport)
}

// tcpLink is an ICE-TCP connection (RFC 6544) with RFC 4571 framing.
type tcpLink struct {
	conn net.Conn
	r    *bufio.Reader
	wmu  sync.Mutex
	wbuf []byte
}

func dialTCP(server netip.AddrPort) (*tcpLink, error) {
	c, err := net.Dial("tcp4", server.String())
	if err != nil {
		return nil, err
	}
	return &tcpLink{conn: c, r: bufio.NewReaderSize(c, 64<<10)}, nil
}

func (l *tcpLink) send(b []byte) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.wbuf = append(binary.BigEndian.AppendUint16(l.wbuf[:0], uint16(len(b))), b...)
	_, err := l.conn.Write(l.wbuf)
	return err
}

func (l *tcpLink) recv(buf []byte) (int, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(l.r, hdr[:]); err != nil {
		return 0, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n > len(buf) {
		return 0, errFrame
	}
	_, err := io.ReadFull(l.r, buf[:n])
	return n, err
}

func (l *tcpLink) setReadDeadline(t time.Time) error { return l.conn.SetReadDeadline(t) }

func (l *tcpLink) local() netip.AddrPort {
	a, _ := netip.ParseAddrPort(l.conn.LocalAddr().String())
	return a
}

func (l *tcpLink) close() error { return l.conn.Close() }

// tcpCandidate finds the passive ICE-TCP candidate in an offer.
func tcpCandidate(sdp string) (netip.AddrPort, bool) {
	for _, line := range strings.Split(sdp, "\n") {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(line), "a=candidate:"))
		if len(f) >= 10 && strings.EqualFold(f[2], "tcp") && f[9] == "passive" {
			if ap, err := netip.ParseAddrPort(net.JoinHostPort(f[4], f[5])); err == nil {
				return ap, true
			}
		}
	}
	return netip.AddrPort{}, false
}
