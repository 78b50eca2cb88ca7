package media

import "errors"

// Errors of DataTransport.SendData.
var (
	// ErrDataNotOpen is a label with no open channel.
	ErrDataNotOpen = errors.New("media: DataChannel not open")
	// ErrDataTooLarge is a message over the peer's max-message-size.
	ErrDataTooLarge = errors.New("media: DataChannel message over max-message-size")
	// ErrDataQueueFull is a peer that does not read its DataChannels fast
	// enough: its send queue is at the configured bound.
	ErrDataQueueFull = errors.New("media: DataChannel send queue full")
)
