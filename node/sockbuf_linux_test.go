package node

import (
	"bytes"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// setClientReadBuffer gives a test client's socket a receive buffer of
// size bytes: SO_RCVBUFFORCE (the tests run as root), else SO_RCVBUF,
// which net.core.rmem_max caps.
func setClientReadBuffer(c syscall.Conn, size int) {
	raw, err := c.SyscallConn()
	if err != nil {
		return
	}
	_ = raw.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, size) != nil {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, size)
		}
	})
}

// udpRcvbufErrors is the kernel's count of UDP datagrams dropped on a full
// socket receive buffer in this network namespace (Udp RcvbufErrors of
// /proc/net/snmp).
func udpRcvbufErrors() (uint64, bool) {
	data, err := os.ReadFile("/proc/net/snmp")
	if err != nil {
		return 0, false
	}
	var names []string
	for line := range bytes.Lines(data) {
		f := strings.Fields(string(line))
		if len(f) == 0 || f[0] != "Udp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, name := range names {
			if name == "RcvbufErrors" && i < len(f) {
				v, err := strconv.ParseUint(f[i], 10, 64)
				return v, err == nil
			}
		}
	}
	return 0, false
}
