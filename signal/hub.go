// Package signal is Hayate's Sora-compatible WebSocket signaling: the
// connect/offer/answer exchange, channels and sessions, admission by the
// node's mode, notify messages, and the session and event webhooks that
// follow a connection's life.
//
// # Admission
//
// A connect is checked against the mode word twice: once with a single
// atomic load right after the message is parsed (so a blocked node never
// calls the auth webhook), and once more when the connection joins its
// channel. The second check and the join are one step under the hub's lock,
// the same lock under which a channel's last connection ends its session.
// So "this channel has a live session" cannot change between the check and
// the join, and two racing connects to an idle channel under
// block_new_session are both refused (docs/design.md, decision 4).
//
// # Sessions
//
// A channel's session begins when its first connection is admitted (the
// offer already carries the session_id) and ends when its last connection
// ends, whether or not that connection ever answered (docs/design.md,
// decision 3) — or, with Settings.SessionIdleTimeout, that long after it
// (Sora's SIGNALING: the session ends when the count goes from 1 to 0 "and
// a certain period passes"). An idle session is live: it stays in the
// channel map, so a connect within the window joins it (under
// block_new_session too: the admission check sees a live session), the API
// lists it and the cluster placement stays with this node. Only when the
// window ends, under the hub's lock like any session end, are
// session.destroyed (and session.vanished, if that drained the node) sent
// and the channel released. Under block_new_connection nobody could join
// an idle session, so none is kept: leaving into it, or entering it,
// ends them at once.
package signal

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hayate-sfu/hayate/internal/ids"
	"github.com/hayate-sfu/hayate/media"
	"github.com/hayate-sfu/hayate/mode"
	"github.com/hayate-sfu/hayate/signal/jsep"
	"github.com/hayate-sfu/hayate/webhook"
)

// Settings are the signaling parts of the node configuration.
type Settings struct {
	Label, NodeName, Version string

	PingInterval    time.Duration
	PongTimeout     time.Duration
	ConnectTimeout  time.Duration
	AnswerTimeout   time.Duration
	MaxMessageBytes int

	SignalingNotify   bool
	SignalingBundleID bool
	// SignalingNotifyMetadataExt: notifies carry the signaling notify
	// metadata extension's object as metadata (notifymeta.go).
	SignalingNotifyMetadataExt bool
	DefaultVideoCodecType      string
	DefaultAudioCodecType      string

	IgnoreSessionVanished bool

	// SessionIdleTimeout is how long a session lives on after its last
	// connection left (0: it ends at once); see "Sessions" above.
	SessionIdleTimeout time.Duration

	// ExternalSignalingURL is this node's signaling URL in a cluster, sent
	// in session webhooks (docs/spec/sora-protocol.md §5.4); empty otherwise.
	ExternalSignalingURL string

	// Limits (0: none, except MaxPending).
	MaxConnections        int
	MaxChannelConnections int
	MaxPending            int

	// DataChannels (datachannels.go): the defaults when connect leaves
	// data_channel_signaling and ignore_disconnect_websocket out, whether
	// to open `rpc`, whether a detached connection is told why it ends,
	// the largest message, and the messages a connection may send a
	// second (0: no limit).
	DataChannelSignaling         bool
	IgnoreDisconnectWebSocket    bool
	DataChannelRPC               bool
	DataChannelCloseMessage      bool
	DataChannelMaxMessageSize    int
	DataChannelMessagesPerSecond int

	// ICETransportPolicy is the offer's config.iceTransportPolicy ("all"
	// or "relay"); ICETCPCandidate, when valid, the passive ICE-TCP
	// candidate every offer carries.
	ICETransportPolicy string
	ICETCPCandidate    netip.AddrPort

	// RTC stats (rtcstats.go): how often a client is asked for its
	// getStats() report on its WebSocket and on its `stats` DataChannel
	// (0: never), and the largest report kept.
	WebSocketStatsInterval   time.Duration
	DataChannelStatsInterval time.Duration
	RTCStatsMaxBytes         int
}

// Authenticator calls the auth webhook.
type Authenticator interface {
	Enabled() bool
	Call(ctx context.Context, connectionID string, body any) (webhook.Decision, error)
}

// EventSink takes webhook payloads without blocking. Payloads of one key
// (a channel's session webhooks, a connection's event webhooks) are
// delivered in the order they were sent; SendAfterAll's payload goes out
// after everything sent before it.
type EventSink interface {
	Send(key string, payload any) bool
	SendThen(key string, payload any, then func(answer []byte)) bool
	SendAfterAll(payload any) bool
}

// Hooks are the webhooks the hub calls.
type Hooks struct {
	Auth    Authenticator
	Session EventSink
	Event   EventSink
	// Router, if set, places channels on the nodes of a cluster.
	Router Router
	// ICEServers, if set, makes each offer's config.iceServers (TURN).
	ICEServers ICEServers
}

// TestHooks are knobs for tests of the admission race; the zero value is
// production behaviour. Set them with SetTestHooks before any connection.
type TestHooks struct {
	// BeforeAdmit runs on a connecting client's goroutine between the
	// admission precheck and the admission commit (admit), with nothing
	// locked.
	BeforeAdmit func(channelID string)
	// AfterAdmit runs on a connecting client's goroutine right after the
	// admission commit, with nothing locked: a test closes the hub from it
	// to show that a close racing the admission still ends the connection.
	AfterAdmit func(channelID string)
	// BeforeFence runs at the start of Fence: a test delays fencing with it
	// to show that a cluster_lease_grace shorter than the fencing latency
	// lets two nodes serve a channel at once.
	BeforeFence func(channels []string)
	// TrustPrecheck makes admit skip its mode check and rely on the
	// precheck's answer: a deliberately broken admission order, so that a
	// test can show it catches a connect admitted into a session that
	// ended in between.
	TrustPrecheck bool
	// UpdatedEvery, if set, replaces the minute between a connection's
	// connection.updated webhooks.
	UpdatedEvery time.Duration
}

// SetTestHooks installs test hooks (see TestHooks).
func (h *Hub) SetTestHooks(t TestHooks) { h.test.Store(&t) }

// testHooks returns the installed test hooks (the zero value normally).
func (h *Hub) testHooks() TestHooks {
	if t := h.test.Load(); t != nil {
		return *t
	}
	return TestHooks{}
}

// Hub holds every channel, session and connection of a node and serves the
// signaling WebSocket. All fields below mu are guarded by it.
type Hub struct {
	set   Settings
	word  *mode.Word
	media media.Engine
	hooks Hooks
	log   *slog.Logger
	stats Stats
	test  atomic.Pointer[TestHooks]

	// ctx ends when the hub shuts down; auth webhook calls use it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// admitted mirrors len(conns) for the lock-free precheck.
	admitted    atomic.Int64
	pendingWarn everySecond

	mu       sync.Mutex
	channels map[string]*channel
	conns    map[string]*Conn // admitted connections by connection_id
	sockets  map[*Conn]struct{}
	pending  int // sockets not admitted yet
	// vanishedSent is true once session.vanished went out for the current
	// drain; a new session or a return to normal resets it.
	vanishedSent bool
	// draining: the node's shutdown drain is on (SetHealthMode).
	draining bool
	closed   bool
	// idle is closed and replaced whenever the last session ends.
	idle chan struct{}
}

// channel is a channel with a live session on this node.
type channel struct {
	id        string
	sessionID string
	created   time.Time
	members   []*Conn
	peak      int
	total     int
	history   []sessionConnection
	// relay lists the receivers of each messaging label (messaging.go).
	relay atomic.Pointer[relayIndex]
	// The session.created answer's payouts (payouts.go), guarded by hub.mu:
	// session_metadata, and trial_max_connections when capped.
	sessionMetadata json.RawMessage
	maxConnections  int
	capped          bool
	// spot is the channel's spotlight, from its first spotlight
	// connection on (spotlight.go); spotNumber the session.created
	// answer's spotlight_number (0: none).
	spot       *spotlight
	spotNumber int
	// linger ends the session once it has had no connection for
	// SessionIdleTimeout (nil while it has one); lingerGen tells a timer
	// that fired after it was stopped that it is stale. Guarded by hub.mu.
	linger    *time.Timer
	lingerGen uint64
}

// metadata is the session's session_metadata. Called with hub.mu held.
func (ch *channel) metadata() json.RawMessage { return ch.sessionMetadata }

// maxSessionHistory bounds the connection list kept for session.destroyed.
const maxSessionHistory = 1000

// NewHub returns a hub reading its mode from word and opening a media
// transport per connection on engine.
func NewHub(set Settings, word *mode.Word, engine media.Engine, hooks Hooks, log *slog.Logger) *Hub {
	ctx, cancel := context.WithCancel(context.Background())
	h := &Hub{
		set: set, word: word, media: engine, hooks: hooks, log: log,
		ctx: ctx, cancel: cancel,
		channels: map[string]*channel{},
		conns:    map[string]*Conn{},
		sockets:  map[*Conn]struct{}{},
		idle:     make(chan struct{}),
	}
	go h.keepalive()
	go h.spotlightLoop()
	go h.rtcStatsLoop()
	return h
}

// Stats returns the hub's counters.
func (h *Hub) Stats() *Stats { return &h.stats }

// Mode returns the effective mode.
func (h *Hub) Mode() mode.Mode { return h.word.Load() }

// SetMode sets the operator mode and returns the effective mode. Entering a
// block mode with no session sends session.vanished (once every webhook
// before it has gone out).
func (h *Hub) SetMode(m mode.Mode) mode.Mode {
	h.mu.Lock()
	defer h.mu.Unlock()
	before, after := h.word.SetOperator(m)
	h.modeChangedLocked(before, after, "operator")
	return after
}

// SetHealthMode sets the mode the node puts itself in (its drain, its
// cluster health) and returns the effective mode. draining says whether
// the node's own shutdown drain is part of it: only a drain the operator
// (ChangeMode, initial_mode) or the shutdown started sends
// session.vanished, never a cluster node's join or lease state.
func (h *Hub) SetHealthMode(m mode.Mode, draining bool) mode.Mode {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.draining = draining
	before, after := h.word.SetHealth(m)
	h.modeChangedLocked(before, after, "health")
	return after
}

func (h *Hub) modeChangedLocked(before, after mode.Mode, source string) {
	if before != after {
		h.log.Info("mode changed", "from", before.String(), "to", after.String(), "by", source,
			"sessions", len(h.channels), "connections", len(h.conns))
	}
	if after == mode.BlockNewConnection {
		h.endIdleLocked(nil) // nobody could join them
	}
	if !h.drainingLocked() {
		h.vanishedSent = false
		return
	}
	h.maybeVanishedLocked()
}

// drainingLocked reports whether the node is in a drain that
// session.vanished reports: a block mode the operator set, or the
// shutdown drain.
func (h *Hub) drainingLocked() bool {
	return h.word.Operator().Blocking() || h.draining
}

// maybeVanishedLocked sends session.vanished when the node is draining and
// has no session, once per drain (Sora's MODE doc: "all sessions have been
// destroyed"). It goes out only after every session webhook queued before
// it (the session.destroyed events that drained the node) was delivered
// or finally failed.
func (h *Hub) maybeVanishedLocked() {
	if len(h.channels) != 0 || h.vanishedSent || !h.drainingLocked() {
		return
	}
	h.vanishedSent = true
	if h.set.IgnoreSessionVanished {
		return
	}
	h.log.Info("node drained: no sessions left", "mode", h.word.Load().String())
	h.hooks.Session.SendAfterAll(h.header("session.vanished"))
}

// Sessions returns the number of live sessions.
func (h *Hub) Sessions() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.channels)
}

// Connections returns the number of admitted connections.
func (h *Hub) Connections() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.conns)
}

// WaitIdle returns when the node has no session or ctx ends, and reports
// whether it became idle.
func (h *Hub) WaitIdle(ctx context.Context) bool {
	for {
		h.mu.Lock()
		n, idle := len(h.channels), h.idle
		h.mu.Unlock()
		if n == 0 {
			return true
		}
		select {
		case <-idle:
		case <-ctx.Done():
			return false
		}
	}
}

// precheck is the admission check made before the auth webhook, so that a
// refused connect costs the application server nothing. In normal mode with
// no per-channel limit it takes no lock. admit checks again under the lock.
func (h *Hub) precheck(channelID string) *CloseError {
	m := h.word.Load()
	if e := refusalError(mode.Admit(m, true)); e != nil {
		return e // refused whatever the channel's state
	}
	if m != mode.BlockNewSession && h.set.MaxChannelConnections == 0 {
		return h.limitError(int(h.admitted.Load()), 0)
	}
	h.mu.Lock()
	ch := h.channels[channelID]
	conns, members := len(h.conns), 0
	if ch != nil {
		members = len(ch.members)
	}
	h.mu.Unlock()
	if e := refusalError(mode.Admit(m, ch != nil)); e != nil {
		return e
	}
	return h.limitError(conns, members)
}

// limitError is the refusal, if any, of one more connection on a node with
// conns admitted connections, to a channel with members of them.
func (h *Hub) limitError(conns, members int) *CloseError {
	if h.set.MaxConnections > 0 && conns >= h.set.MaxConnections {
		return ErrMaxConnections
	}
	if h.set.MaxChannelConnections > 0 && members >= h.set.MaxChannelConnections {
		return ErrMaxChannelConnections
	}
	return nil
}

func refusalError(r mode.Refusal) *CloseError {
	switch r {
	case mode.RefuseNewConnection:
		return ErrBlockedNewConnection
	case mode.RefuseNewSession:
		return ErrBlockedNewSession
	default:
		return nil
	}
}

// admit is the admission commit: under the lock it checks the mode against
// the channel's state and, if admitted, joins the connection to the
// channel's session (creating it) and queues its offer as its first message.
func (h *Hub) admit(c *Conn) *CloseError {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrBlockedNewConnection
	}
	ch := h.channels[c.channelID]
	if err := refusalError(mode.Admit(h.word.Load(), ch != nil)); err != nil && !h.testHooks().TrustPrecheck {
		return err
	}
	members := 0
	if ch != nil {
		members = len(ch.members)
	}
	if err := h.limitError(len(h.conns), members); err != nil {
		return err
	}
	if ch != nil && ch.capped && members >= ch.maxConnections {
		return ErrMaxChannelConnections // the session's trial_max_connections
	}
	if r := h.hooks.Router; r != nil && !r.Serving(c.channelID) {
		return ErrBlockedNewConnection // the lease lapsed since routing
	}
	h.pending--
	c.pendingCounted = false
	now := time.Now()
	if ch == nil {
		ch = &channel{id: c.channelID, sessionID: ids.New(), created: now}
		h.channels[ch.id] = ch
		h.vanishedSent = false
		h.stats.SessionCreated.Add(1)
		h.log.Info("session created", "channel_id", ch.id, "session_id", ch.sessionID)
		created := ch
		h.hooks.Session.SendThen(ch.id, h.sessionPayload("session.created", ch, time.Time{}),
			func(answer []byte) { h.sessionCreatedAnswer(created, answer) })
	}
	if ch.linger != nil {
		h.stopLingerLocked(ch)
		h.log.Info("session resumed within its idle window", "channel_id", ch.id, "session_id", ch.sessionID)
	}
	c.ch = ch
	c.sessionID = ch.sessionID
	c.admittedAt = now
	ch.members = append(ch.members, c)
	if c.spot.on && ch.spot == nil {
		n := c.spot.number
		if ch.spotNumber != 0 {
			n = ch.spotNumber
		}
		ch.spot = newSpotlight(n)
	}
	ch.total++
	if len(ch.members) > ch.peak {
		ch.peak = len(ch.members)
	}
	h.conns[c.id] = c
	h.admitted.Store(int64(len(h.conns)))
	if h.hooks.Router != nil {
		h.hooks.Router.SetLoad(len(h.conns))
	}
	c.lastPong.Store(now.UnixNano())
	// The connect's read deadline ends here, before the connection is live:
	// a close requested from now on sets the reader's deadline after this
	// (writer.go), and none is undone by it. Going live is ordered with
	// requestClose by closeMu: a close that came first, and found the
	// connection not live (it only woke the reader), is carried out the
	// live way, after the offer.
	c.nc.SetReadDeadline(time.Time{})
	c.closeMu.Lock()
	c.live.Store(true)
	closing := c.closeErr != nil
	c.closeMu.Unlock()
	c.queue(c.offerMessage())
	if closing {
		c.startClosing()
	}
	return nil
}

// answered applies an accepted answer to the offer it answers (o, the
// offer c.sent held). The first answer makes the connection created: its
// tracks are published to the channel and it is announced.
func (h *Hub) answered(c *Conn, o *jsep.Offer, a *jsep.Answer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.ch == nil || c.sent != o {
		return
	}
	c.sent = nil
	if !c.answered {
		c.answered = true
		h.createdLocked(c)
		if tracks := publishedTracks(o, a); len(tracks) > 0 {
			h.publishLocked(c, tracks)
		}
	}
	h.answeredLocked(c, o, a)
}

// createdLocked marks a connection as established (its answer was
// accepted) and announces it: notify connection.created to the channel and
// the connection.created event webhook.
func (h *Hub) createdLocked(c *Conn) {
	if c.created {
		return
	}
	c.created = true
	c.createdAt = time.Now()
	h.stats.ConnectionCreated.Add(1)
	h.stats.Successful.Add(1)
	h.log.Info("connection created", "channel_id", c.channelID, "connection_id", c.id, "role", c.role, "client_id", c.clientID)
	h.notifyLocked(c, "connection.created")
	h.hooks.Event.Send(c.id, h.connectionPayload("connection.created", c))
	h.scheduleUpdatedLocked(c)
}

// scheduleUpdatedLocked arms c's next connection.updated: at each whole
// minute of its life (Sora's event webhook: connection.updated is
// periodic, with the minutes counter; the period is not documented, the
// minute is Hayate's choice). The webhooks of a connection go out in order,
// so each comes after connection.created and before connection.destroyed.
func (h *Hub) scheduleUpdatedLocked(c *Conn) {
	every := time.Minute
	if d := h.testHooks().UpdatedEvery; d > 0 {
		every = d
	}
	next := c.createdAt.Add(time.Duration(c.updates+1) * every)
	c.updated = time.AfterFunc(time.Until(next), func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if c.left || h.closed {
			return
		}
		c.updates++
		h.hooks.Event.Send(c.id, h.connectionPayload("connection.updated", c))
		h.scheduleUpdatedLocked(c)
	})
}

// leave removes an admitted connection. The last one out ends the session.
func (h *Hub) leave(c *Conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch := c.ch
	if ch == nil || c.left {
		return
	}
	c.left = true
	if c.updated != nil {
		c.updated.Stop()
	}
	h.unpublishLocked(c)
	for i, m := range ch.members {
		if m == c {
			ch.members = append(ch.members[:i], ch.members[i+1:]...)
			break
		}
	}
	if c.dc != nil {
		h.rebuildRelayLocked(ch)
	}
	delete(h.conns, c.id)
	c.rtcStats.Store(nil) // its report goes with it (rtcstats.go)
	h.admitted.Store(int64(len(h.conns)))
	if h.hooks.Router != nil {
		h.hooks.Router.SetLoad(len(h.conns))
	}
	c.destroyedAt = time.Now()
	if len(ch.history) < maxSessionHistory {
		ch.history = append(ch.history, c.sessionRecord())
	}
	if c.created {
		h.stats.ConnectionDestroyed.Add(1)
		h.log.Info("connection destroyed", "channel_id", c.channelID, "connection_id", c.id, "reason", c.endReason)
		h.notifyLocked(c, "connection.destroyed")
		h.hooks.Event.Send(c.id, h.connectionPayload("connection.destroyed", c))
	} else {
		h.stats.Failed.Add(1)
		h.log.Info("connection failed before its answer", "channel_id", c.channelID, "connection_id", c.id, "reason", c.endReason)
		h.hooks.Event.Send(c.id, h.failedPayload(c, c.endReason))
	}
	if len(ch.members) > 0 || h.lingerLocked(ch) {
		return
	}
	h.endSessionLocked(ch, c.destroyedAt)
}

// lingerLocked keeps ch's session, which has just lost its last connection,
// for SessionIdleTimeout and reports whether it does: not without a
// timeout, once the hub is closed, under block_new_connection, where no
// connect could join it, or when this node may no longer serve the channel
// (its cluster lease lost or the channel moved).
func (h *Hub) lingerLocked(ch *channel) bool {
	d := h.set.SessionIdleTimeout
	if d <= 0 || h.closed || h.word.Load() == mode.BlockNewConnection {
		return false
	}
	if r := h.hooks.Router; r != nil && !r.Serving(ch.id) {
		return false
	}
	gen := ch.lingerGen
	ch.linger = time.AfterFunc(d, func() { h.lingerEnded(ch, gen) })
	h.log.Info("session idle", "channel_id", ch.id, "session_id", ch.sessionID, "ends_in", d.String())
	return true
}

// lingerEnded ends ch's session when its idle window passed with no
// connect (gen: the window's generation, stale once a connect came).
func (h *Hub) lingerEnded(ch *channel, gen uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.channels[ch.id] != ch || ch.lingerGen != gen || len(ch.members) > 0 {
		return
	}
	h.endSessionLocked(ch, time.Now())
}

// stopLingerLocked ends ch's idle window without ending its session.
func (h *Hub) stopLingerLocked(ch *channel) {
	if ch.linger != nil {
		ch.linger.Stop()
		ch.linger = nil
		ch.lingerGen++
	}
}

// endIdleLocked ends at once every idle session whose channel pick
// accepts (every one when pick is nil).
func (h *Hub) endIdleLocked(pick func(channelID string) bool) {
	now := time.Now()
	for _, ch := range h.channels {
		if len(ch.members) == 0 && ch.linger != nil && (pick == nil || pick(ch.id)) {
			h.endSessionLocked(ch, now)
		}
	}
}

// endSessionLocked ends ch's session, which has no connection left:
// session.destroyed, the channel released to the cluster, and
// session.vanished if that drained the node.
func (h *Hub) endSessionLocked(ch *channel, destroyed time.Time) {
	h.stopLingerLocked(ch)
	delete(h.channels, ch.id)
	if h.hooks.Router != nil {
		h.hooks.Router.Release(ch.id)
	}
	h.stats.SessionDestroyed.Add(1)
	h.log.Info("session destroyed", "channel_id", ch.id, "session_id", ch.sessionID, "connections", ch.total)
	h.hooks.Session.Send(ch.id, h.sessionPayload("session.destroyed", ch, destroyed))
	if len(h.channels) == 0 {
		close(h.idle)
		h.idle = make(chan struct{})
	}
	h.maybeVanishedLocked()
}

// refused records a connect refused before admission.
func (h *Hub) refused(c *Conn, e *CloseError) {
	h.stats.Failed.Add(1)
	h.stats.countRefusal(e)
	h.mu.Lock()
	payload := h.failedPayload(c, e.Reason)
	h.mu.Unlock()
	h.hooks.Event.Send(c.id, payload)
}

// track registers an upgraded socket, counted as pending until admitted.
// It refuses once the hub is closed or too many sockets are pending.
func (h *Hub) track(c *Conn) *CloseError {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrServerShutdown
	}
	if h.pending >= h.set.MaxPending {
		return ErrTooManyPending
	}
	h.pending++
	c.pendingCounted = true
	h.sockets[c] = struct{}{}
	h.wg.Add(1)
	return nil
}

func (h *Hub) untrack(c *Conn) {
	h.mu.Lock()
	delete(h.sockets, c)
	if c.pendingCounted {
		h.pending--
		c.pendingCounted = false
	}
	h.mu.Unlock()
	h.wg.Done()
}

// Pending returns the number of sockets not admitted yet.
func (h *Hub) Pending() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.pending
}

// Close closes every signaling connection with 1001 SERVER-SHUTDOWN and
// waits for them to end, at most until ctx ends.
func (h *Hub) Close(ctx context.Context) {
	h.mu.Lock()
	h.closed = true
	h.endIdleLocked(nil)
	all := make([]*Conn, 0, len(h.sockets))
	for c := range h.sockets {
		all = append(all, c)
	}
	h.mu.Unlock()
	h.cancel()
	for _, c := range all {
		c.requestClose(ErrServerShutdown)
	}
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		h.log.Warn("signaling connections still closing at shutdown", "left", len(all))
	}
}

// everySecond lets one event a second through, without a lock.
type everySecond struct{ last atomic.Int64 }

// Allow reports whether an event at now may be logged.
func (e *everySecond) Allow(now time.Time) bool {
	last := e.last.Load()
	return now.UnixNano()-last >= int64(time.Second) && e.last.CompareAndSwap(last, now.UnixNano())
}
