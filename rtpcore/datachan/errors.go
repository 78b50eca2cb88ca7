package datachan

import "errors"

// Errors of the package.
var (
	// ErrMalformed is a DCEP message that does not decode (RFC 8832 §5).
	ErrMalformed = errors.New("datachan: malformed DCEP message")
	// ErrUnknownMessage is a DCEP message type other than OPEN and ACK.
	ErrUnknownMessage = errors.New("datachan: unknown DCEP message type")
	// ErrTooLarge is a message over the peer's or our max-message-size.
	ErrTooLarge = errors.New("datachan: message over max-message-size")
	// ErrQueueFull is a send that would take the association's queued
	// bytes over the configured bound: the peer reads too slowly.
	ErrQueueFull = errors.New("datachan: send queue full")
	// ErrNotOpen is a send on a channel that is closed or a label that
	// names no channel.
	ErrNotOpen = errors.New("datachan: channel not open")
	// ErrClosed is an operation on a closed association.
	ErrClosed = errors.New("datachan: association closed")
	// ErrNoStreamID is an Open when every stream id of our parity is in use.
	ErrNoStreamID = errors.New("datachan: no stream id left")
	// ErrBadOptions is an Open with both a packet lifetime and a
	// retransmission limit (RFC 8831 §6.4 allows one of them).
	ErrBadOptions = errors.New("datachan: max_packet_life_time and max_retransmits are exclusive")
)
