package cluster

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// streamLayer is raft's StreamLayer over our listener and dialer, so that
// the test network can cut raft traffic and RPC traffic alike.
type streamLayer struct {
	net.Listener
	dial      func(ctx context.Context, addr string) (net.Conn, error)
	advertise net.Addr
	handlers  handlerConns
}

var _ raft.StreamLayer = (*streamLayer)(nil)

// Accept returns the next connection raft's transport will serve, tracked
// so that teardown can end its handler and wait for it.
func (s *streamLayer) Accept() (net.Conn, error) {
	conn, err := s.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return s.handlers.track(conn)
}

// handlerConns tracks the connections raft's transport accepted. The
// transport answers heartbeats on the connection's own goroutine, not on
// one of raft's: Raft.Shutdown does not wait for it, and a heartbeat from a
// newer term writes the stable store. Teardown therefore ends every
// handler and waits for it before it closes the stores (closed under a
// handler, raft panics: "failed to save current term: database not open").
type handlerConns struct {
	mu     sync.Mutex
	open   map[*handlerConn]struct{}
	shut   bool
	active sync.WaitGroup
}

// handlerConn is an accepted connection; Close is its handler's last act.
type handlerConn struct {
	net.Conn
	set  *handlerConns
	once sync.Once
}

func (h *handlerConns) track(conn net.Conn) (net.Conn, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.shut {
		_ = conn.Close()
		return nil, net.ErrClosed
	}
	if h.open == nil {
		h.open = make(map[*handlerConn]struct{})
	}
	hc := &handlerConn{Conn: conn, set: h}
	h.open[hc] = struct{}{}
	h.active.Add(1)
	return hc, nil
}

func (c *handlerConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.set.mu.Lock()
		delete(c.set.open, c)
		c.set.mu.Unlock()
		c.set.active.Done()
	})
	return err
}

// shutdown closes every tracked connection under its handler (its next
// read fails, so it returns) and waits up to patience for the handlers to
// finish what they were doing. It reports whether they all did.
func (h *handlerConns) shutdown(patience time.Duration) bool {
	h.mu.Lock()
	h.shut = true
	for c := range h.open {
		_ = c.Conn.Close()
	}
	h.mu.Unlock()
	done := make(chan struct{})
	go func() {
		h.active.Wait()
		close(done)
	}()
	t := time.NewTimer(patience)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

func (s *streamLayer) Dial(addr raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return s.dial(ctx, string(addr))
}

func (s *streamLayer) Addr() net.Addr { return s.advertise }

func (c *Cluster) listen(addr string) (net.Listener, error) {
	if c.cfg.hooks.listen != nil {
		return c.cfg.hooks.listen(addr)
	}
	var lc net.ListenConfig
	return lc.Listen(context.Background(), "tcp", addr)
}

// dial opens a connection to another node. It leaves from the address the
// RPC listener is bound to, when that is one address: a node's cluster
// traffic then comes from its cluster address both ways (firewall rules and
// multi-homed hosts see one address per node).
func (c *Cluster) dial(ctx context.Context, addr string) (net.Conn, error) {
	if c.cfg.hooks.dial != nil {
		return c.cfg.hooks.dial(ctx, addr)
	}
	var d net.Dialer
	if ip := bindIP(c.cfg.RPCListen); ip != nil {
		d.LocalAddr = &net.TCPAddr{IP: ip}
	}
	return d.DialContext(ctx, "tcp", addr)
}

// bindIP is the IP of a listen address host:port, or nil when the host is
// empty, a name or unspecified (0.0.0.0).
func bindIP(listen string) net.IP {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.IsUnspecified() {
		return nil
	}
	return ip
}

// advertised returns adv, or the listener's address when adv is empty; an
// unspecified IP (0.0.0.0) cannot be advertised.
func advertised(adv string, ln net.Listener) (net.Addr, error) {
	if adv == "" {
		a := ln.Addr()
		if ta, ok := a.(*net.TCPAddr); ok && ta.IP.IsUnspecified() {
			return nil, fmt.Errorf("%w: listen address %v is not advertisable; set the Advertise address", ErrInvalidConfig, a)
		}
		return a, nil
	}
	ta, err := net.ResolveTCPAddr("tcp", adv)
	if err != nil {
		return nil, fmt.Errorf("%w: advertise address %q: %v", ErrInvalidConfig, adv, err)
	}
	return ta, nil
}
