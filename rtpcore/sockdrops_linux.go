package rtpcore

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// SO_MEMINFO's array (include/uapi/linux/sock_diag.h): its length and the
// index of sk_drops.
const (
	skMeminfoVars  = 9
	skMeminfoDrops = 8
)

// receiveDrops implements receiveDropper: the socket's sk_drops, read with
// SO_MEMINFO (socket(7); SK_MEMINFO_DROPS, include/uapi/linux/sock_diag.h).
// With no socket filter on the media sockets these are the datagrams that
// found the receive buffer full: the node did not read fast enough, and
// every subscriber of a publisher lost what was dropped. Reading it is a
// getsockopt, done when the stats are read, never on the packet path.
func (m *mmsgIO) receiveDrops() (uint64, bool) {
	var mem [skMeminfoVars]uint32
	var serr error
	err := m.raw.Control(func(fd uintptr) {
		size := uint32(unsafe.Sizeof(mem))
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&mem[0])), uintptr(unsafe.Pointer(&size)), 0)
		if errno != 0 {
			serr = errno
		} else if size < (skMeminfoDrops+1)*4 {
			serr = unix.EINVAL
		}
	})
	if err != nil || serr != nil {
		return 0, false
	}
	return uint64(mem[skMeminfoDrops]), true
}

// receiveDrops implements receiveDropper for the backend under the links.
func (r *routeIO) receiveDrops() (uint64, bool) {
	if d, ok := r.PacketIO.(receiveDropper); ok {
		return d.receiveDrops()
	}
	return 0, false
}
