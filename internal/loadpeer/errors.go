package loadpeer

import "errors"

// Errors of a peer.
var (
	// ErrICE is an ICE check to the server that got no answer.
	ErrICE = errors.New("loadpeer: ICE check got no answer")
	// ErrClosed is an operation on a closed peer.
	ErrClosed = errors.New("loadpeer: closed")
	// ErrNoChannel is a send on a label the server has not opened.
	ErrNoChannel = errors.New("loadpeer: no DataChannel with that label")

	// errFrame is an ICE-TCP frame larger than the reader's buffer.
	errFrame = errors.New("loadpeer: ICE-TCP frame larger than the buffer")
)
