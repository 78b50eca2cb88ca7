// Package sdnotify tells systemd about the service's state (sd_notify(3)):
// one datagram of newline-separated VAR=value assignments to the unix
// socket named by $NOTIFY_SOCKET. It is the protocol alone, a dozen lines,
// instead of a dependency on a systemd library.
package sdnotify

import (
	"net"
)

// Notifier sends to one notification socket. A Notifier for no socket (the
// service is not run by systemd with Type=notify) does nothing.
type Notifier struct {
	addr string
}

// New returns a notifier for socket, the value of $NOTIFY_SOCKET: a path,
// or an abstract socket name starting with '@'.
func New(socket string) *Notifier { return &Notifier{addr: socket} }

// Enabled reports whether there is a socket to notify.
func (n *Notifier) Enabled() bool { return n.addr != "" }

// Notify sends state, for example "READY=1" or "STOPPING=1\nSTATUS=draining".
func (n *Notifier) Notify(state string) error {
	if n.addr == "" {
		return nil
	}
	// Go maps a leading '@' to the abstract namespace itself.
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.addr, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte(state))
	return err
}
