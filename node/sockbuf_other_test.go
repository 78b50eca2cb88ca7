//go:build !linux

package node

import "syscall"

// setClientReadBuffer asks for a receive buffer of size bytes.
func setClientReadBuffer(c syscall.Conn, size int) {
	if b, ok := c.(interface{ SetReadBuffer(int) error }); ok {
		_ = b.SetReadBuffer(size)
	}
}

// udpRcvbufErrors is not read on this system.
func udpRcvbufErrors() (uint64, bool) { return 0, false }
