package rtpcore

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/hayate-sfu/hayate/media"
	"github.com/hayate-sfu/hayate/rtpcore/datachan"
)

// DataChannels of a transport. A transport started with media.Remote.Data
// keeps its DTLS connection after the handshake (releaseDTLS does nothing
// for it) and runs an SCTP association over it (package datachan), which
// opens the channels the signaling asked for. Transports without
// DataChannels still release DTLS, so their idle cost does not change.

// startData brings SCTP up over the finished DTLS connection and opens the
// channels. It runs on its own goroutine: the SCTP handshake waits for the
// peer.
func (t *Transport) startData(conn net.Conn, dtlsClient bool) {
	// Three liveness timeouts of wall time: SCTP starts after DTLS, and
	// the janitor does not watch it.
	ctx, cancel := t.handshakeContext(3 * t.e.cfg.FailedTimeout)
	defer cancel()
	maxRemote := t.data.MaxMessageSize
	switch {
	case maxRemote < 0:
		maxRemote = datachan.DefaultRemoteMaxMessageSize
	case maxRemote == 0:
		maxRemote = 1 << 30 // RFC 8841 §6.1: no limit; ours still bounds what we send
	}
	cfg := datachan.Config{
		MaxMessageSize:       t.e.cfg.DataMaxMessageSize,
		RemoteMaxMessageSize: maxRemote,
		QueueBytes:           t.e.cfg.DataQueueBytes,
		Counters:             &t.e.dc,
		Log:                  t.e.cfg.Log.With("connection_id", t.id),
	}
	// Events wait until the channels are known, so that a channel the
	// peer acknowledges at once can already be sent on by the handler.
	h := dataHandler{t: t, ready: make(chan struct{})}
	defer close(h.ready)
	a, err := datachan.Start(ctx, conn, dtlsClient, cfg, h)
	if err != nil {
		if t.isClosed() {
			return
		}
		t.e.cfg.Log.Info("SCTP association failed", "connection_id", t.id, "err", err)
		t.fail("SCTP-FAILED")
		return
	}
	t.connMu.Lock()
	if t.isClosed() {
		t.connMu.Unlock()
		a.Close()
		return
	}
	t.assoc = a
	t.connMu.Unlock()
	chans := make(map[string]*datachan.Channel, len(t.data.Channels))
	var sendOnly []string
	for _, c := range t.data.Channels {
		ch, err := a.Open(datachan.Options{
			Label: c.Label, Protocol: c.Protocol, Unordered: c.Unordered,
			MaxPacketLifeTime: c.MaxPacketLifeTime, MaxRetransmits: c.MaxRetransmits, Priority: 256, SendOnly: c.SendOnly,
		})
		if err != nil {
			t.e.cfg.Log.Info("DataChannel not opened", "connection_id", t.id, "label", c.Label, "err", err)
			continue
		}
		chans[c.Label] = ch
		if c.SendOnly {
			sendOnly = append(sendOnly, c.Label)
		}
	}
	t.channels.Store(&chans)
	if ev := h.events(); ev != nil {
		for _, l := range sendOnly {
			ev.DataOpen(l)
		}
	}
}

// SendData implements media.DataTransport.
func (t *Transport) SendData(label string, msg []byte, binary bool) error {
	m := t.channels.Load()
	if m == nil {
		return media.ErrDataNotOpen
	}
	ch := (*m)[label]
	if ch == nil {
		return media.ErrDataNotOpen
	}
	switch err := ch.Send(msg, binary); {
	case err == nil:
		return nil
	case errors.Is(err, datachan.ErrQueueFull):
		return media.ErrDataQueueFull
	case errors.Is(err, datachan.ErrTooLarge):
		return media.ErrDataTooLarge
	default:
		return media.ErrDataNotOpen
	}
}

// FlushData waits (at most timeout) until the peer has acknowledged every
// DataChannel message sent, so that a message sent right before Close
// arrives.
func (t *Transport) FlushData(timeout time.Duration) {
	t.connMu.Lock()
	a := t.assoc
	t.connMu.Unlock()
	if a != nil {
		a.Drain(timeout)
	}
}

// dataHandler passes the association's events to the connection's Events,
// once ready is closed.
type dataHandler struct {
	t     *Transport
	ready chan struct{}
}

func (h dataHandler) events() media.DataEvents {
	ev, _ := h.t.ev.(media.DataEvents)
	return ev
}

// contain keeps a bug in the code an event runs (the signaling's) from
// taking the node down: the panic is logged and counted, and the
// transport fails with INTERNAL-ERROR, closing its connection.
func (h dataHandler) contain() {
	if v := recover(); v != nil {
		h.t.e.stats.Panics.Add(1)
		h.t.e.cfg.Log.Error("DataChannel event panicked", "connection_id", h.t.id, "panic", fmt.Sprint(v))
		go h.t.fail("INTERNAL-ERROR") // not here: Close waits for this reader
	}
}

func (h dataHandler) Opened(ch *datachan.Channel) {
	<-h.ready
	defer h.contain()
	if ev := h.events(); ev != nil {
		ev.DataOpen(ch.Label())
	}
}

func (h dataHandler) Message(ch *datachan.Channel, msg []byte, binary bool) {
	<-h.ready
	defer h.contain()
	if ev := h.events(); ev != nil {
		ev.DataMessage(ch.Label(), msg, binary)
	}
}

func (h dataHandler) Closed(ch *datachan.Channel) {
	<-h.ready
	defer h.contain()
	if ev := h.events(); ev != nil && !h.t.isClosed() {
		ev.DataClosed(ch.Label())
	}
}

func (h dataHandler) Ended() {}
