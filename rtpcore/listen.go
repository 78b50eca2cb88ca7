package rtpcore

import "net/netip"

// ListenMedia binds n SO_REUSEPORT sockets of the epoll backend to addr
// (port 0 picks one port for all). Load tools use it to send batches the
// way the server does.
func ListenMedia(addr netip.AddrPort, n int) ([]PacketIO, error) {
	socks, err := listenMedia(addr, n)
	if err != nil {
		return nil, err
	}
	out := make([]PacketIO, len(socks))
	for i, s := range socks {
		out[i] = s
	}
	return out, nil
}
