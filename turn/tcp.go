package turn

import (
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// tcpListener is the TURN-TCP listener (and the TCP under TURN-TLS): at
// most MaxTCPConnections connections at once, each closed when it sends
// nothing for IdleTimeout.
type tcpListener struct {
	net.Listener
	s *Server

	mu    sync.Mutex
	conns map[*tcpConn]struct{}
}

func newTCPListener(s *Server, ln net.Listener) *tcpListener {
	return &tcpListener{Listener: ln, s: s, conns: map[*tcpConn]struct{}{}}
}

// Accept implements net.Listener.
func (l *tcpListener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return nil, err
		}
		if l.s.st.tcpOpen.Load() >= int64(l.s.cfg.MaxTCPConnections) {
			l.s.st.tcpRefused.Add(1)
			nc.Close()
			continue
		}
		if tc, ok := nc.(*net.TCPConn); ok {
			_ = tc.SetNoDelay(true)
		}
		c := &tcpConn{Conn: nc, l: l}
		l.mu.Lock()
		l.conns[c] = struct{}{}
		l.mu.Unlock()
		l.s.st.tcpOpen.Add(1)
		l.s.st.tcpAccepted.Add(1)
		return c, nil
	}
}

// pionListener is what pion accepts from: plain TURN-TCP connections as
// frameConns.
type pionListener struct{ *tcpListener }

// Accept implements net.Listener.
func (l pionListener) Accept() (net.Conn, error) {
	c, err := l.tcpListener.Accept()
	if err != nil {
		return nil, err
	}
	return &frameConn{Conn: c, low: c.(*tcpConn)}, nil
}

// closeAll closes every connection (the server is stopping).
func (l *tcpListener) closeAll() {
	l.mu.Lock()
	all := make([]*tcpConn, 0, len(l.conns))
	for c := range l.conns {
		all = append(all, c)
	}
	l.mu.Unlock()
	for _, c := range all {
		c.byUs.Store(true)
		c.Close()
	}
}

// tcpConn is one TURN-TCP (or TURN-TLS) TCP connection.
type tcpConn struct {
	net.Conn
	l *tcpListener
	// byUs: Hayate closed it (shutdown, failed TLS handshake).
	byUs      atomic.Bool
	closeOnce sync.Once
}

// Read implements net.Conn with the idle deadline.
func (c *tcpConn) Read(p []byte) (int, error) {
	_ = c.Conn.SetReadDeadline(time.Now().Add(c.l.s.cfg.IdleTimeout))
	n, err := c.Conn.Read(p)
	var ne net.Error
	if err != nil && errors.As(err, &ne) && ne.Timeout() {
		c.l.s.st.tcpIdleClosed.Add(1)
	}
	return n, err
}

// Close implements net.Conn.
func (c *tcpConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
		c.l.s.st.tcpOpen.Add(-1)
	})
	return err
}

// frameConn is the stream pion reads TURN frames from (the TCP
// connection, or the TLS connection over it). A close that follows no
// failed read and that Hayate did not make is pion giving up on the
// stream: a frame that is neither STUN nor ChannelData, counted as
// Sora's total_received_invalid_turn_tcp_packet.
type frameConn struct {
	net.Conn
	low       *tcpConn
	readErr   atomic.Bool
	closeOnce sync.Once
}

// Read implements net.Conn.
func (c *frameConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil {
		c.readErr.Store(true)
	}
	return n, err
}

// Close implements net.Conn.
func (c *frameConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		if !c.readErr.Load() && !c.low.byUs.Load() {
			c.low.l.s.st.invalidTCP.Add(1)
		}
	})
	return err
}

// tlsListener is the TURN-TLS listener: it runs each handshake on a
// goroutine of its own, bounded by HandshakeTimeout, and hands pion only
// connections whose handshake succeeded (pion does not close a
// connection whose handshake fails), as frameConns.
type tlsListener struct {
	tcp   *tcpListener
	cfg   *tls.Config
	ready chan net.Conn
	done  chan struct{}
	once  sync.Once
	err   error
}

func newTLSListener(s *Server, tcp *tcpListener, cfg *tls.Config) *tlsListener {
	l := &tlsListener{tcp: tcp, cfg: cfg, ready: make(chan net.Conn), done: make(chan struct{})}
	go l.accept(s)
	return l
}

func (l *tlsListener) accept(s *Server) {
	for {
		nc, err := l.tcp.Accept()
		if err != nil {
			l.err = err
			l.Close()
			return
		}
		go func() {
			tc := tls.Server(nc, l.cfg)
			if err := s.handshake(tc); err != nil {
				s.st.tlsFailures.Add(1)
				nc.(*tcpConn).byUs.Store(true)
				nc.Close()
				return
			}
			fc := &frameConn{Conn: tc, low: nc.(*tcpConn)}
			select {
			case l.ready <- fc:
			case <-l.done:
				fc.low.byUs.Store(true)
				fc.Close()
			}
		}()
	}
}

// Accept implements net.Listener.
func (l *tlsListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (l *tlsListener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.tcp.Close()
	})
	return nil
}

// Addr implements net.Listener.
func (l *tlsListener) Addr() net.Addr { return l.tcp.Addr() }

func (l *tlsListener) closeAll() { l.tcp.closeAll() }
