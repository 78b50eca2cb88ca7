// Package chanconn is a net.PacketConn whose reads come from a channel and
// whose writes go to a function: the shape pion/dtls needs when DTLS
// datagrams are demultiplexed from a shared UDP socket by someone else (the
// media receive loop on the server, the reader of a test client).
package chanconn

import (
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/pion/transport/v5/deadline"
)

// Conn is a net.PacketConn over channels. Read deadlines work (pion/dtls
// cancels blocked reads by setting a past deadline); write deadlines are
// ignored (writes do not block).
type Conn struct {
	in     <-chan []byte
	closed <-chan struct{}
	remote func() (netip.AddrPort, bool)
	write  func(p []byte, to netip.AddrPort) error
	local  netip.AddrPort
	rd     *deadline.Deadline
}

// New returns a Conn reading datagrams from in until closed is closed,
// reporting remote() as their source, and sending with write to remote().
func New(in <-chan []byte, closed <-chan struct{}, local netip.AddrPort,
	remote func() (netip.AddrPort, bool), write func([]byte, netip.AddrPort) error) *Conn {
	return &Conn{in: in, closed: closed, local: local, remote: remote, write: write, rd: deadline.New()}
}

// ReadFrom implements net.PacketConn.
func (c *Conn) ReadFrom(p []byte) (int, net.Addr, error) {
	select {
	case b := <-c.in:
		addr, _ := c.remote()
		return copy(p, b), net.UDPAddrFromAddrPort(addr), nil
	case <-c.rd.Done():
		return 0, nil, os.ErrDeadlineExceeded
	case <-c.closed:
		return 0, nil, net.ErrClosed
	}
}

// WriteTo implements net.PacketConn; the address argument is ignored, the
// datagram goes to the current remote.
func (c *Conn) WriteTo(p []byte, _ net.Addr) (int, error) {
	to, ok := c.remote()
	if !ok {
		return 0, net.ErrClosed
	}
	if err := c.write(p, to); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close implements net.PacketConn; the owner closes the channel side.
func (c *Conn) Close() error { return nil }

// LocalAddr implements net.PacketConn.
func (c *Conn) LocalAddr() net.Addr { return net.UDPAddrFromAddrPort(c.local) }

// SetDeadline implements net.PacketConn (reads only).
func (c *Conn) SetDeadline(t time.Time) error { c.rd.Set(t); return nil }

// SetReadDeadline implements net.PacketConn.
func (c *Conn) SetReadDeadline(t time.Time) error { c.rd.Set(t); return nil }

// SetWriteDeadline implements net.PacketConn; writes never block.
func (c *Conn) SetWriteDeadline(time.Time) error { return nil }
