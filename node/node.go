// Package node wires one Hayate node from its configuration: the signaling
// and API listeners, the media port, the webhooks and the mode word. Tests
// run several nodes in one process; nothing here is package-level state.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/hayate-sfu/hayate/config"
	"github.com/hayate-sfu/hayate/control"
	"github.com/hayate-sfu/hayate/icetcp"
	"github.com/hayate-sfu/hayate/internal/cert"
	"github.com/hayate-sfu/hayate/mode"
	"github.com/hayate-sfu/hayate/rtpcore"
	"github.com/hayate-sfu/hayate/signal"
	"github.com/hayate-sfu/hayate/turn"
	"github.com/hayate-sfu/hayate/webhook"
)

// Version is Hayate's version, sent in webhooks and GetStatsReport.
const Version = "2026.1.0-dev"

// Node is a running Hayate node.
type Node struct {
	cfg  config.Config
	log  *slog.Logger
	word *mode.Word
	cert *cert.Certificate

	hub      *signal.Hub
	api      *control.API
	auth     *webhook.Auth
	sessionQ *webhook.Queue
	eventQ   *webhook.Queue

	sigLn, apiLn   net.Listener
	media          *rtpcore.Engine
	turn           *turn.Server   // nil without turn = true
	iceTCP         *icetcp.Server // nil without ice_tcp = true
	sigSrv, apiSrv *http.Server

	// cl is the node's cluster part; nil without cluster = true.
	cl *clusterNode
	// The health mode is the stricter of the cluster's and the drain's.
	healthMu                   sync.Mutex
	clusterHealth, drainHealth mode.Mode
	drain                      drainRecord // guarded by healthMu

	build BuildInfo

	closeOnce sync.Once
	serveWG   sync.WaitGroup
}

// New binds the node's ports and builds its parts; Start serves them.
func New(cfg config.Config, log *slog.Logger) (n *Node, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c, err := cert.Generate()
	if err != nil {
		return nil, err
	}
	built := &Node{cfg: cfg, log: log, word: mode.NewWord(mode.Normal), cert: c, build: Build()}
	n = built
	defer func() {
		if err != nil {
			built.closeListeners() // n is nil by now
		}
	}()
	if n.sigLn, err = listenTCP(cfg.SignalingLoopbackAddressOnly, cfg.SignalingPort); err != nil {
		return nil, fmt.Errorf("signaling_port: %w", err)
	}
	if n.apiLn, err = listenTCP(cfg.APILoopbackAddressOnly, cfg.APIPort); err != nil {
		return nil, fmt.Errorf("api_port: %w", err)
	}
	if !cfg.APILoopbackAddressOnly && cfg.APIToken == "" {
		// The API changes the mode, disconnects clients, forms and purges the
		// cluster, and serves the stats (and pprof with debug_pprof).
		log.Warn("the HTTP API listens beyond loopback without api_token: anyone who reaches it can steer this node; set api_token",
			"api", n.apiLn.Addr().String())
	}
	n.media, err = rtpcore.New(rtpcore.Config{
		Addr: netip.AddrPortFrom(cfg.IPv4Address, uint16(cfg.MediaPort)), Advertise: cfg.MediaAdvertisedAddress,
		Sockets: cfg.MediaSockets, Backend: cfg.MediaBackend, Certificate: c.TLS, Fingerprint: c.Fingerprint,
		FailedTimeout: cfg.ICEConnectionStateFailedTimeout, Log: log,
		DataMaxMessageSize: cfg.DataChannelMaxMessageSize, DataQueueBytes: cfg.DataChannelQueueBytes,
		FixedLayers: !cfg.SimulcastAdaptation,
	})
	if err != nil {
		return nil, fmt.Errorf("media_port: %w", err)
	}
	if err := n.startTURN(cfg); err != nil {
		return nil, err
	}

	n.auth = webhook.NewAuth(cfg.AuthWebhookURL, cfg.WebhookResponseTimeout)
	qopt := webhook.Options{Workers: cfg.WebhookWorkers, Size: cfg.WebhookQueueSize, Timeout: cfg.WebhookResponseTimeout,
		Retries: cfg.WebhookRetries, RetryWait: cfg.WebhookRetryInterval}
	n.sessionQ = webhook.NewQueue("session", cfg.SessionWebhookURL, qopt, log)
	n.eventQ = webhook.NewQueue("event", cfg.EventWebhookURL, qopt, log)

	set := signal.Settings{
		Label: cfg.Label, NodeName: cfg.EffectiveNodeName(), Version: Version,
		PingInterval: cfg.SignalingPingInterval, PongTimeout: cfg.SignalingPongTimeout,
		ConnectTimeout: cfg.ConnectTimeout, AnswerTimeout: cfg.AnswerTimeout,
		MaxMessageBytes: cfg.MaxSignalingMessageBytes,
		SignalingNotify: cfg.SignalingNotify, SignalingBundleID: cfg.SignalingBundleID,
		SignalingNotifyMetadataExt: cfg.SignalingNotifyMetadataExt,
		DefaultVideoCodecType:      cfg.DefaultVideoCodecType, DefaultAudioCodecType: cfg.DefaultAudioCodecType,
		IgnoreSessionVanished: cfg.IgnoreSessionVanishedWebhook,
		SessionIdleTimeout:    cfg.SessionIdleTimeout,
		MaxConnections:        cfg.MaxConnections, MaxChannelConnections: cfg.MaxChannelConnections,
		MaxPending:           cfg.MaxPendingConnections,
		DataChannelSignaling: cfg.DataChannelSignaling, IgnoreDisconnectWebSocket: cfg.IgnoreDisconnectWebSocket,
		DataChannelRPC: cfg.DataChannelRPC, DataChannelCloseMessage: cfg.DataChannelSignalingCloseMessage,
		DataChannelMaxMessageSize:    cfg.DataChannelMaxMessageSize,
		DataChannelMessagesPerSecond: cfg.DataChannelMessagesPerSecond,
		ICETransportPolicy:           cfg.ICETransportPolicy,
		WebSocketStatsInterval:       cfg.WebSocketStatsTimerInterval,
		DataChannelStatsInterval:     cfg.DataChannelStatsTimerInterval,
		RTCStatsMaxBytes:             cfg.RTCStatsMaxBytes,
	}
	if n.iceTCP != nil {
		set.ICETCPCandidate = n.iceTCP.Addr()
	}
	hooks := signal.Hooks{Auth: n.auth, Session: n.sessionQ, Event: n.eventQ}
	if n.turn != nil || len(cfg.ExternalTURNURLs()) > 0 {
		hooks.ICEServers = newICEServers(cfg, n.turn)
	}
	apiOpt := control.Options{CORSOrigin: cfg.APICORSOrigin, Token: cfg.APIToken}
	if cfg.Cluster {
		// A cluster node serves nothing until it holds a lease.
		n.clusterHealth = mode.BlockNewConnection
		n.word.SetHealth(mode.BlockNewConnection)
		if n.cl, err = n.startCluster(cfg); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
		set.ExternalSignalingURL = n.cl.url
		hooks.Router, apiOpt.Cluster = n.cl, n.cl
	}
	n.hub = signal.NewHub(set, n.word, n.media, hooks, log)
	n.api = control.New(n, apiOpt, log)
	api := n.apiHandler(n.api)
	n.sigSrv = &http.Server{Handler: n.signalingHandler(), ReadHeaderTimeout: cfg.SignalingHandshakeTimeout, IdleTimeout: cfg.SignalingHandshakeTimeout,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	n.apiSrv = &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelDebug)}
	// Booting into a block mode counts as entering it: with no session yet,
	// session.vanished goes out at once.
	n.hub.SetMode(cfg.InitialMode)
	n.operatorModeChanged()
	if n.cl != nil {
		n.cl.attach()
	}
	return n, nil
}

func listenTCP(loopbackOnly bool, port int) (net.Listener, error) {
	host := ""
	if loopbackOnly {
		host = "127.0.0.1"
	}
	return net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
}

// Start serves signaling and the API and logs the ports on one line
// ("hayate ready signaling=... api=... media=...") for scripts and tests.
// The line is written at every log_level.
func (n *Node) Start() {
	for _, s := range []struct {
		srv *http.Server
		ln  net.Listener
	}{{n.sigSrv, n.sigLn}, {n.apiSrv, n.apiLn}} {
		n.serveWG.Add(1)
		go func() {
			defer n.serveWG.Done()
			if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				n.log.Error("listener stopped", "addr", s.ln.Addr().String(), "err", err)
			}
		}()
	}
	r := slog.NewRecord(time.Now(), slog.LevelInfo, "hayate ready", 0)
	r.Add("signaling", n.SignalingAddr().String(), "api", n.APIAddr().String(),
		"media", n.MediaAddr().String(), "media_backend", n.media.Backend(), "mode", n.word.Load().String(), "version", Version,
		"fingerprint", n.cert.Fingerprint)
	if c := n.MediaCandidate(); c != n.MediaAddr() {
		r.Add("media_advertised", c.String())
	}
	if n.turn != nil {
		udp, tcp, tls := n.turn.Addrs()
		for _, a := range []struct {
			key  string
			addr netip.AddrPort
		}{{"turn_udp", udp}, {"turn_tcp", tcp}, {"turn_tls", tls}} {
			if a.addr.IsValid() {
				r.Add(a.key, a.addr.String())
			}
		}
	}
	if n.iceTCP != nil {
		r.Add("ice_tcp", n.iceTCP.Addr().String())
	}
	if n.cl != nil {
		r.Add("cluster_node", n.cl.c.Name(), "cluster_rpc", n.cl.c.RPCAddr(), "cluster_raft", n.cl.c.RaftAddr())
	}
	// Straight to the handler: the level filter does not apply to this line.
	_ = n.log.Handler().Handle(context.Background(), r)
}

// SignalingAddr is the bound signaling address.
func (n *Node) SignalingAddr() netip.AddrPort { return addrPort(n.sigLn.Addr()) }

// APIAddr is the bound API address.
func (n *Node) APIAddr() netip.AddrPort { return addrPort(n.apiLn.Addr()) }

// MediaAddr is the bound media address: ipv4_address and the bound UDP
// port (what a relay in front of the node forwards to).
func (n *Node) MediaAddr() netip.AddrPort { return n.media.Bound() }

// MediaCandidate is the address offered in ICE candidates: MediaAddr, or
// media_advertised_address.
func (n *Node) MediaCandidate() netip.AddrPort { return n.media.Candidate() }

// Media returns the node's media path.
func (n *Node) Media() *rtpcore.Engine { return n.media }

func addrPort(a net.Addr) netip.AddrPort {
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// Hub returns the node's signaling hub.
func (n *Node) Hub() *signal.Hub { return n.hub }

// StartDrain is the first step of a SIGTERM: from its return on the node
// refuses every new connection (block_new_connection as its health mode,
// which the operator cannot lift), and in a cluster placement skips it.
func (n *Node) StartDrain() {
	n.healthMu.Lock()
	if n.drain.reason != DrainShutdown {
		n.startDrainLocked(DrainShutdown, n.cfg.DrainTimeout)
	}
	n.drainHealth = mode.BlockNewConnection
	n.hub.SetHealthMode(mode.Stricter(n.clusterHealth, n.drainHealth), n.drainHealth.Blocking())
	n.healthMu.Unlock()
	if n.cl != nil {
		n.cl.operatorChanged() // placement skips a draining node
	}
}

// Drain is the first half of a SIGTERM: the node refuses every new
// connection (StartDrain) and waits until its sessions have ended or
// timeout passes. It reports whether the node drained.
func (n *Node) Drain(ctx context.Context, timeout time.Duration) bool {
	n.StartDrain()
	n.healthMu.Lock()
	n.drain.deadline = n.drain.started.Add(timeout) // this drain's own timeout
	n.healthMu.Unlock()
	n.log.Info("draining", "sessions", n.hub.Sessions(), "connections", n.hub.Connections(), "drain_timeout", config.FormatDuration(timeout))
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	drained := n.hub.WaitIdle(ctx)
	if drained {
		n.log.Info("drained: no sessions left")
	} else {
		n.log.Warn("drain timeout: closing live connections", "sessions", n.hub.Sessions(), "connections", n.hub.Connections())
	}
	return drained
}

// Close stops the node: listeners closed, live connections closed with 1001
// SERVER-SHUTDOWN, queued webhooks sent (bounded by ctx).
func (n *Node) Close(ctx context.Context) {
	n.closeOnce.Do(func() {
		n.sigSrv.Close()
		n.apiSrv.Close()
		n.hub.Close(ctx)
		if n.cl != nil {
			n.cl.close()
		}
		n.sessionQ.Close(ctx)
		n.eventQ.Close(ctx)
		n.auth.CloseIdleConnections()
		n.closeTURN()
		n.media.Close()
		n.serveWG.Wait()
		n.log.Info("hayate stopped")
	})
}

// setClusterHealth takes the cluster's health mode (docs/spec/cluster.md §3.5).
func (n *Node) setClusterHealth(m mode.Mode) {
	n.healthMu.Lock()
	defer n.healthMu.Unlock()
	n.clusterHealth = m
	n.hub.SetHealthMode(mode.Stricter(n.clusterHealth, n.drainHealth), n.drainHealth.Blocking())
}

// replicatedMode is the mode the cluster should place by for this node:
// the operator's, or block_new_connection while draining.
func (n *Node) replicatedMode() mode.Mode {
	n.healthMu.Lock()
	defer n.healthMu.Unlock()
	return mode.Stricter(n.word.Operator(), n.drainHealth)
}

func (n *Node) closeListeners() {
	if n.sigLn != nil {
		n.sigLn.Close()
	}
	if n.apiLn != nil {
		n.apiLn.Close()
	}
	n.closeTURN()
	if n.media != nil {
		n.media.Close()
	}
	if n.cl != nil {
		n.cl.close()
	}
}

// closeTURN stops the TURN server and ICE-TCP (before the media path their
// links feed).
func (n *Node) closeTURN() {
	if n.turn != nil {
		n.turn.Close()
	}
	if n.iceTCP != nil {
		n.iceTCP.Close()
	}
}

// TURN returns the built-in TURN server (nil with turn = false).
func (n *Node) TURN() *turn.Server { return n.turn }

// ICETCP returns the ICE-TCP server (nil without ice_tcp).
func (n *Node) ICETCP() *icetcp.Server { return n.iceTCP }
