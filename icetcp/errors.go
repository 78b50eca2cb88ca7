package icetcp

import "errors"

// Errors of ICE-TCP.
var (
	// ErrFrameTooLarge is a frame whose length is over MaxFrame: the
	// connection is closed.
	ErrFrameTooLarge = errors.New("icetcp: frame larger than a datagram")
	// ErrClosed is an operation on a closed server.
	ErrClosed = errors.New("icetcp: closed")
)
