//go:build !linux

package rtpcore

import "net/netip"

// The media sockets are Linux's (recvmmsg, sendmmsg, UDP GSO, io_uring).
// Elsewhere the package builds, so that the control plane can be built,
// vetted and tested on a developer's machine, and every socket refuses
// with ErrUnsupportedOS.

// mmsgIO is the Linux socket backend; no value of it exists here.
type mmsgIO struct{ PacketIO }

func listenMedia(netip.AddrPort, int) ([]*mmsgIO, error) { return nil, ErrUnsupportedOS }

// UringAvailable says why io_uring cannot serve: this is not Linux.
func UringAvailable() error { return ErrUnsupportedOS }

// ListenMediaUring is Linux only.
func ListenMediaUring(netip.AddrPort, int) ([]PacketIO, error) { return nil, ErrUnsupportedOS }
