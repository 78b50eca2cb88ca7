// Package icetcp serves ICE-TCP (RFC 6544): the node's passive TCP host
// candidate. A client that cannot reach the UDP candidate (UDP blocked)
// opens a TCP connection to it and sends its ICE checks, DTLS and SRTP as
// RFC 4571 frames; each connection is a link of the media core
// (rtpcore.Link), so its datagrams are handled by the same receive loops as
// UDP ones, in process, and what the core sends back is framed onto the
// connection.
//
// # Limits
//
// At most MaxConnections connections are open at once (more are closed at
// accept). A connection must pass an ICE check (a Binding request with a
// connection's ufrag and password, which the core answers) within
// HandshakeTimeout, and is closed when the transport it reached closes,
// or once the core has sent it nothing for IdleTimeout (the client went
// quiet: ICE consent answers and media keep a live one busy). What the core sends to a client
// that does not read is queued up to QueueBytes and dropped beyond; a frame
// longer than a datagram closes the connection.
package icetcp

import (
	"bufio"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hayate-sfu/hayate/rtpcore"
)

// Config is what the ICE-TCP server needs.
type Config struct {
	// Addr is the listening address (ipv4_address:ice_tcp_port; port 0
	// picks a free one).
	Addr netip.AddrPort
	// Core is the media path the connections feed.
	Core *rtpcore.Engine
	// MaxConnections bounds the open connections (default 10000).
	MaxConnections int
	// HandshakeTimeout is the time a connection has to pass an ICE check,
	// IdleTimeout the time the core may send it nothing (default 10 s each).
	HandshakeTimeout, IdleTimeout time.Duration
	// QueueBytes bounds what waits to be written to one connection
	// (default 256 KiB).
	QueueBytes int
	// WriteTimeout closes a connection a write to which blocks this long
	// (default 5 s).
	WriteTimeout time.Duration
	Log          *slog.Logger
}

// Stats are the ICE-TCP counters of GetStatsReport.
type Stats struct {
	Open              int64  `json:"connections"`
	Accepted          uint64 `json:"total_accepted"`
	Refused           uint64 `json:"total_refused"`
	HandshakeTimeouts uint64 `json:"total_handshake_timeouts"`
	IdleClosed        uint64 `json:"total_idle_closed"`
	Ended             uint64 `json:"total_ended"`
	InvalidFrames     uint64 `json:"total_invalid_frames"`
	QueueFull         uint64 `json:"total_dropped_queue_full"`
	FramesIn          uint64 `json:"total_received_frames"`
	FramesOut         uint64 `json:"total_sent_frames"`
}

// Server is the ICE-TCP listener and its connections.
type Server struct {
	cfg  Config
	ln   net.Listener
	addr netip.AddrPort

	mu    sync.Mutex
	conns map[*conn]struct{}

	open                                                           atomic.Int64
	accepted, refused, hsTimeouts, idle, ended, invalid, queueFull atomic.Uint64
	framesIn, framesOut                                            atomic.Uint64
	stop                                                           chan struct{}
	wg                                                             sync.WaitGroup
	closeOnce                                                      sync.Once
}

// Listen binds the ICE-TCP port and serves it.
func Listen(cfg Config) (*Server, error) {
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = 10000
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 10 * time.Second
	}
	if cfg.QueueBytes <= 0 {
		cfg.QueueBytes = 256 << 10
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 5 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp4", cfg.Addr.String())
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, ln: ln, conns: map[*conn]struct{}{}, stop: make(chan struct{})}
	s.addr = netip.AddrPortFrom(cfg.Addr.Addr(), uint16(ln.Addr().(*net.TCPAddr).Port))
	s.wg.Add(2)
	go s.accept()
	go s.janitor()
	return s, nil
}

// Addr is the candidate address: the configured address and bound port.
func (s *Server) Addr() netip.AddrPort { return s.addr }

// Stats returns the counters.
func (s *Server) Stats() Stats {
	return Stats{
		Open: s.open.Load(), Accepted: s.accepted.Load(), Refused: s.refused.Load(),
		HandshakeTimeouts: s.hsTimeouts.Load(), IdleClosed: s.idle.Load(), Ended: s.ended.Load(), InvalidFrames: s.invalid.Load(),
		QueueFull: s.queueFull.Load(), FramesIn: s.framesIn.Load(), FramesOut: s.framesOut.Load(),
	}
}

// Close stops listening and closes every connection.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.stop)
		s.ln.Close()
		s.mu.Lock()
		all := make([]*conn, 0, len(s.conns))
		for c := range s.conns {
			all = append(all, c)
		}
		s.mu.Unlock()
		for _, c := range all {
			c.close()
		}
		s.wg.Wait()
	})
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		if s.open.Load() >= int64(s.cfg.MaxConnections) {
			s.refused.Add(1)
			nc.Close()
			continue
		}
		s.serve(nc)
	}
}

// janitor closes connections that did not pass an ICE check in time and
// connections the core no longer talks to.
func (s *Server) janitor() {
	defer s.wg.Done()
	tick := time.NewTicker(min(s.cfg.HandshakeTimeout, s.cfg.IdleTimeout) / 4)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-tick.C:
			s.mu.Lock()
			var late, idle []*conn
			for c := range s.conns {
				switch {
				case !c.link.Answered() && now.Sub(c.start) > s.cfg.HandshakeTimeout:
					late = append(late, c)
				case c.link.Answered() && now.Sub(c.link.LastSent()) > s.cfg.IdleTimeout:
					idle = append(idle, c)
				}
			}
			s.mu.Unlock()
			for _, c := range late {
				s.hsTimeouts.Add(1)
				c.close()
			}
			for _, c := range idle {
				s.idle.Add(1)
				c.close()
			}
		}
	}
}

// conn is one ICE-TCP connection.
type conn struct {
	s     *Server
	nc    net.Conn
	link  *rtpcore.Link
	start time.Time

	// pending holds framed datagrams for the writer; spare is the buffer
	// it wrote last, reused next.
	mu      sync.Mutex
	pending []byte
	spare   []byte
	kick    chan struct{}

	done      chan struct{}
	closeOnce sync.Once
}

func (s *Server) serve(nc net.Conn) {
	remote, err := netip.ParseAddrPort(nc.RemoteAddr().String())
	if err != nil {
		nc.Close()
		return
	}
	c := &conn{s: s, nc: nc, start: time.Now(), kick: make(chan struct{}, 1), done: make(chan struct{})}
	if c.link, err = s.cfg.Core.Link(rtpcore.LinkICETCP, remote, c.out); err != nil {
		s.refused.Add(1)
		nc.Close()
		return
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true) // frames are datagrams: no Nagle delay
	}
	s.mu.Lock()
	select {
	case <-s.stop:
		s.mu.Unlock()
		c.link.Close()
		nc.Close()
		return
	default:
	}
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	s.open.Add(1)
	s.accepted.Add(1)
	s.wg.Add(2)
	go c.read()
	go c.write()
}

// out receives a datagram the core sends to this connection (on a media
// goroutine): it is framed onto the pending buffer, or dropped when the
// client lets more than QueueBytes pile up.
func (c *conn) out(p []byte) {
	c.mu.Lock()
	if len(c.pending)+2+len(p) > c.s.cfg.QueueBytes {
		c.mu.Unlock()
		c.s.queueFull.Add(1)
		return
	}
	c.pending = appendFrame(c.pending, p)
	c.mu.Unlock()
	c.s.framesOut.Add(1)
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// read hands every frame of the connection to the core.
func (c *conn) read() {
	defer c.s.wg.Done()
	defer c.close()
	r := bufio.NewReaderSize(c.nc, 4096)
	buf := make([]byte, MaxFrame)
	for {
		n, err := readFrame(r, buf)
		if err != nil {
			if errors.Is(err, ErrFrameTooLarge) {
				c.s.invalid.Add(1)
			}
			return
		}
		if n == 0 {
			continue
		}
		c.s.framesIn.Add(1)
		c.link.Send(buf[:n])
	}
}

// write writes what is pending, all of it in one call, whenever out adds
// some.
func (c *conn) write() {
	defer c.s.wg.Done()
	for {
		select {
		case <-c.kick:
		case <-c.done:
			return
		case <-c.link.Ended():
			// The connection's transport closed: nothing will talk to
			// this TCP connection any more.
			c.s.ended.Add(1)
			c.close()
			return
		}
		c.mu.Lock()
		buf := c.pending
		c.pending, c.spare = c.spare[:0], nil
		c.mu.Unlock()
		if len(buf) == 0 {
			continue
		}
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
		if _, err := c.nc.Write(buf); err != nil {
			c.close()
			return
		}
		c.mu.Lock()
		c.spare = buf[:0]
		c.mu.Unlock()
	}
}

func (c *conn) close() {
	c.closeOnce.Do(func() {
		close(c.done)
		c.link.Close()
		c.nc.Close()
		c.s.mu.Lock()
		delete(c.s.conns, c)
		c.s.mu.Unlock()
		c.s.open.Add(-1)
	})
}
