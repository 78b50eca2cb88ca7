package turn

import "errors"

// Errors of the TURN server.
var (
	// ErrNotMedia is a datagram a client asked to relay to an address other
	// than the node's media address: Hayate's TURN server is never an open
	// relay.
	ErrNotMedia = errors.New("turn: relaying only to this node's media address")
	// ErrForeignUfrag is an ICE check relayed through an allocation of one
	// connection towards another connection's transport.
	ErrForeignUfrag = errors.New("turn: ICE check for another connection")
	// ErrNoCredentials is an allocation under a username that names no live
	// connection.
	ErrNoCredentials = errors.New("turn: no such credentials")
	// ErrQuota is an allocation over the connection's limit.
	ErrQuota = errors.New("turn: allocation quota reached")
	// ErrTCPRelay is an RFC 6062 TCP allocation, which Hayate does not serve.
	ErrTCPRelay = errors.New("turn: TCP relays are not served")
	// ErrClosed is an operation on a closed allocation or server.
	ErrClosed = errors.New("turn: closed")
	// ErrNoListener is a server with every transport off.
	ErrNoListener = errors.New("turn: no transport enabled")
)
