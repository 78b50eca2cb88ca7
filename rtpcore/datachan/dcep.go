package datachan

import "encoding/binary"

// The Data Channel Establishment Protocol (RFC 8832): the opener sends
// DATA_CHANNEL_OPEN on a new stream, the other side answers
// DATA_CHANNEL_ACK. Both go on that stream with PPID 50.

// DCEP message types (RFC 8832 §8.2.1).
const (
	msgAck  byte = 0x02
	msgOpen byte = 0x03
)

// Channel types of DATA_CHANNEL_OPEN (RFC 8832 §5.1): the high bit is
// unordered delivery, the low bits the partial reliability policy.
const (
	chanReliable      byte = 0x00
	chanRexmit        byte = 0x01
	chanTimed         byte = 0x02
	chanUnorderedFlag byte = 0x80
)

// openHeaderLen is the fixed part of DATA_CHANNEL_OPEN.
const openHeaderLen = 12

// maxLabelLen bounds a label or protocol (the fields are 16-bit lengths;
// Hayate's labels come from Sora's data_channels, which are short).
const maxLabelLen = 1024

// Options describe one DataChannel (RFC 8831 §6.4, W3C RTCDataChannelInit).
type Options struct {
	Label    string
	Protocol string
	// Unordered delivery (the W3C ordered: false).
	Unordered bool
	// MaxPacketLifeTime (ms) or MaxRetransmits bound retransmission
	// (partial reliability, RFC 3758); nil for a reliable channel. At most
	// one is set.
	MaxPacketLifeTime *uint32
	MaxRetransmits    *uint32
	// Priority is the DCEP priority field (RFC 8832 §5.1); 256 is the
	// W3C "low", the default.
	Priority uint16
	// SendOnly marks a channel the peer never sends on (Sora's notify and
	// push): Open keeps no reader for it, so it costs no goroutine, the
	// peer's ACK is not read and Handler.Opened is not called for it. Only
	// for ordered, reliable channels (the state before an ACK).
	SendOnly bool
}

// channelType and reliability are the DCEP encoding of o's reliability.
func (o Options) channelType() (byte, uint32) {
	var t byte
	var v uint32
	switch {
	case o.MaxRetransmits != nil:
		t, v = chanRexmit, *o.MaxRetransmits
	case o.MaxPacketLifeTime != nil:
		t, v = chanTimed, *o.MaxPacketLifeTime
	default:
		t = chanReliable
	}
	if o.Unordered {
		t |= chanUnorderedFlag
	}
	return t, v
}

// marshalOpen encodes DATA_CHANNEL_OPEN for o (RFC 8832 §5.1).
func marshalOpen(o Options) []byte {
	t, v := o.channelType()
	b := make([]byte, openHeaderLen+len(o.Label)+len(o.Protocol))
	b[0] = msgOpen
	b[1] = t
	binary.BigEndian.PutUint16(b[2:], o.Priority)
	binary.BigEndian.PutUint32(b[4:], v)
	binary.BigEndian.PutUint16(b[8:], uint16(len(o.Label)))
	binary.BigEndian.PutUint16(b[10:], uint16(len(o.Protocol)))
	copy(b[openHeaderLen:], o.Label)
	copy(b[openHeaderLen+len(o.Label):], o.Protocol)
	return b
}

// ackMessage is DATA_CHANNEL_ACK (RFC 8832 §5.2).
var ackMessage = []byte{msgAck}

// parseDCEP decodes one DCEP message: an ACK (open is false) or an OPEN
// with its options. Anything else returns ErrMalformed or
// ErrUnknownMessage; the input is untrusted.
func parseDCEP(b []byte) (o Options, open bool, err error) {
	if len(b) == 0 {
		return Options{}, false, ErrMalformed
	}
	switch b[0] {
	case msgAck:
		// RFC 8832 §5.2: the ACK is the type byte alone; trailing bytes
		// are tolerated as browsers never send them.
		return Options{}, false, nil
	case msgOpen:
	default:
		return Options{}, false, ErrUnknownMessage
	}
	if len(b) < openHeaderLen {
		return Options{}, false, ErrMalformed
	}
	t := b[1]
	o.Priority = binary.BigEndian.Uint16(b[2:])
	v := binary.BigEndian.Uint32(b[4:])
	ll := int(binary.BigEndian.Uint16(b[8:]))
	pl := int(binary.BigEndian.Uint16(b[10:]))
	if ll > maxLabelLen || pl > maxLabelLen || len(b) != openHeaderLen+ll+pl {
		return Options{}, false, ErrMalformed
	}
	o.Label = string(b[openHeaderLen : openHeaderLen+ll])
	o.Protocol = string(b[openHeaderLen+ll:])
	o.Unordered = t&chanUnorderedFlag != 0
	switch t &^ chanUnorderedFlag {
	case chanReliable:
	case chanRexmit:
		o.MaxRetransmits = &v
	case chanTimed:
		o.MaxPacketLifeTime = &v
	default:
		return Options{}, false, ErrMalformed
	}
	return o, true, nil
}
