package cluster

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// streamLayer is raft's StreamLayer over our listener and dialer, so that
// the test network can cut raft traffic and RPC traffic alike.
type streamLayer struct {
	net.Listener
	dial      func(ctx context.Context, addr string) (net.Conn, error)
	advertise net.Addr
}

var _ raft.StreamLayer = (*streamLayer)(nil)

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
