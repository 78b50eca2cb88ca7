// Package datachan runs WebRTC DataChannels (RFC 8831) over an established
// DTLS connection: the SCTP association (pion/sctp), the Data Channel
// Establishment Protocol (RFC 8832, decoded here), one reader per channel,
// the size and queue limits, and the counters.
//
// # Channels
//
// The side that opens a channel picks a stream id of its parity (RFC 8832
// §6: even for the DTLS client, odd for the DTLS server), sends
// DATA_CHANNEL_OPEN and may send at once; until DATA_CHANNEL_ACK arrives its
// messages go ordered and reliable, then with the channel's own
// reliability. Channels the peer opens are refused (their stream is reset):
// in Sora's protocol only the server creates DataChannels. A client side
// (Config.AcceptChannels) accepts them instead.
//
// # Memory
//
// An idle association costs pion's two SCTP goroutines, one reader
// goroutine per channel and no read buffer: a reader learns a message's
// size with an empty read (pion keeps the message queued on a short
// buffer) and borrows a pooled buffer only for the message.
package datachan

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/sctp"

	"github.com/hayate-sfu/hayate/internal/pionlog"
)

// DefaultRemoteMaxMessageSize is the peer's limit when its SDP has no
// a=max-message-size (RFC 8841 §6.1).
const DefaultRemoteMaxMessageSize = 65536

// Config are an association's limits.
type Config struct {
	// MaxMessageSize is the largest message accepted from the peer (our
	// a=max-message-size); larger ones are dropped and counted.
	MaxMessageSize int
	// RemoteMaxMessageSize is the peer's a=max-message-size: larger sends
	// fail with ErrTooLarge. 0 means DefaultRemoteMaxMessageSize.
	RemoteMaxMessageSize int
	// QueueBytes bounds the bytes waiting to be sent or acknowledged over
	// every channel of the association; a send beyond it fails with
	// ErrQueueFull. 0: no bound.
	QueueBytes int
	// AcceptChannels accepts the channels the peer opens (answering
	// DATA_CHANNEL_ACK) instead of refusing them: for clients, such as the
	// load generator, whose server opens the channels.
	AcceptChannels bool
	// Counters are shared by the associations of a node; nil: none.
	Counters *Counters
	Log      *slog.Logger
}

// Counters count SCTP packets (DTLS application records) and DataChannel
// messages, over every association that shares them.
type Counters struct {
	PacketsIn, BytesIn, PacketsOut, BytesOut atomic.Uint64
	MessagesIn, MessagesOut                  atomic.Uint64
	// Dropped or refused input, by reason.
	DropTooLarge    atomic.Uint64 // a message over MaxMessageSize
	DropBadDCEP     atomic.Uint64 // a DCEP message that does not decode
	DropUnknownPPID atomic.Uint64 // a payload protocol id DataChannels do not use
	RefusedStreams  atomic.Uint64 // channels the peer tried to open
	Associations    atomic.Int64  // associations up now
}

// Handler receives an association's events. Calls come from its reader
// goroutines (one per channel) and must not block for long.
type Handler interface {
	// Opened: the peer acknowledged a channel we opened.
	Opened(ch *Channel)
	// Message is one message of a channel; msg is valid only during the
	// call.
	Message(ch *Channel, msg []byte, binary bool)
	// Closed: the channel is closed (the peer reset it or the association
	// ended).
	Closed(ch *Channel)
	// Ended: the association is gone (closed by either side or lost).
	Ended()
}

// Association is one SCTP association carrying DataChannels.
type Association struct {
	cfg    Config
	h      Handler
	sctp   *sctp.Association
	client bool

	mu       sync.Mutex
	nextID   uint16
	channels []*Channel
	closed   bool

	wg sync.WaitGroup
}

// Start runs the SCTP handshake over conn (a DTLS connection; dtlsClient
// tells our DTLS role, which fixes the parity of our stream ids) and
// returns once the association is up or ctx ends.
func Start(ctx context.Context, conn net.Conn, dtlsClient bool, cfg Config, h Handler) (*Association, error) {
	if cfg.Counters == nil {
		cfg.Counters = &Counters{}
	}
	if cfg.RemoteMaxMessageSize == 0 {
		cfg.RemoteMaxMessageSize = DefaultRemoteMaxMessageSize
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	// The receive window holds at least a few of the largest messages
	// being reassembled.
	rwnd := uint32(max(4*cfg.MaxMessageSize, 256<<10))
	// WebRTC peers both send INIT; SCTP resolves the collision (RFC 9260
	// §5.2.4), so both sides run the client handshake, as browsers do.
	sa, err := sctp.ClientContext(ctx,
		sctp.WithNetConn(&countingConn{Conn: conn, c: cfg.Counters}),
		sctp.WithLoggerFactory(pionlog.Factory{Log: cfg.Log}),
		sctp.WithMaxReceiveBufferSize(rwnd),
		sctp.WithMaxMessageSize(uint32(max(cfg.MaxMessageSize, cfg.RemoteMaxMessageSize))),
	)
	if err != nil {
		return nil, err
	}
	a := &Association{cfg: cfg, h: h, sctp: sa, client: dtlsClient}
	if !dtlsClient {
		a.nextID = 1
	}
	cfg.Counters.Associations.Add(1)
	a.wg.Add(1)
	go a.acceptLoop()
	return a, nil
}

// acceptLoop resets every stream the peer opens (or accepts it, with
// AcceptChannels); it ends, and reports the association's end, when
// pion's read loop does.
func (a *Association) acceptLoop() {
	defer a.wg.Done()
	for {
		s, err := a.sctp.AcceptStream()
		if err != nil {
			break
		}
		if a.cfg.AcceptChannels {
			a.wg.Add(1)
			go a.accept(s)
			continue
		}
		a.cfg.Counters.RefusedStreams.Add(1)
		_ = s.Close() // RFC 8831 §6.7: closing is an outgoing stream reset
	}
	a.cfg.Counters.Associations.Add(-1)
	a.h.Ended()
}

// accept reads DATA_CHANNEL_OPEN on a stream the peer opened, answers
// DATA_CHANNEL_ACK and serves the channel (RFC 8832 §6).
func (a *Association) accept(s *sctp.Stream) {
	buf := make([]byte, openHeaderLen+2*maxLabelLen)
	n, ppi, err := s.ReadSCTP(buf)
	var o Options
	open := false
	if err == nil && ppi == sctp.PayloadTypeWebRTCDCEP {
		o, open, err = parseDCEP(buf[:n])
	}
	if !open || err != nil {
		a.cfg.Counters.DropBadDCEP.Add(1)
		_ = s.Close()
		a.wg.Done()
		return
	}
	ch := &Channel{a: a, stream: s, opts: o}
	ch.acked.Store(true)
	if _, err := s.WriteSCTP(ackMessage, sctp.PayloadTypeWebRTCDCEP); err != nil {
		_ = s.Close()
		a.wg.Done()
		return
	}
	t, v := o.channelType()
	s.SetReliabilityParams(o.Unordered, reliabilityType(t), v)
	a.mu.Lock()
	a.channels = append(a.channels, ch)
	a.mu.Unlock()
	a.h.Opened(ch)
	ch.readLoop() // its deferred wg.Done is this goroutine's
}

// Open opens a channel: DATA_CHANNEL_OPEN on a new stream of our parity.
// The channel can send at once; Handler.Opened reports the peer's ACK.
func (a *Association) Open(o Options) (*Channel, error) {
	if o.MaxPacketLifeTime != nil && o.MaxRetransmits != nil {
		return nil, ErrBadOptions
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil, ErrClosed
	}
	if a.nextID > 65534 {
		a.mu.Unlock()
		return nil, ErrNoStreamID
	}
	id := a.nextID
	a.nextID += 2
	s, err := a.sctp.OpenStream(id, sctp.PayloadTypeWebRTCDCEP)
	if err != nil {
		a.mu.Unlock()
		return nil, err
	}
	ch := &Channel{a: a, stream: s, opts: o}
	a.channels = append(a.channels, ch)
	a.mu.Unlock()
	if _, err := s.WriteSCTP(marshalOpen(o), sctp.PayloadTypeWebRTCDCEP); err != nil {
		ch.closed.Store(true)
		return nil, err
	}
	if o.SendOnly && !o.Unordered && o.MaxPacketLifeTime == nil && o.MaxRetransmits == nil {
		return ch, nil
	}
	a.wg.Add(1)
	go ch.readLoop()
	return ch, nil
}

// queued is the bytes sent and not yet acknowledged, over every channel.
func (a *Association) queued() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := uint64(0)
	for _, ch := range a.channels {
		n += ch.stream.BufferedAmount()
	}
	return int(n)
}

// Drain waits until everything sent has been acknowledged, or timeout
// passes: before a close, so that a last message is not lost with the
// association.
func (a *Association) Drain(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for a.queued() > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // pion/sctp reports no drained event
	}
}

// Close ends the association and its DTLS connection and waits for the
// readers. Idempotent.
func (a *Association) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	a.mu.Unlock()
	err := a.sctp.Close()
	a.wg.Wait()
	return err
}

// BytesSent and BytesReceived are the association's SCTP payload bytes.
func (a *Association) BytesSent() uint64     { return a.sctp.BytesSent() }
func (a *Association) BytesReceived() uint64 { return a.sctp.BytesReceived() }

// Channel is one DataChannel of an association.
type Channel struct {
	a      *Association
	stream *sctp.Stream
	opts   Options
	acked  atomic.Bool
	closed atomic.Bool
}

// Label is the channel's label.
func (c *Channel) Label() string { return c.opts.Label }

// Options are the channel's options as opened.
func (c *Channel) Options() Options { return c.opts }

// StreamID is the channel's SCTP stream identifier.
func (c *Channel) StreamID() uint16 { return c.stream.StreamIdentifier() }

// Send queues one message (binary, or UTF-8 text); it does not block.
func (c *Channel) Send(msg []byte, binary bool) error {
	if c.closed.Load() {
		return ErrNotOpen
	}
	if len(msg) > c.a.cfg.RemoteMaxMessageSize && c.a.cfg.RemoteMaxMessageSize > 0 {
		return ErrTooLarge
	}
	if q := c.a.cfg.QueueBytes; q > 0 && c.a.queued()+len(msg) > q {
		return ErrQueueFull
	}
	// RFC 8831 §6.6: empty messages are one byte with an "empty" PPID.
	ppi := sctp.PayloadTypeWebRTCString
	switch {
	case binary && len(msg) == 0:
		ppi, msg = sctp.PayloadTypeWebRTCBinaryEmpty, emptyPayload
	case len(msg) == 0:
		ppi, msg = sctp.PayloadTypeWebRTCStringEmpty, emptyPayload
	case binary:
		ppi = sctp.PayloadTypeWebRTCBinary
	}
	if _, err := c.stream.WriteSCTP(msg, ppi); err != nil {
		if errors.Is(err, sctp.ErrStreamClosed) || errors.Is(err, sctp.ErrAssociationClosed) {
			return ErrNotOpen
		}
		return err
	}
	c.a.cfg.Counters.MessagesOut.Add(1)
	return nil
}

var emptyPayload = []byte{0}

// Close closes the channel: an outgoing stream reset (RFC 8831 §6.7).
func (c *Channel) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	return c.stream.Close()
}

// readLoop reads the channel's messages until its stream or the
// association ends.
func (c *Channel) readLoop() {
	defer c.a.wg.Done()
	cnt := c.a.cfg.Counters
	for {
		// An empty read learns the size of the next message, which pion
		// keeps queued on io.ErrShortBuffer; the reader holds no buffer
		// while it waits.
		n, ppi, err := c.stream.ReadSCTP(nil)
		if err != nil && !errors.Is(err, io.ErrShortBuffer) {
			break
		}
		var buf *[]byte
		if err != nil {
			buf = getBuffer(n)
			n, ppi, err = c.stream.ReadSCTP(*buf)
			if errors.Is(err, io.ErrShortBuffer) {
				putBuffer(buf) // another message came first; size it again
				continue
			}
			if err != nil {
				putBuffer(buf)
				break
			}
		}
		var msg []byte
		if buf != nil {
			msg = (*buf)[:n]
		}
		c.handle(msg, ppi, cnt)
		if buf != nil {
			putBuffer(buf)
		}
	}
	// The peer reset its stream (io.EOF) or the association ended: reset
	// ours too, as RFC 8831 §6.7 asks.
	c.closed.Store(true)
	_ = c.stream.Close()
	c.a.h.Closed(c)
}

func (c *Channel) handle(msg []byte, ppi sctp.PayloadProtocolIdentifier, cnt *Counters) {
	switch ppi {
	case sctp.PayloadTypeWebRTCDCEP:
		_, open, err := parseDCEP(msg)
		switch {
		case err != nil:
			cnt.DropBadDCEP.Add(1)
		case open:
			// An OPEN on a stream we opened: both sides picked one id,
			// which RFC 8832 §6's parity rule excludes. Ignored.
			cnt.DropBadDCEP.Add(1)
		case !c.acked.Swap(true):
			// Our messages may now go with the channel's reliability.
			t, v := c.opts.channelType()
			c.stream.SetReliabilityParams(c.opts.Unordered, reliabilityType(t), v)
			c.a.h.Opened(c)
		}
	case sctp.PayloadTypeWebRTCString, sctp.PayloadTypeWebRTCBinary,
		sctp.PayloadTypeWebRTCStringEmpty, sctp.PayloadTypeWebRTCBinaryEmpty:
		if len(msg) > c.a.cfg.MaxMessageSize {
			cnt.DropTooLarge.Add(1)
			return
		}
		if ppi == sctp.PayloadTypeWebRTCStringEmpty || ppi == sctp.PayloadTypeWebRTCBinaryEmpty {
			msg = msg[:0]
		}
		cnt.MessagesIn.Add(1)
		c.a.h.Message(c, msg, ppi == sctp.PayloadTypeWebRTCBinary || ppi == sctp.PayloadTypeWebRTCBinaryEmpty)
	default:
		cnt.DropUnknownPPID.Add(1)
	}
}

// reliabilityType maps a DCEP channel type to pion's reliability type.
func reliabilityType(t byte) byte {
	switch t &^ chanUnorderedFlag {
	case chanRexmit:
		return sctp.ReliabilityTypeRexmit
	case chanTimed:
		return sctp.ReliabilityTypeTimed
	default:
		return sctp.ReliabilityTypeReliable
	}
}

// Buffers for reading messages: small ones pooled, the rest allocated.
const smallBuffer = 2048

var smallBuffers = sync.Pool{New: func() any { b := make([]byte, smallBuffer); return &b }}

func getBuffer(n int) *[]byte {
	if n <= smallBuffer {
		return smallBuffers.Get().(*[]byte)
	}
	b := make([]byte, n)
	return &b
}

func putBuffer(b *[]byte) {
	if cap(*b) == smallBuffer {
		*b = (*b)[:smallBuffer]
		smallBuffers.Put(b)
	}
}

// countingConn counts the SCTP packets that cross the DTLS connection.
type countingConn struct {
	net.Conn
	c *Counters
}

func (cc *countingConn) Read(p []byte) (int, error) {
	n, err := cc.Conn.Read(p)
	if n > 0 {
		cc.c.PacketsIn.Add(1)
		cc.c.BytesIn.Add(uint64(n))
	}
	return n, err
}

func (cc *countingConn) Write(p []byte) (int, error) {
	n, err := cc.Conn.Write(p)
	if n > 0 {
		cc.c.PacketsOut.Add(1)
		cc.c.BytesOut.Add(uint64(n))
	}
	return n, err
}

// SetDeadline is not supported by every DTLS adapter; pion/sctp only
// uses it to cut a close short.
func (cc *countingConn) SetDeadline(t time.Time) error { return cc.Conn.SetDeadline(t) }
