package signal

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/hayate-sfu/hayate/internal/ids"
	"github.com/hayate-sfu/hayate/media"
	"github.com/hayate-sfu/hayate/mode"
	"github.com/hayate-sfu/hayate/signal/jsep"
	"github.com/hayate-sfu/hayate/webhook"
)

const (
	// outQueueLen bounds the messages waiting to be written to one client.
	outQueueLen = 128
	// readBufferSize is the read buffer of a signaling connection.
	readBufferSize = 1024
	// closeGrace is how long Hayate waits for the client's close frame after
	// sending its own (RFC 6455 §7.1.1).
	closeGrace = time.Second
	// writeTimeout bounds one frame write to a client.
	writeTimeout = 10 * time.Second
)

// outFrame is one frame waiting for the writer.
type outFrame struct {
	op   ws.OpCode
	data []byte
}

func outText(b []byte) outFrame { return outFrame{op: ws.OpText, data: b} }

// pingJSON is Hayate's keepalive message.
var pingJSON = []byte(`{"type":"ping","stats":false}`)

// Conn is one signaling WebSocket and, once admitted, one Sora connection.
//
// The reader (the HTTP handler goroutine, which runs serve) reads and
// handles the client's messages. Writes go through the connection's queue
// (writer.go); other goroutines talk to it by queueing frames (queue) or
// asking it to close (requestClose).
type Conn struct {
	hub *Hub
	nc  net.Conn
	rd  msgReader
	id  string
	// drainFirst: the read loop ended on a frame it refused, whose bytes
	// may still be arriving (closeSocket).
	drainFirst bool

	// Set while connecting, read-only after admission.
	channelID, clientID, bundleID string
	role                          Role
	audio, video                  bool
	audioCodec, videoCodec        jsep.Codec
	caps                          jsep.Capabilities
	notify                        bool
	// Simulcast (simulcast.go): asked for, the video bit rate (kbit/s),
	// the auth webhook's encodings; the rid cap (a media layer) from
	// connect and per publisher from the API (ridMu).
	simulcast      bool
	videoBitRate   int
	encodings      json.RawMessage
	ridCap         atomic.Int32
	ridMu          sync.Mutex
	ridBySender    map[string]int
	authzMetadata  json.RawMessage
	eventMetadata  json.RawMessage
	notifyMetadata json.RawMessage
	// authnNotifyMetadata is connect's signaling_notify_metadata (the
	// auth webhook's may replace it in notifyMetadata); ext the
	// extension's metadata (notifymeta.go; the hub's mu).
	authnNotifyMetadata json.RawMessage
	authzNotifyMetadata json.RawMessage
	ext                 extMetadata
	// rpcMethods are the RPC methods the auth webhook allowed, when it
	// paid rpc_methods out (rpcPayout).
	rpcMethods []string
	rpcPayout  bool
	// asked: what connect asked for that only the auth request reports.
	asked struct{ audioBitRate, videoBitRate int }
	// lifetime is the auth webhook's connection_lifetime (0: none).
	lifetime time.Duration
	// TURN: the auth webhook's payouts and the offer's iceServers and
	// iceTransportPolicy (iceservers.go).
	turnPayout TURNPayout
	iceServers []ICEServer
	icePolicy  string
	// path is how the media reaches the node once connected
	// (rtpcore.Transport.Path): "udp", "tcp", "turn-udp", ...
	path atomic.Pointer[string]

	// Spotlight (spotlight.go): what connect asked for; the cap that focus
	// gives each publisher's video (ridMu); the focus as last notified
	// (the hub's mu).
	spot         spotlightConn
	spotBySender map[string]int
	spotTold     map[string]bool
	// spotRids are the focus and unfocus layers RequestSpotlightRid set,
	// for every publisher ("") or one (the hub's mu).
	spotRids map[string][2]int

	// routed: the cluster chose this node for the channel.
	routed bool

	// dc is the DataChannel state (datachannels.go); nil without
	// DataChannel signaling. Set while connecting.
	dc *dcConn

	// Guarded by hub.mu.
	pendingCounted bool
	left           bool
	ch             *channel
	sessionID      string
	created        bool
	admittedAt     time.Time
	createdAt      time.Time
	destroyedAt    time.Time
	// updated sends connection.updated every minute of the connection's
	// life (updates: how many went out).
	updated              *time.Timer
	updates              int
	endReason            string
	apiReason            json.RawMessage
	typeDisconnectReason string

	// The media transport, opened before admission.
	tr media.Transport
	// Guarded by hub.mu: the offer as it should be now, the offer sent and
	// not yet answered, whether the first answer came, whether a re-offer
	// is due, and the tracks the client publishes.
	offer      *jsep.Offer
	sent       *jsep.Offer
	answered   bool
	reofferDue bool
	tracks     []media.Track

	// live is set at admission: from then on writes go through w.
	live     atomic.Bool
	w        writer
	lastPong atomic.Int64
	// rtcStats is the latest getStats() report of the client (rtcstats.go).
	rtcStats atomic.Pointer[rtcReport]

	closeMu  sync.Mutex
	closeErr *CloseError
}

// ServeHTTP upgrades requests for /signaling to WebSocket and serves them.
// Any Origin is accepted and no subprotocol is negotiated, as Sora's SDKs
// expect. A request that is not a valid upgrade gets gobwas/ws's HTTP 400.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/signaling" {
		http.NotFound(w, r)
		return
	}
	nc, rw, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		h.log.Debug("websocket upgrade refused", "remote", r.RemoteAddr, "err", err)
		if nc != nil {
			// The upgrader hijacked the connection to write its 4xx; it
			// is ours to close, or the socket stays open until GC.
			nc.Close()
		}
		return
	}
	c := &Conn{hub: h, nc: nc, rd: msgReader{br: ownReader(rw.Reader, nc), max: h.set.MaxMessageBytes}, id: ids.New(), notify: h.set.SignalingNotify}
	c.w.finished = make(chan struct{})
	if e := h.track(c); e != nil {
		if e.Code == CodeLimit {
			h.stats.Failed.Add(1)
			h.stats.countRefusal(e)
			if h.pendingWarn.Allow(time.Now()) {
				// At most one line a second: a flood must not flood the log too.
				h.log.Warn("signaling connections refused: too many pending", "limit", h.set.MaxPending, "remote", r.RemoteAddr,
					"total_refused_limit", h.stats.RefusedLimit.Load())
			}
		}
		c.writeClose(e)
		c.closeSocket()
		return
	}
	// The connection runs on a goroutine of its own and the handler
	// returns: net/http then releases its 4 KiB read and write buffers,
	// the request and its own frames, which it would keep for the life of
	// the WebSocket if the handler went on serving it.
	go func() {
		defer h.untrack(c)
		defer c.contain()
		c.serve()
	}()
}

// contain keeps a bug in one connection from taking the node down: the
// panic is logged (its value, no stack trace), the client gets 1011 and
// the connection is torn down like any other.
func (c *Conn) contain() {
	v := recover()
	if v == nil {
		return
	}
	c.hub.stats.Panics.Add(1)
	c.hub.log.Error("connection panicked", "connection_id", c.id, "channel_id", c.channelID, "panic", fmt.Sprint(v))
	if !c.live.Load() {
		c.writeClose(ErrInternal)
		c.closeSocket()
		return
	}
	c.requestClose(ErrInternal)
	select {
	case <-c.w.finished:
	case <-time.After(writeTimeout):
	}
	c.nc.Close()
	c.hub.leave(c)
	c.closeTransport()
}

// ownReader returns a small reader of the connection that does not keep
// net/http's: bytes the client sent right after its upgrade request (a
// pipelined connect) are carried over.
func ownReader(httpReader *bufio.Reader, nc net.Conn) *bufio.Reader {
	n := httpReader.Buffered()
	if n == 0 {
		return bufio.NewReaderSize(nc, readBufferSize)
	}
	pending, _ := httpReader.Peek(n)
	return bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(pending)), nc), readBufferSize)
}

// serve runs the connection to its end on the reader goroutine.
func (c *Conn) serve() {
	if err := c.connect(); err != nil {
		if c.routed {
			// Routing may have claimed the channel for this node: give it
			// back if no session came of it.
			c.hub.releaseIfIdle(c.channelID)
		}
		c.refuse(err)
		return
	}
	answerTimer := time.AfterFunc(c.hub.set.AnswerTimeout, func() {
		c.hub.mu.Lock()
		done := c.answered
		c.hub.mu.Unlock()
		if !done {
			c.requestClose(ErrAnswerTimeout)
		}
	})
	var lifetimeTimer *time.Timer
	if c.lifetime > 0 {
		// Sora: connection_lifetime ends the connection with 1000
		// LIFETIME-EXPIRED, counted from its admission.
		lifetimeTimer = time.AfterFunc(c.lifetime, func() { c.expire() })
	}
	reason := c.readLoop()
	answerTimer.Stop()
	switch {
	case c.dc != nil && c.dc.detached.Load():
		reason = c.liveOnDataChannels()
	default:
		c.requestClose(closeErr(CodeNormal, ""))
		<-c.w.finished
		if c.drainFirst {
			c.closeSocket()
		} else {
			c.nc.Close()
		}
	}
	if lifetimeTimer != nil {
		lifetimeTimer.Stop() // after liveOnDataChannels: the lifetime holds there too
	}
	c.hub.mu.Lock()
	if c.endReason == "" {
		c.endReason = reason
	}
	c.hub.mu.Unlock()
	c.hub.leave(c)
	c.closeTransport()
}

// expire ends a connection whose connection_lifetime has passed.
func (c *Conn) expire() { c.requestClose(ErrLifetimeExpired) }

// mediaBytes are the bytes received from and sent to the client by the
// media path, when the transport counts them.
func (c *Conn) mediaBytes() (in, out uint64) {
	if b, ok := c.tr.(interface{ Bytes() (uint64, uint64) }); ok {
		return b.Bytes()
	}
	return 0, 0
}

// iceState is ice_connection_state of the event webhooks: the time the
// media path spent with its peer silent (Sora's checking and
// disconnected), when the transport measures it.
func (c *Conn) iceState() iceConnectionState {
	if s, ok := c.tr.(interface {
		ICEDurations() (checking, disconnected time.Duration)
	}); ok {
		ck, dc := s.ICEDurations()
		return iceConnectionState{TotalCheckingDurationMs: ck.Milliseconds(), TotalDisconnectedDurationMs: dc.Milliseconds()}
	}
	return iceConnectionState{}
}

// errClientGone ends a connection whose client closed or dropped the socket.
var errClientGone = &CloseError{Code: 0, Reason: "WEBSOCKET-ONCLOSE"}

// connect reads and checks the connect message and admits the connection,
// queueing its offer. It returns the close to send on refusal.
func (c *Conn) connect() *CloseError {
	h := c.hub
	c.nc.SetReadDeadline(time.Now().Add(h.set.ConnectTimeout))
	msg, err := c.rd.next(c.pongDirect)
	if err != nil {
		return c.readFailure(err, ErrConnectTimeout)
	}
	typ, cerr := messageType(msg)
	if cerr != nil {
		return cerr
	}
	switch typ {
	case "connect":
	case "answer":
		return ErrAnswerBeforeOffer
	default:
		return ErrMessageBeforeConnect
	}
	cm, cerr := parseConnect(msg)
	if cerr != nil {
		return cerr
	}
	if e := c.applyConnect(cm); e != nil {
		return e
	}
	// A node whose health is block_new_connection (starting, or cut off
	// from the cluster) cannot route: the mode check refuses at once
	// rather than after a claim that cannot succeed.
	if h.hooks.Router != nil && h.word.Health() != mode.BlockNewConnection {
		if e := c.route(); e != nil {
			return e
		}
		c.routed = true
	}
	if e := h.precheck(c.channelID); e != nil {
		return e
	}
	if h.hooks.Auth != nil && h.hooks.Auth.Enabled() {
		if e := c.authenticate(cm); e != nil {
			return e
		}
	}
	if !c.audio && !c.video && c.dc == nil {
		return ErrNoMedia // the auth webhook turned DataChannel signaling off
	}
	if e := c.closeRequested(); e != nil {
		return e
	}
	if f := h.testHooks().BeforeAdmit; f != nil {
		f(c.channelID)
	}
	tr, err := h.media.Open(c.id, c)
	if err != nil {
		return ErrServerShutdown
	}
	c.tr = tr
	c.issueICEServers()
	if e := h.admit(c); e != nil {
		c.closeTransport()
		return e
	}
	if f := h.testHooks().AfterAdmit; f != nil {
		f(c.channelID)
	}
	return nil
}

// readFailure maps a read error to the close to send.
func (c *Conn) readFailure(err error, timeout *CloseError) *CloseError {
	if e := c.closeRequested(); e != nil {
		return e
	}
	var ce *CloseError
	if errors.As(err, &ce) {
		return ce
	}
	var pc *peerClosed
	if errors.As(err, &pc) {
		return &CloseError{Code: echoCode(pc.code), Reason: errClientGone.Reason}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return timeout
	}
	return errClientGone
}

// echoCode is the code to answer a client's close frame with (RFC 6455 §5.5.1).
func echoCode(code ws.StatusCode) ws.StatusCode {
	if code == 0 || code == ws.StatusNoStatusRcvd {
		return CodeNormal
	}
	return code
}

// applyConnect takes the connection's parameters from its connect message.
func (c *Conn) applyConnect(cm *connectMessage) *CloseError {
	h := c.hub
	c.channelID = *cm.ChannelID
	c.role = Role(*cm.Role)
	c.clientID, c.bundleID = c.id, c.id
	if cm.ClientID != nil && *cm.ClientID != "" {
		c.clientID = *cm.ClientID
	}
	if h.set.SignalingBundleID && cm.BundleID != nil && *cm.BundleID != "" {
		c.bundleID = *cm.BundleID
	}
	c.notifyMetadata = nonNull(cm.SignalingNotifyMetadata)
	c.authnNotifyMetadata = c.notifyMetadata
	caps, err := jsep.ParseCapabilities(cm.SDP)
	if err != nil {
		return ErrInvalidSDP
	}
	c.caps = caps
	audio, cerr := parseMediaSpec(cm.Audio, ErrInvalidAudio)
	if cerr != nil {
		return cerr
	}
	video, cerr := parseMediaSpec(cm.Video, ErrInvalidVideo)
	if cerr != nil {
		return cerr
	}
	c.audio, c.video = audio.Enabled, video.Enabled
	c.asked.audioBitRate, c.asked.videoBitRate = audio.BitRate, video.BitRate
	if e := c.applySimulcast(cm, video.BitRate); e != nil {
		return e
	}
	if e := c.applySpotlight(cm); e != nil {
		return e
	}
	if e := c.applyDataChannels(cm); e != nil {
		return e
	}
	// A connection with no media must have DataChannels (Sora.messaging()).
	if !c.audio && !c.video && c.dc == nil {
		return ErrNoMedia
	}
	if c.audio {
		codec, ok := chooseCodec(caps, audio.CodecType, h.set.DefaultAudioCodecType, c.role)
		if !ok {
			return ErrAudioCodec
		}
		c.audioCodec = codec
	}
	if c.video {
		codec, ok := chooseCodec(caps, video.CodecType, h.set.DefaultVideoCodecType, c.role)
		if !ok {
			return ErrVideoCodec
		}
		c.videoCodec = codec
	}
	return nil
}

// chooseCodec picks the codec a connection publishes with. A receive-only
// connection publishes nothing, so any codec its client knows will do.
func chooseCodec(caps jsep.Capabilities, requested, def string, role Role) (jsep.Codec, bool) {
	t := requested
	if t == "" {
		t = def
	}
	if codec, ok := caps.Choose(t); ok {
		return codec, true
	}
	if role.Sends() {
		return jsep.Codec{}, false
	}
	for _, alt := range []string{"OPUS", "VP8", "VP9", "H264", "AV1", "H265"} {
		if codec, ok := caps.Choose(alt); ok {
			if want, _ := jsep.Builtin(t); want.Kind == codec.Kind {
				return codec, true
			}
		}
	}
	return jsep.Codec{}, false
}

func nonNull(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	return raw
}

// authenticate calls the auth webhook and applies its payouts.
func (c *Conn) authenticate(cm *connectMessage) *CloseError {
	h := c.hub
	d, err := h.hooks.Auth.Call(h.ctx, c.id, c.authRequest(cm))
	switch {
	case errors.Is(err, webhook.ErrTimeout):
		return ErrAuthTimeout
	case errors.Is(err, webhook.ErrStatus):
		return ErrAuthStatus
	case errors.Is(err, webhook.ErrBadResponse):
		return ErrAuthBadResponse
	case err != nil:
		if h.ctx.Err() != nil {
			return ErrServerShutdown
		}
		return ErrAuthUnreachable
	}
	if !d.Allowed {
		return &CloseError{Code: CodeAuthDenied, Reason: clipReason(d.Reason)}
	}
	if e := c.applyMediaPayouts(d); e != nil {
		return e
	}
	if d.ClientID != nil && *d.ClientID != "" {
		c.clientID = *d.ClientID
	}
	if d.BundleID != nil && *d.BundleID != "" {
		c.bundleID = *d.BundleID
	}
	c.authzMetadata = nonNull(d.Metadata)
	c.eventMetadata = nonNull(d.EventMetadata)
	if d.SignalingNotify != nil {
		c.notify = *d.SignalingNotify
	}
	c.turnPayout = TURNPayout{TCPOnly: d.TurnTCPOnly != nil && *d.TurnTCPOnly, TLSOnly: d.TurnTLSOnly != nil && *d.TurnTLSOnly}
	if d.TurnFQDN != nil {
		c.turnPayout.FQDN = *d.TurnFQDN
	}
	if d.TurnTLSFQDN != nil {
		c.turnPayout.TLSFQDN = *d.TurnTLSFQDN
	}
	if m := nonNull(d.SignalingNotifyMetadata); m != nil {
		c.notifyMetadata, c.authzNotifyMetadata = m, m
	}
	if raw, ok := d.Fields["signaling_notify_metadata_ext"]; ok {
		m, err := parseExtMetadata(raw)
		if err != nil || c.hub.set.MaxMessageBytes > 0 && len(m.marshal()) > c.hub.set.MaxMessageBytes {
			return ErrAuthBadResponse
		}
		c.ext = m
	}
	if e := c.applyRPCPayout(d.Fields["rpc_methods"]); e != nil {
		return e
	}
	if e := c.applySpotlightPayouts(cm, d); e != nil {
		return e
	}
	if e := c.applySimulcastPayouts(d.Simulcast, d.SimulcastRid, d.SimulcastEncodings, d.VideoBitRate); e != nil {
		return e
	}
	if c.spot.on {
		c.simulcast = true // spotlight runs on simulcast, whatever simulcast's payout
		if enc := nonNull(d.SpotlightEncodings); enc != nil {
			c.encodings = enc // spotlight_encodings wins over simulcast_encodings
		}
	}
	return c.applyDataChannelPayouts(d.DataChannelSignaling, d.IgnoreDisconnectWebsocket, d.DataChannels)
}

// authRequest is the auth webhook body (docs/spec/sora-protocol.md §3.2).
func (c *Conn) authRequest(cm *connectMessage) any {
	h := c.hub
	n := func() counts {
		h.mu.Lock()
		defer h.mu.Unlock()
		return h.channels[c.channelID].counts()
	}()
	type authRequest struct {
		Timestamp           string  `json:"timestamp"`
		Version             string  `json:"version"`
		Label               string  `json:"label"`
		NodeName            string  `json:"node_name"`
		Role                Role    `json:"role"`
		ChannelID           string  `json:"channel_id"`
		ClientID            *string `json:"client_id,omitempty"`
		BundleID            *string `json:"bundle_id,omitempty"`
		ConnectionID        string  `json:"connection_id"`
		Multistream         bool    `json:"multistream"`
		Simulcast           bool    `json:"simulcast"`
		SimulcastRid        string  `json:"simulcast_rid,omitempty"`
		Spotlight           bool    `json:"spotlight"`
		SpotlightFocusRid   string  `json:"spotlight_focus_rid,omitempty"`
		SpotlightUnfocusRid string  `json:"spotlight_unfocus_rid,omitempty"`
		mediaFields
		DataChannelSignaling      bool            `json:"data_channel_signaling"`
		IgnoreDisconnectWebsocket bool            `json:"ignore_disconnect_websocket"`
		DataChannels              json.RawMessage `json:"data_channels,omitempty"`
		ForwardingFilter          json.RawMessage `json:"forwarding_filter,omitempty"`
		Metadata                  json.RawMessage `json:"metadata,omitempty"`
		SoraClient                *soraClient     `json:"sora_client,omitempty"`
		E2EE                      bool            `json:"e2ee"`
		counts
	}
	// What the client asked for (Sora: the request reports the connect,
	// with the defaults filled in), before any payout.
	r := authRequest{
		Timestamp: timestamp(time.Now()), Version: h.set.Version, Label: h.set.Label, NodeName: h.set.NodeName,
		Role: c.role, ChannelID: c.channelID, ClientID: cm.ClientID, BundleID: cm.BundleID, ConnectionID: c.id,
		Multistream: true, Simulcast: c.simulcast, SimulcastRid: cm.SimulcastRid,
		Spotlight: c.spot.on, SpotlightFocusRid: cm.SpotlightFocusRid, SpotlightUnfocusRid: cm.SpotlightUnfocusRid,
		mediaFields: c.mediaFields(), Metadata: nonNull(cm.Metadata), ForwardingFilter: nonNull(cm.ForwardingFilter),
		SoraClient: parseSoraClient(cm.SoraClient, cm.Environment, cm.Libwebrtc), counts: n,
	}
	if c.audio {
		r.AudioBitRate = c.asked.audioBitRate
	}
	if c.video {
		r.VideoBitRate = c.asked.videoBitRate
	}
	if c.dc != nil {
		r.DataChannelSignaling, r.IgnoreDisconnectWebsocket, r.DataChannels = true, c.dc.ignoreWS, c.dc.connectRaw
	}
	return r
}

// refuse ends a connection that was not admitted: the refusal recorded
// (counters and connection.failed, before the client can see the close),
// one close frame, and a short wait for the client's reply.
func (c *Conn) refuse(e *CloseError) {
	gone := e.Code == 0 || e.Reason == errClientGone.Reason
	if !gone && e != ErrRedirect {
		if e.Code == CodeBadRequest {
			c.hub.stats.SignalingErrors.Add(1)
		}
		c.hub.log.Info("connect refused", "code", int(e.Code), "reason", e.Reason, "channel_id", c.channelID,
			"connection_id", c.id, "remote", c.nc.RemoteAddr().String())
		c.hub.refused(c, e)
	}
	if e == errClientGone {
		c.nc.Close()
		return
	}
	c.writeClose(e)
	c.closeSocket()
}

// drainLimit bounds the bytes closeSocket reads past a refusal: twice
// the message size limit and a mebibyte more.
func (c *Conn) drainLimit() int64 { return 2*int64(c.hub.set.MaxMessageBytes) + 1<<20 }

// closeSocket ends the TCP connection once Hayate's close frame is
// written: it drains what the client still sends until the client's own
// close frame (msgReader.drain), for at most closeGrace and drainLimit
// bytes, then closes. Closing at once would reset a client that is still
// writing, and it would see 1006 instead of the close code (RFC 6455
// §7.1.1: the client closes the TCP connection after the server's close;
// here the server waits for the client's close frame, then closes).
func (c *Conn) closeSocket() {
	c.nc.SetReadDeadline(time.Now().Add(closeGrace))
	c.rd.drain(c.drainLimit())
	c.nc.Close()
}

// readLoop handles the client's messages after admission and returns the
// end reason of the connection.
func (c *Conn) readLoop() string {
	for {
		msg, err := c.rd.next(c.pongQueued)
		if err != nil {
			return c.ended(err)
		}
		if c.closeRequested() != nil {
			continue // closing: drain until the client's close frame
		}
		if e := c.handle(msg); e != nil {
			if e.Code == CodeBadRequest {
				c.hub.stats.SignalingErrors.Add(1)
				c.hub.log.Info("signaling error", "connection_id", c.id, "channel_id", c.channelID, "reason", e.Reason)
			}
			c.requestClose(e)
		}
	}
}

// ended turns the error that ended the read loop into an end reason.
func (c *Conn) ended(err error) string {
	var ce *CloseError
	c.drainFirst = errors.As(err, &ce)
	if e := c.closeRequested(); e != nil {
		return e.Reason
	}
	if !c.drainFirst && c.detach() {
		return "" // the connection lives on its DataChannels
	}
	if c.drainFirst {
		c.hub.stats.SignalingErrors.Add(1)
		c.requestClose(ce)
		return ce.Reason
	}
	var pc *peerClosed
	if errors.As(err, &pc) {
		c.requestClose(&CloseError{Code: echoCode(pc.code)})
		return "WEBSOCKET-ONCLOSE"
	}
	c.requestClose(closeErr(CodeNormal, ""))
	return "WEBSOCKET-ONERROR"
}

// handle dispatches one message received after admission.
func (c *Conn) handle(msg []byte) *CloseError {
	typ, cerr := messageType(msg)
	if cerr != nil {
		return cerr
	}
	switch typ {
	case "answer", "re-answer", "update":
		return c.handleAnswer(typ, msg)
	case "candidate":
		var m candidateMessage
		if json.Unmarshal(msg, &m) != nil || m.Candidate == nil {
			return ErrInvalidCandidate
		}
		if *m.Candidate == "" {
			return nil // end-of-candidates marker of some clients
		}
		if _, _, _, err := jsep.ParseCandidate(*m.Candidate); err != nil {
			return ErrInvalidCandidate
		}
		return nil
	case "pong":
		c.takePong(msg)
		return nil
	case "disconnect":
		var m disconnectMessage
		_ = json.Unmarshal(msg, &m)
		c.hub.mu.Lock()
		c.typeDisconnectReason = clipReason(m.Reason)
		c.hub.mu.Unlock()
		return ErrTypeDisconnect
	case "connect":
		return ErrDuplicateConnect
	default:
		// Types from newer SDKs: ignored, as Sora's SDKs ignore unknown types.
		c.hub.stats.IgnoredMessages.Add(1)
		c.hub.log.Debug("message ignored", "connection_id", c.id, "type", typ)
		return nil
	}
}

// handleAnswer checks an answer (to the first offer) or a re-answer (to the
// re-offer in flight) against the offer it answers and applies it.
func (c *Conn) handleAnswer(typ string, msg []byte) *CloseError {
	h := c.hub
	h.mu.Lock()
	o, first := c.sent, !c.answered
	h.mu.Unlock()
	switch {
	case typ == "answer" && !first:
		return ErrDuplicateAnswer
	case typ != "answer" && (first || o == nil):
		// A re-answer with no re-offer in flight: nothing to apply.
		h.stats.IgnoredMessages.Add(1)
		return nil
	}
	var m sdpMessage
	if json.Unmarshal(msg, &m) != nil {
		return ErrInvalidAnswer
	}
	if m.SDP == nil {
		return ErrMissingSDP
	}
	a, err := jsep.ParseAnswer(*m.SDP, o)
	if err != nil {
		h.log.Info("answer refused", "connection_id", c.id, "type", typ, "err", err)
		return ErrInvalidAnswer
	}
	// Every answer carries the client's ICE credentials; new ones in a
	// re-answer are a client-side ICE restart (RFC 8839 §4.4.1.1.1).
	ext, twcc, remb := remoteExtras(a)
	if err := c.tr.Start(media.Remote{Ufrag: a.Ufrag, Pwd: a.Pwd, Fingerprint: a.Fingerprint, DTLSClient: a.Setup == "passive",
		Data: c.dataRemote(o, a), Extensions: ext, TransportCC: twcc, REMB: remb}); err != nil {
		return ErrServerShutdown
	}
	h.answered(c, o, a)
	return nil
}

// offerMessage builds the connection's first offer. Called with hub.mu held
// at admission, so the offer matches the channel it joins.
func (c *Conn) offerMessage() outFrame {
	ufrag, pwd := c.tr.LocalCredentials()
	o := &jsep.Offer{
		SessionID: rand.Uint64() >> 1, Version: 1, Ufrag: ufrag, Pwd: pwd,
		Fingerprint: c.hub.media.Fingerprint(), Candidate: c.hub.media.Candidate(), TCPCandidate: c.hub.set.ICETCPCandidate,
	}
	mids := map[string]string{}
	add := func(kind jsep.Kind, codec jsep.Codec, dir jsep.Direction) {
		mid := strconv.Itoa(len(o.Sections))
		sec := jsep.Section{Mid: mid, Kind: kind, Direction: dir, Codec: codec}
		if dir == jsep.RecvOnly {
			mids[string(kind)] = mid
			sec.Extras = c.publisherExtras(kind)
		}
		o.Sections = append(o.Sections, sec)
	}
	// The client's own media first, one section per kind, recvonly on our
	// side and named in `mid` (docs/spec/sora-js-sdk-client.md §3). A receive-only
	// client gets inactive sections that tracks of publishers fill.
	dir := jsep.Inactive
	if c.role.Sends() {
		dir = jsep.RecvOnly
	}
	if c.audio {
		add(jsep.Audio, c.audioCodec, dir)
	}
	if c.video {
		add(jsep.Video, c.videoCodec, dir)
	}
	c.addDataSection(o)
	c.offer = o
	offerExistingLocked(c)
	c.sent = o.Clone()
	m := offerMessage{
		Type: "offer", SDP: c.sent.Marshal(), ChannelID: c.channelID, SessionID: c.sessionID,
		ClientID: c.clientID, BundleID: c.bundleID, ConnectionID: c.id, Metadata: c.authzMetadata,
		Config: rtcConfig{ICEServers: c.iceServers, ICETransportPolicy: c.icePolicy}, Multistream: true,
		Simulcast: c.simulcast, Spotlight: c.spot.on,
	}
	if c.video && c.offersSimulcast() {
		m.Encodings = c.encodings
		if m.Encodings == nil {
			m.Encodings, _ = json.Marshal(simulcastEncodings(c.videoCodec.Type(), c.videoBitRate))
		}
	}
	if len(mids) > 0 {
		m.Mid = mids
	}
	c.dc.fillOffer(&m, c.rpcAllowed())
	b, err := json.Marshal(m)
	if err != nil {
		panic("signal: offer does not marshal: " + err.Error())
	}
	return outText(b)
}

// Connected implements media.Events: ICE and DTLS are up.
func (c *Conn) Connected() {
	c.hub.stats.MediaConnected.Add(1)
	if p, ok := c.tr.(interface{ Path() string }); ok {
		path := p.Path()
		c.path.Store(&path)
		switch path {
		case "turn-udp":
			c.hub.stats.TURNUDPConnections.Add(1)
		case "turn-tcp", "turn-tls":
			c.hub.stats.TURNTCPConnections.Add(1)
		}
	}
	c.hub.log.Debug("media connected", "connection_id", c.id, "channel_id", c.channelID)
}

// Failed implements media.Events: the transport is dead, so is the
// connection. The WebSocket is closed with the media path's reason.
func (c *Conn) Failed(reason string) {
	c.hub.stats.MediaFailed.Add(1)
	code := CodeTimeout
	switch reason {
	case ErrDTLSFailed.Reason:
		code = CodeBadRequest
	case ErrInternal.Reason:
		code = ErrInternal.Code // a bug contained in the media path
	}
	c.requestClose(&CloseError{Code: code, Reason: reason})
}

// minutes is the connection's age in whole minutes (Sora's minutes field).
func (c *Conn) minutes() int {
	if c.createdAt.IsZero() {
		return 0
	}
	return int(time.Since(c.createdAt) / time.Minute)
}

// sessionRecord is the connection's entry in session.destroyed.
func (c *Conn) sessionRecord() sessionConnection {
	created := c.createdAt
	if created.IsZero() {
		created = c.admittedAt
	}
	return sessionConnection{
		Role: c.role, ClientID: c.clientID, BundleID: c.bundleID, ConnectionID: c.id, Simulcast: c.simulcast,
		mediaFields: c.mediaFields(), EventMetadata: c.eventMetadata,
		ConnectionCreatedTimestamp:   timestamp(created),
		ConnectionDestroyedTimestamp: timestamp(c.destroyedAt),
	}
}
