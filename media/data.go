package media

// DataChannels across the seam: signal says which channels a transport
// opens (in Remote.Data, from an answer that accepted the m=application
// section), sends messages through DataTransport and hears of messages and
// channel state through DataEvents. The SCTP association runs in the
// media path, over the transport's DTLS.

// DataChannel is one channel the transport opens once SCTP is up
// (RFC 8831 §6.4).
type DataChannel struct {
	Label, Protocol string
	// Unordered delivery; MaxPacketLifeTime (ms) or MaxRetransmits, at most
	// one of them, for partial reliability.
	Unordered         bool
	MaxPacketLifeTime *uint32
	MaxRetransmits    *uint32
	// SendOnly: the peer never sends on it, so no reader is kept for it
	// and it counts as open (DataOpen) as soon as it is opened.
	SendOnly bool
}

// DataRemote is the peer's side of the m=application section.
type DataRemote struct {
	// Channels are opened in order once the association is up.
	Channels []DataChannel
	// MaxMessageSize is the peer's a=max-message-size: -1 when absent
	// (then 64 KiB), 0 for no limit (RFC 8841 §6).
	MaxMessageSize int
}

// DataTransport is implemented by transports that carry DataChannels.
type DataTransport interface {
	// SendData queues one message on the channel labelled label; it does
	// not block. Errors: ErrDataNotOpen, ErrDataTooLarge, ErrDataQueueFull
	// (the peer reads too slowly: the caller closes the connection).
	SendData(label string, msg []byte, binary bool) error
}

// DataEvents are implemented by the Events of a transport started with
// Remote.Data. They are called from media goroutines, one per channel.
type DataEvents interface {
	// DataOpen: the peer acknowledged the channel.
	DataOpen(label string)
	// DataMessage is one message from the peer; msg is valid only during
	// the call.
	DataMessage(label string, msg []byte, binary bool)
	// DataClosed: the channel closed (the peer reset it, or the SCTP
	// association ended, which closes every channel).
	DataClosed(label string)
}
