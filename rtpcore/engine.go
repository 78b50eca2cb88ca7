// Package rtpcore is Hayate's media path: one UDP port served by a few
// SO_REUSEPORT sockets, each read by one goroutine with batched syscalls; the
// RFC 7983 demultiplexer; ICE-lite (package ice), DTLS (pion/dtls/v3) and
// SRTP (pion/srtp/v3) per connection; and the forwarding core that sends
// every packet of a publisher to the subscribers of its channel.
//
// # The receive loop
//
// Each socket has a shard: one goroutine that receives a batch with
// recvmmsg, handles every datagram in it, and flushes the datagrams it
// produced with one sendmmsg (UDP GSO for runs to one destination). The
// kernel's 4-tuple hash keeps a peer on one socket, so a peer's packets are
// all handled by one shard. A forwarded packet is decrypted once, in place,
// then copied into a send slot and encrypted in place per subscriber; no
// step allocates. Every transport has a home shard, the only one that
// forwards to it: a publisher's packets are handed from the shard that
// received them to the home shards of its subscribers (handoff.go), so one
// broadcast uses every core.
//
// # Locks on the packet path
//
// A transport's receive state (decrypt context, published tracks) is
// guarded by its rmu and its send state (encrypt context) by its smu. Both
// are held for one packet at a time. Only the home shard forwards to a
// subscriber, so its smu is contended only when the subscriber's own RTCP
// (NACKs, feedback), received on another shard, is handled at the same
// moment. Subscriber lists are copy-on-write slices read with one atomic
// load.
package rtpcore

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/srtp/v3"

	"github.com/hayate-sfu/hayate/internal/ids"
	"github.com/hayate-sfu/hayate/media"
	"github.com/hayate-sfu/hayate/rtpcore/datachan"
	"github.com/hayate-sfu/hayate/rtpcore/ice"
)

// Config is what the media path needs from the node configuration.
type Config struct {
	// Addr is ipv4_address:media_port (port 0 picks a free one).
	Addr netip.AddrPort
	// Advertise, when valid, is the ICE candidate offered instead of Addr
	// (media_advertised_address; a port of 0 keeps the bound port).
	Advertise netip.AddrPort
	// Sockets is the number of SO_REUSEPORT sockets and receive loops.
	Sockets int
	// Certificate is the DTLS certificate and Fingerprint its sha-256
	// fingerprint in SDP form.
	Certificate tls.Certificate
	Fingerprint string
	// FailedTimeout closes a transport whose peer has sent nothing for this
	// long, or whose ICE and DTLS have not completed this long after Start
	// (Sora: ice_connection_state_failed_timeout, 10 s).
	FailedTimeout time.Duration
	// ReportInterval is the period of RTCP receiver reports to publishers.
	ReportInterval time.Duration
	// Backend is the socket backend: BackendAuto (io_uring where the
	// kernel allows it, else epoll; the default), BackendEpoll or
	// BackendIOUring.
	Backend string
	// DataMaxMessageSize is the largest DataChannel message accepted (our
	// a=max-message-size) and DataQueueBytes the bound on a transport's
	// queued DataChannel bytes (data.go).
	DataMaxMessageSize int
	DataQueueBytes     int
	// FixedLayers turns per-viewer adaptation off (simulcast_adaptation =
	// false): a viewer gets the best layer within its cap that the
	// publisher sends, whatever its bandwidth estimate, as Sora does; no
	// probes are sent. The estimate is still kept (for the stats).
	FixedLayers bool
	// Log receives the media path's logs; nil discards them.
	Log *slog.Logger
}

// withDefaults fills what cfg leaves unset: the one place the media
// path's defaults live.
func (cfg Config) withDefaults() Config {
	if cfg.Sockets < 1 {
		cfg.Sockets = 1
	}
	if cfg.FailedTimeout <= 0 {
		cfg.FailedTimeout = 10 * time.Second // Sora's ice_connection_state_failed_timeout
	}
	if cfg.ReportInterval <= 0 {
		cfg.ReportInterval = time.Second
	}
	if cfg.DataMaxMessageSize <= 0 {
		cfg.DataMaxMessageSize = datachan.DefaultRemoteMaxMessageSize
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return cfg
}

// Engine is the media path of a node; it implements media.Engine.
type Engine struct {
	cfg     Config
	shards  []*shard
	addr    netip.AddrPort
	backend string

	mu         sync.RWMutex
	byUfrag    map[string]*Transport
	transports map[*Transport]struct{}
	// owned counts the open transports by home shard (guarded by mu).
	owned []int
	// rings[i*len(shards)+j] carries packets from shard i to shard j.
	rings []handoffRing

	// links are the in-process peers by address (link.go).
	links     sync.Map
	linkSeq   atomic.Uint32
	linkCount atomic.Int64
	// marked are relayed UDP peer addresses by link kind (Transport.Path).
	marked sync.Map

	stats  Stats
	live   stallLog
	dc     datachan.Counters
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New binds the media sockets and starts the receive loops.
func New(cfg Config) (*Engine, error) {
	cfg = cfg.withDefaults()
	var ios []PacketIO
	var err error
	if cfg.Backend == BackendAuto || cfg.Backend == "" {
		// io_uring where the kernel allows it (it is faster under fanout,
		// BENCHMARKS.md); containers often forbid it, then epoll.
		cfg.Backend = BackendIOUring
		if uerr := UringAvailable(); uerr != nil {
			cfg.Backend = BackendEpoll
			cfg.Log.Info("io_uring unavailable, media_backend epoll", "err", uerr)
		}
	}
	switch cfg.Backend {
	case BackendEpoll:
		ios, err = ListenMedia(cfg.Addr, cfg.Sockets)
	case BackendIOUring:
		if err := UringAvailable(); err != nil {
			return nil, fmt.Errorf("media_backend io_uring: %w", err)
		}
		ios, err = ListenMediaUring(cfg.Addr, cfg.Sockets)
	default:
		return nil, fmt.Errorf("%w: media_backend %q", ErrBackend, cfg.Backend)
	}
	if err != nil {
		return nil, err
	}
	e, err := NewWithIO(cfg, ios)
	if err == nil {
		e.backend = cfg.Backend
	}
	return e, err
}

// The socket backends (media_backend).
const (
	BackendAuto    = "auto"
	BackendEpoll   = "epoll"
	BackendIOUring = "io_uring"
)

// Backend is the socket backend in use.
func (e *Engine) Backend() string { return e.backend }

// NewWithIO starts an engine on sockets that are already bound (all to the
// same address), for alternative backends.
func NewWithIO(cfg Config, ios []PacketIO) (*Engine, error) {
	return newEngine(cfg, ios, true)
}

// newEngine builds an engine; without loops, its shards are driven by the
// caller (tests and benchmarks call handle and flush themselves).
func newEngine(cfg Config, ios []PacketIO, loops bool) (*Engine, error) {
	if len(ios) == 0 {
		return nil, errNoSocket
	}
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	e := &Engine{
		cfg: cfg, addr: netip.AddrPortFrom(cfg.Addr.Addr(), ios[0].LocalAddr().Port()),
		byUfrag: map[string]*Transport{}, transports: map[*Transport]struct{}{},
		ctx: ctx, cancel: cancel,
	}
	e.owned = make([]int, len(ios))
	if len(ios) > 1 {
		e.rings = make([]handoffRing, len(ios)*len(ios))
	}
	for i, io := range ios {
		e.shards = append(e.shards, newShard(e, i, newRouteIO(e, io), len(ios)))
	}
	for _, s := range e.shards {
		if loops {
			e.wg.Add(1)
			go s.run()
		}
	}
	if loops {
		e.wg.Add(1)
		go e.janitor()
	}
	return e, nil
}

// now is the wall time in ns (the packet path uses its batch's time).
func (e *Engine) now() int64 { return time.Now().UnixNano() }

// Fingerprint implements media.Engine.
func (e *Engine) Fingerprint() string { return e.cfg.Fingerprint }

// Candidate implements media.Engine: ipv4_address and the bound port.
func (e *Engine) Candidate() netip.AddrPort {
	if a := e.cfg.Advertise; a.IsValid() {
		if a.Port() == 0 {
			return netip.AddrPortFrom(a.Addr(), e.addr.Port())
		}
		return a
	}
	return e.addr
}

// Bound is the address the media sockets are bound to.
func (e *Engine) Bound() netip.AddrPort { return e.addr }

// Stats returns the media counters, summed over the shards.
func (e *Engine) Stats() StatsSnapshot {
	snap := e.stats.snapshot()
	snap.Dropped["receive_buffer_full"] = 0
	for _, s := range e.shards {
		snap.add(s.stats.snapshot())
		snap.Addresses += int(s.addresses.Load())
		if d, ok := s.io.(receiveDropper); ok {
			if n, ok := d.receiveDrops(); ok {
				snap.Dropped["receive_buffer_full"] += n
			}
		}
	}
	snap.Links.Open = e.linkCount.Load()
	snap.NodeStalls = e.live.stalls.Load()
	snap.LongestNodeStallMs = time.Duration(e.live.longest.Load()).Milliseconds()
	snap.addData(&e.dc)
	snap.Profiles = map[string]int{}
	e.mu.RLock()
	snap.Transports = len(e.transports)
	for t := range e.transports {
		switch t.Profile() {
		case srtp.ProtectionProfileAeadAes128Gcm:
			snap.Profiles["AEAD_AES_128_GCM"]++
		case srtp.ProtectionProfileAes128CmHmacSha1_80:
			snap.Profiles["AES128_CM_HMAC_SHA1_80"]++
		}
	}
	e.mu.RUnlock()
	return snap
}

// Open implements media.Engine.
func (e *Engine) Open(connectionID string, ev media.Events) (media.Transport, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.ctx.Err() != nil {
		return nil, ErrClosed
	}
	// The home shard: the one with the fewest transports (handoff.go).
	home := 0
	for i, n := range e.owned {
		if n < e.owned[home] {
			home = i
		}
	}
	e.owned[home]++
	t := newTransport(e, connectionID, ev, home)
	for e.byUfrag[t.agent.LocalUfrag] != nil {
		t.agent = ice.NewAgent(ids.ICE(8), t.agent.LocalPwd)
	}
	e.byUfrag[t.agent.LocalUfrag] = t
	e.transports[t] = struct{}{}
	return t, nil
}

// lookup finds the transport owning a local ufrag (the map index with a
// []byte conversion does not allocate).
func (e *Engine) lookup(ufrag []byte) *ice.Agent {
	e.mu.RLock()
	t := e.byUfrag[string(ufrag)]
	e.mu.RUnlock()
	if t == nil || t.isClosed() {
		return nil
	}
	return t.agent
}

func (e *Engine) transportOf(ufrag string) *Transport {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.byUfrag[ufrag]
}

func (e *Engine) forget(t *Transport) {
	e.mu.Lock()
	if e.byUfrag[t.agent.LocalUfrag] == t {
		delete(e.byUfrag, t.agent.LocalUfrag)
	}
	if _, ok := e.transports[t]; ok {
		e.owned[t.home]--
	}
	delete(e.transports, t)
	e.mu.Unlock()
}

// Close stops the receive loops, closes every transport and the sockets.
func (e *Engine) Close() error {
	e.cancel()
	e.mu.Lock()
	all := make([]*Transport, 0, len(e.transports))
	for t := range e.transports {
		all = append(all, t)
	}
	e.mu.Unlock()
	for _, t := range all {
		t.Close()
	}
	for _, s := range e.shards {
		s.io.Close()
	}
	e.wg.Wait()
	return nil
}

// janitor runs the timers of every transport: liveness and handshake
// deadlines, and RTCP receiver reports to publishers. Each wake it first
// looks for a node stall (liveness.go), so that the deadlines it then
// checks are measured in time the node was listening.
func (e *Engine) janitor() {
	defer e.wg.Done()
	tick := min(e.cfg.ReportInterval, e.cfg.FailedTimeout/4, 500*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	beats := make([]int64, len(e.shards))
	e.live.start(time.Now())
	lastReport := time.Now()
	for {
		select {
		case <-e.ctx.Done():
			return
		case <-t.C:
		}
		// The tick's own timestamp is when it was due, not when the
		// janitor got to run: lateness is measured from the clock.
		now := time.Now()
		for i, s := range e.shards {
			beats[i] = s.beat.Load()
		}
		e.live.observe(now, tick, beats, e.cfg.Log)
		report := now.Sub(lastReport) >= e.cfg.ReportInterval
		if report {
			lastReport = now
		}
		e.mu.RLock()
		all := make([]*Transport, 0, len(e.transports))
		for tr := range e.transports {
			all = append(all, tr)
		}
		e.mu.RUnlock()
		for _, tr := range all {
			tr.tick(now, report)
		}
	}
}

// String describes the engine for logs.
func (e *Engine) String() string {
	return fmt.Sprintf("media %s (%d sockets)", e.addr, len(e.shards))
}
