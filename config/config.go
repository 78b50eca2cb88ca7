// Package config is Hayate's configuration: one struct, its defaults, a
// Sora-style `key = value` file and the same keys as command-line flags.
//
// The file format follows sora.conf (https://sora-doc.shiguredo.jp/SORA_CONF):
// one `key = value` per line, `#` starts a comment at the start of a line or
// after a space (`ab#c` is a value), a value may be double-quoted,
// durations carry a unit after an optional space (`500 ms`, `5 s`, `1 min`,
// `1 h`). Every key is also a flag (`--api_port=3100`); a flag overrides the
// file and the file overrides the built-in default.
package config

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/hayate-sfu/hayate/mode"
)

// Config holds every setting of a node. It is passed by value into the parts
// that need it; nothing reads configuration from package-level state.
type Config struct {
	// Listening.
	SignalingPort                int
	SignalingLoopbackAddressOnly bool
	APIPort                      int
	APILoopbackAddressOnly       bool
	APICORSOrigin                string
	MediaPort                    int
	IPv4Address                  netip.Addr
	// MediaAdvertisedAddress, when set, is the ICE candidate offered
	// instead of ipv4_address:media_port (1:1 NAT; a port of 0 keeps the
	// bound port).
	MediaAdvertisedAddress netip.AddrPort

	// Identity.
	Label    string
	NodeName string

	// Mode and drain.
	InitialMode  mode.Mode
	DrainTimeout time.Duration

	// Limits.
	MaxConnections            int
	MaxChannelConnections     int
	MaxPendingConnections     int
	SignalingHandshakeTimeout time.Duration

	// Security.
	APIToken string

	// Signaling.
	SignalingPingInterval      time.Duration
	SignalingPongTimeout       time.Duration
	MaxSignalingMessageBytes   int
	ConnectTimeout             time.Duration
	AnswerTimeout              time.Duration
	SignalingNotify            bool
	SignalingBundleID          bool
	SignalingNotifyMetadataExt bool
	DefaultVideoCodecType      string
	DefaultAudioCodecType      string

	// Webhooks.
	AuthWebhookURL               string
	SessionWebhookURL            string
	EventWebhookURL              string
	WebhookResponseTimeout       time.Duration
	WebhookWorkers               int
	WebhookQueueSize             int
	WebhookRetries               int
	WebhookRetryInterval         time.Duration
	IgnoreSessionVanishedWebhook bool
	SessionIdleTimeout           time.Duration

	// DataChannels.
	DataChannelSignaling             bool
	IgnoreDisconnectWebSocket        bool
	DataChannelRPC                   bool
	DataChannelSignalingCloseMessage bool
	DataChannelMaxMessageSize        int
	DataChannelMessagesPerSecond     int
	DataChannelQueueBytes            int

	// RTC stats (Sora's websocket_stats_timer_interval; the other two
	// are Hayate's).
	WebSocketStatsTimerInterval   time.Duration
	DataChannelStatsTimerInterval time.Duration
	RTCStatsMaxBytes              int

	// Media.
	MediaBackend                    string
	MediaSockets                    int
	SimulcastAdaptation             bool
	ICEConnectionStateFailedTimeout time.Duration

	// TURN (Sora's keys, https://sora-doc.shiguredo.jp/TURN, and Hayate's
	// turn_udp_*, turn_tls_listen_port, turn_tls_*_file, turn_relay_* and
	// turn_*_timeout keys), the offer's iceTransportPolicy, ICE-TCP.
	TURN                            bool
	TURNRealm                       string
	TURNFQDN                        string
	TURNUDPListenPort               int
	TURNUDPPort                     int
	TURNTCP                         bool
	TURNTCPListenPort               int
	TURNTCPPort                     int
	TURNTLS                         bool
	TURNTLSFQDN                     string
	TURNTLSPort                     int
	TURNTLSListenPort               int
	TURNTLSCertFile                 string
	TURNTLSKeyFile                  string
	TURNRelayInProcess              bool
	TURNMaxAllocationsPerConnection int
	TURNAllocationIdleTimeout       time.Duration
	TURNMaxTCPConnections           int
	TURNExternalURLs                string
	TURNExternalSecret              string
	TURNExternalTTL                 time.Duration
	ICETransportPolicy              string
	ICETCP                          bool
	ICETCPPort                      int

	// Cluster (docs/spec/cluster.md §3).
	Cluster                  bool
	ClusterNodeName          string
	ClusterAddress           netip.Addr // zero: IPv4Address
	ClusterPort              int
	ClusterRaftPort          int
	ClusterSignalingURL      string
	ClusterAPIURL            string
	ClusterTemporaryNode     bool
	ClusterDataDir           string
	ClusterHeartbeatInterval time.Duration
	ClusterLeaseTTL          time.Duration
	ClusterLeaseGrace        time.Duration
	ClusterTLSCAFile         string
	ClusterTLSCertFile       string
	ClusterTLSKeyFile        string

	// Logging and debugging.
	LogLevel   string
	DebugPprof bool
	LogFormat  string // text or json
}

// Default returns the built-in defaults: a node serving on loopback, usable
// with no config file at all.
func Default() Config {
	return Config{
		SignalingPort:                    5000,
		SignalingLoopbackAddressOnly:     true,
		APIPort:                          3000,
		APILoopbackAddressOnly:           true,
		MediaPort:                        50000,
		IPv4Address:                      netip.AddrFrom4([4]byte{127, 0, 0, 1}),
		Label:                            "Hayate",
		InitialMode:                      mode.Normal,
		DrainTimeout:                     5 * time.Minute,
		MaxConnections:                   10000,
		MaxPendingConnections:            1000,
		SignalingHandshakeTimeout:        10 * time.Second,
		SignalingPingInterval:            5 * time.Second,
		SignalingPongTimeout:             15 * time.Second,
		MaxSignalingMessageBytes:         1 << 20,
		ConnectTimeout:                   10 * time.Second,
		AnswerTimeout:                    30 * time.Second,
		SignalingNotify:                  true,
		DefaultVideoCodecType:            "VP9",
		DefaultAudioCodecType:            "OPUS",
		WebhookResponseTimeout:           5 * time.Second,
		WebhookWorkers:                   5,
		WebhookQueueSize:                 1024,
		WebhookRetryInterval:             time.Second,
		IgnoreSessionVanishedWebhook:     true,
		DataChannelSignalingCloseMessage: true,
		DataChannelMaxMessageSize:        65536,
		DataChannelMessagesPerSecond:     1000,
		DataChannelQueueBytes:            1 << 20,
		WebSocketStatsTimerInterval:      time.Minute,
		DataChannelStatsTimerInterval:    time.Minute,
		RTCStatsMaxBytes:                 256 << 10,
		MediaBackend:                     "auto",
		MediaSockets:                     runtime.GOMAXPROCS(0),
		SimulcastAdaptation:              true,
		ICEConnectionStateFailedTimeout:  10 * time.Second,
		TURN:                             true,
		TURNRealm:                        "hayate",
		TURNUDPListenPort:                3478,
		TURNTCP:                          true,
		TURNTCPListenPort:                3478,
		TURNTLSListenPort:                5349,
		TURNRelayInProcess:               true,
		TURNMaxAllocationsPerConnection:  8,
		TURNAllocationIdleTimeout:        30 * time.Second,
		TURNMaxTCPConnections:            10000,
		TURNExternalTTL:                  24 * time.Hour,
		ICETransportPolicy:               "all",
		ICETCPPort:                       50000,
		ClusterPort:                      5690,
		ClusterRaftPort:                  5691,
		ClusterDataDir:                   "cluster-data",
		ClusterHeartbeatInterval:         time.Second,
		ClusterLeaseTTL:                  5 * time.Second,
		ClusterLeaseGrace:                2 * time.Second,
		LogLevel:                         "info",
		LogFormat:                        "text",
	}
}

// Key describes one configuration key for documentation.
type Key struct {
	Name    string
	Default string
	Doc     string
}

type key struct {
	name string
	doc  string
	set  func(string) error
	get  func() string
}

// keys is the one table of every key: its name, what it means and how it is
// parsed. The README's table and the flags are built from it.
func (c *Config) keys() []key {
	return []key{
		intKey("signaling_port", "TCP port of the WebSocket signaling endpoint /signaling; 0 picks a free port", &c.SignalingPort),
		boolKey("signaling_loopback_address_only", "serve signaling on 127.0.0.1 only (put a TLS proxy in front); false listens on every address", &c.SignalingLoopbackAddressOnly),
		intKey("api_port", "TCP port of the HTTP API (POST / with x-sora-target); 0 picks a free port", &c.APIPort),
		boolKey("api_loopback_address_only", "serve the HTTP API on 127.0.0.1 only, as Sora recommends", &c.APILoopbackAddressOnly),
		stringKey("api_cors_origin", "value of access-control-allow-origin on API responses; empty sends none", &c.APICORSOrigin),
		intKey("media_port", "UDP port for all media (ICE, DTLS, SRTP); 0 picks a free port", &c.MediaPort),
		addrKey("ipv4_address", "IPv4 address advertised in the ICE host candidate and bound for media", &c.IPv4Address),
		addrPortKey("media_advertised_address", "address (and optionally :port) offered in the ICE candidate instead of ipv4_address:media_port; for 1:1 NAT (a cloud machine with a private address and a public one), the public IPv4 address; empty: ipv4_address", &c.MediaAdvertisedAddress),
		stringKey("label", "label field of every webhook", &c.Label),
		stringKey("node_name", "node_name field of webhooks; empty means hayate@<ipv4_address>", &c.NodeName),
		modeKey("initial_mode", "mode at start: normal, block_new_session or block_new_connection", &c.InitialMode),
		durationKey("drain_timeout", "on SIGTERM, how long to wait for live sessions to end before closing them and exiting", &c.DrainTimeout),
		intKey("max_connections", "most connections admitted on the node at once; more are refused with 4429 MAX-CONNECTIONS (0: no limit)", &c.MaxConnections),
		intKey("max_channel_connections", "most connections in one channel; more are refused with 4429 MAX-CHANNEL-CONNECTIONS (0: no limit)", &c.MaxChannelConnections),
		intKey("max_pending_connections", "most WebSockets open but not yet admitted (waiting for connect or the auth webhook); more are closed at once with 4429 TOO-MANY-PENDING-CONNECTIONS", &c.MaxPendingConnections),
		durationKey("signaling_handshake_timeout", "time a new TCP connection has to send its WebSocket upgrade request before it is dropped", &c.SignalingHandshakeTimeout),
		stringKey("api_token", "if set, the HTTP API requires Authorization: Bearer <api_token> (401 UNAUTHORIZED otherwise); for deployments that expose the API beyond loopback", &c.APIToken),
		durationKey("signaling_ping_interval", "interval between signaling ping messages", &c.SignalingPingInterval),
		durationKey("signaling_pong_timeout", "close a connection (4408 PONG-TIMEOUT) when no pong arrives for this long", &c.SignalingPongTimeout),
		intKey("max_signaling_message_bytes", "largest signaling message accepted; larger ones close with 4400 MESSAGE-TOO-LARGE", &c.MaxSignalingMessageBytes),
		durationKey("connect_timeout", "time a new WebSocket has to send connect (4408 CONNECT-TIMEOUT)", &c.ConnectTimeout),
		durationKey("answer_timeout", "time an admitted connection has to send its answer (4408 ANSWER-TIMEOUT)", &c.AnswerTimeout),
		boolKey("signaling_notify", "send notify messages (connection.created, connection.destroyed) to clients", &c.SignalingNotify),
		boolKey("signaling_bundle_id", "accept bundle_id in connect (the auth webhook may always set it)", &c.SignalingBundleID),
		boolKey("signaling_notify_metadata_ext", "notifies carry the signaling notify metadata extension's object as metadata, and signaling_notify_metadata only as authn_metadata / authz_metadata (Sora's key; the extension's API and RPC work either way)", &c.SignalingNotifyMetadataExt),
		stringKey("default_video_codec_type", "video codec when connect names none: VP8, VP9, AV1, H264 or H265", &c.DefaultVideoCodecType),
		stringKey("default_audio_codec_type", "audio codec when connect names none: OPUS", &c.DefaultAudioCodecType),
		stringKey("auth_webhook_url", "URL called for every connect; empty admits everyone", &c.AuthWebhookURL),
		stringKey("session_webhook_url", "URL for session.created, session.destroyed and session.vanished; empty sends none", &c.SessionWebhookURL),
		stringKey("event_webhook_url", "URL for connection.created, .updated, .destroyed and .failed; empty sends none", &c.EventWebhookURL),
		durationKey("webhook_response_timeout", "time a webhook receiver has to answer", &c.WebhookResponseTimeout),
		intKey("webhook_workers", "senders per session/event webhook queue", &c.WebhookWorkers),
		intKey("webhook_queue_size", "events queued per webhook before new ones are dropped and counted", &c.WebhookQueueSize),
		intKey("webhook_retries", "times a failed session or event webhook is sent again (same id; later events of its channel or connection wait); 0 drops it, as Sora's counters suggest it does", &c.WebhookRetries),
		durationKey("webhook_retry_interval", "wait before the first retry of a failed webhook, doubled for each further one", &c.WebhookRetryInterval),
		durationKey("session_idle_timeout", "how long a session lives on after its last connection left; a connect within it joins the same session, even under block_new_session (0: the session ends at once; Sora's period is undocumented, the key is Hayate's)", &c.SessionIdleTimeout),
		boolKey("ignore_session_vanished_webhook", "do not send session.vanished (Sora's default is true)", &c.IgnoreSessionVanishedWebhook),
		boolKey("data_channel_signaling", "DataChannel signaling for a connect that does not say (data_channel_signaling in connect and the auth webhook's payout win)", &c.DataChannelSignaling),
		boolKey("ignore_disconnect_websocket", "for a connect that does not say: after switched, the connection outlives its WebSocket", &c.IgnoreDisconnectWebSocket),
		boolKey("data_channel_rpc", "open the rpc DataChannel (JSON-RPC 2.0: the methods the offer's rpc_methods lists; others answer -32601)", &c.DataChannelRPC),
		boolKey("data_channel_signaling_close_message", "tell a connection without WebSocket why it is closed: {\"type\":\"close\",\"code\",\"reason\"} on the signaling DataChannel", &c.DataChannelSignalingCloseMessage),
		intKey("data_channel_max_message_size", "largest DataChannel message accepted (the offer's a=max-message-size); larger ones are dropped and counted", &c.DataChannelMaxMessageSize),
		intKey("data_channel_messages_per_second", "DataChannel messages one connection may send a second (burst of as many); more are dropped and counted (0: no limit)", &c.DataChannelMessagesPerSecond),
		durationKey("websocket_stats_timer_interval", "how often a client signaling on its WebSocket is asked for its getStats() report ({\"type\":\"ping\",\"stats\":true}); the RTC stats API answers the latest (Sora's key and default; 0: never)", &c.WebSocketStatsTimerInterval),
		durationKey("data_channel_stats_timer_interval", "how often a client that switched to DataChannel signaling is asked for its getStats() report ({\"type\":\"req-stats\"} on the stats DataChannel; 0: never; Sora's docs name no key for it, the name is Hayate's)", &c.DataChannelStatsTimerInterval),
		intKey("rtc_stats_max_bytes", "largest getStats() report kept per connection; a larger one (or one that is not a JSON array of objects) is dropped and counted, the connection goes on", &c.RTCStatsMaxBytes),
		intKey("data_channel_queue_bytes", "DataChannel bytes queued to one connection and not yet acknowledged; a receiver that lets more pile up is closed with 4429 DATA-CHANNEL-QUEUE-FULL", &c.DataChannelQueueBytes),
		stringKey("media_backend", "socket backend: auto (io_uring where the kernel allows it, else epoll), io_uring, or epoll (recvmmsg/sendmmsg through the Go netpoller)", &c.MediaBackend),
		intKey("media_sockets", "SO_REUSEPORT sockets on media_port, each read by one goroutine; default GOMAXPROCS", &c.MediaSockets),
		boolKey("simulcast_adaptation", "choose each viewer's simulcast layer within its cap from its bandwidth estimate (transport-cc); false gives every viewer its cap's layer whatever its link, as Sora does", &c.SimulcastAdaptation),
		durationKey("ice_connection_state_failed_timeout", "close a connection (4408 ICE-CONNECTION-STATE-FAILED) whose peer sent nothing for this long, or whose ICE and DTLS are not up this long after its answer", &c.ICEConnectionStateFailedTimeout),
		boolKey("turn", "serve the built-in TURN server and hand each connection its TURN URLs and credentials in the offer (Sora's default: on)", &c.TURN),
		stringKey("turn_realm", "TURN realm", &c.TURNRealm),
		stringKey("turn_fqdn", "host name (no trailing dot) in the TURN URLs handed out; empty: ipv4_address", &c.TURNFQDN),
		intKey("turn_udp_listen_port", "UDP port of TURN over UDP; 0 picks a free port", &c.TURNUDPListenPort),
		intKey("turn_udp_port", "port in the TURN-UDP URL handed out; 0: the port TURN-UDP listens on", &c.TURNUDPPort),
		boolKey("turn_tcp", "serve TURN over TCP (Sora's default: on)", &c.TURNTCP),
		intKey("turn_tcp_listen_port", "TCP port of TURN over TCP; 0 picks a free port", &c.TURNTCPListenPort),
		intKey("turn_tcp_port", "port in the TURN-TCP URL handed out; 0: the port TURN-TCP listens on", &c.TURNTCPPort),
		boolKey("turn_tls", "hand out a turns: URL (TURN over TLS); served on turn_tls_listen_port when turn_tls_cert_file and turn_tls_key_file are set, else by a TLS proxy in front of turn_tcp_listen_port, as Sora's", &c.TURNTLS),
		stringKey("turn_tls_fqdn", "host name in the turns: URL, matching the certificate; empty: turn_fqdn", &c.TURNTLSFQDN),
		intKey("turn_tls_port", "port in the turns: URL; 0: turn_tls_listen_port (or the port bound for it)", &c.TURNTLSPort),
		intKey("turn_tls_listen_port", "TCP port of the built-in TURN over TLS; 0 picks a free port", &c.TURNTLSListenPort),
		stringKey("turn_tls_cert_file", "PEM certificate chain of the built-in TURN over TLS (read at start)", &c.TURNTLSCertFile),
		stringKey("turn_tls_key_file", "PEM private key of turn_tls_cert_file", &c.TURNTLSKeyFile),
		boolKey("turn_relay_in_process", "relay between TURN allocations and the media core in process; false gives each allocation a UDP socket that reaches the media port through the kernel (for comparison)", &c.TURNRelayInProcess),
		intKey("turn_max_allocations_per_connection", "TURN allocations one connection may hold; more are refused with 486", &c.TURNMaxAllocationsPerConnection),
		durationKey("turn_allocation_idle_timeout", "close a TURN allocation nothing was relayed through for this long, and a TURN-TCP/TLS connection that sent nothing for this long", &c.TURNAllocationIdleTimeout),
		intKey("turn_max_tcp_connections", "TURN-TCP and TURN-TLS connections open at once, and as many ICE-TCP connections; more are closed at accept", &c.TURNMaxTCPConnections),
		stringKey("turn_external_urls", "comma-separated URLs of an external TURN server (coturn) handed out as one more iceServers entry", &c.TURNExternalURLs),
		stringKey("turn_external_secret", "shared secret of the external TURN server (coturn static-auth-secret): each connection gets credentials made with it (TURN REST API)", &c.TURNExternalSecret),
		durationKey("turn_external_ttl", "lifetime of the external TURN server's credentials", &c.TURNExternalTTL),
		stringKey("ice_transport_policy", "the offer's config.iceTransportPolicy: all, or relay (clients then use TURN only)", &c.ICETransportPolicy),
		boolKey("ice_tcp", "offer a passive ICE-TCP candidate (RFC 6544) on ice_tcp_port, for clients that cannot use UDP (not in Sora)", &c.ICETCP),
		intKey("ice_tcp_port", "TCP port of ICE-TCP; 0 picks a free port", &c.ICETCPPort),
		boolKey("cluster", "run as a node of a cluster: channels owned by one node each, on embedded raft (see README, Cluster)", &c.Cluster),
		stringKey("cluster_node_name", "the node's name in the cluster, unique and stable across restarts; empty: hayate@<cluster_address>:<cluster_port>", &c.ClusterNodeName),
		addrKey("cluster_address", "address the cluster listeners bind and advertise; empty: ipv4_address", &c.ClusterAddress),
		intKey("cluster_port", "TCP port of the cluster RPC between nodes (claims, joins); 0 picks a free port (then set cluster_node_name)", &c.ClusterPort),
		intKey("cluster_raft_port", "TCP port of the raft transport; 0 picks a free port", &c.ClusterRaftPort),
		stringKey("cluster_signaling_url", "signaling URL other nodes redirect clients to; empty: ws://<ipv4_address>:<signaling port>/signaling", &c.ClusterSignalingURL),
		stringKey("cluster_api_url", "this node's API URL in ListClusterNodes; empty: http://<API address>:<api port>/", &c.ClusterAPIURL),
		boolKey("cluster_temporary_node", "join as a temporary node: a raft non-voter with in-memory state, removed from the cluster when it stops", &c.ClusterTemporaryNode),
		stringKey("cluster_data_dir", "directory of a regular node's raft log and snapshots; must survive restarts", &c.ClusterDataDir),
		durationKey("cluster_heartbeat_interval", "how often the node renews its lease", &c.ClusterHeartbeatInterval),
		durationKey("cluster_lease_ttl", "lease length: a node that renews nothing for this long stops serving its channels", &c.ClusterLeaseTTL),
		durationKey("cluster_lease_grace", "extra time before the leader gives a silent node's channels to others (covers clock-rate drift and pauses)", &c.ClusterLeaseGrace),
		stringKey("cluster_tls_ca_file", "PEM file of the cluster CA certificates (one, or old and new during a rotation): both cluster listeners then speak mutual TLS 1.3 and accept only peers whose certificate chains to them; required when cluster_address is not loopback", &c.ClusterTLSCAFile),
		stringKey("cluster_tls_cert_file", "PEM file of this node's cluster certificate, whose Common Name is cluster_node_name (make one with hayate cluster-cert)", &c.ClusterTLSCertFile),
		stringKey("cluster_tls_key_file", "PEM file of the private key of cluster_tls_cert_file; the three files are read again when they change", &c.ClusterTLSKeyFile),
		stringKey("log_level", "debug, info, warn or error", &c.LogLevel),
		boolKey("debug_pprof", "serve Go's pprof profiles at /debug/pprof/ on the API port (keep the API on loopback)", &c.DebugPprof),
		stringKey("log_format", "text (logfmt, one line per record) or json (one JSON object per line, for log collectors)", &c.LogFormat),
	}
}

// Keys documents every configuration key with its default value.
func Keys() []Key {
	c := Default()
	var out []Key
	for _, k := range c.keys() {
		out = append(out, Key{Name: k.name, Default: k.get(), Doc: k.doc})
	}
	return out
}

// Load builds the configuration from defaults, an optional file and
// command-line arguments. args excludes the program name. It returns the
// arguments left after the flags.
func Load(args []string, stderr io.Writer) (Config, []string, error) {
	c := Default()
	fs := flag.NewFlagSet("hayate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "Sora-style `key = value` configuration file")
	set := map[string]string{}
	var order []string
	for _, k := range c.keys() {
		fs.Func(k.name, k.doc+" (default "+k.get()+")", func(v string) error {
			if _, dup := set[k.name]; !dup {
				order = append(order, k.name)
			}
			set[k.name] = v
			return nil
		})
	}
	if err := fs.Parse(args); err != nil {
		return c, nil, err
	}
	if *configPath != "" {
		f, err := os.Open(*configPath)
		if err != nil {
			return c, nil, fmt.Errorf("config: %w", err)
		}
		err = c.ReadConf(f, *configPath)
		f.Close()
		if err != nil {
			return c, nil, err
		}
	}
	for _, name := range order {
		if err := c.Set(name, set[name]); err != nil {
			return c, nil, fmt.Errorf("config: flag --%s: %w", name, err)
		}
	}
	if err := c.Validate(); err != nil {
		return c, nil, err
	}
	return c, fs.Args(), nil
}

// Set assigns one key from its text form.
func (c *Config) Set(name, value string) error {
	for _, k := range c.keys() {
		if k.name == name {
			return k.set(strings.TrimSpace(value))
		}
	}
	return fmt.Errorf("%w %q", ErrUnknownKey, name)
}

// ReadConf applies a Sora-style configuration file; name is used in errors.
func (c *Config) ReadConf(r io.Reader, name string) error {
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" || text[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(text, "=")
		if !ok {
			return fmt.Errorf("config: %s:%d: %w", name, line, ErrSyntax)
		}
		v, err := confValue(v)
		if err != nil {
			return fmt.Errorf("config: %s:%d: %s: %w", name, line, strings.TrimSpace(k), err)
		}
		if err := c.Set(strings.TrimSpace(k), v); err != nil {
			return fmt.Errorf("config: %s:%d: %s: %w", name, line, strings.TrimSpace(k), err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("config: %s: %w", name, err)
	}
	return nil
}

// confValue reads the value part of a `key = value` line. A `#` starts a
// comment only at the start of a line or after a space or tab, so
// `api_token = ab#c` is "ab#c"; a value in double quotes is taken as it
// is, `#` and spaces included, with \" and \\ for a quote and a backslash
// (`api_token = "a #b"`).
func confValue(v string) (string, error) {
	v = strings.TrimLeft(v, " \t")
	if strings.HasPrefix(v, `"`) {
		var b strings.Builder
		for i := 1; i < len(v); i++ {
			switch c := v[i]; {
			case c == '\\' && i+1 < len(v) && (v[i+1] == '"' || v[i+1] == '\\'):
				i++
				b.WriteByte(v[i])
			case c == '"':
				rest := strings.TrimLeft(v[i+1:], " \t")
				if rest != "" && rest[0] != '#' {
					return "", fmt.Errorf("%w: text after the closing quote", ErrSyntax)
				}
				return b.String(), nil
			default:
				b.WriteByte(c)
			}
		}
		return "", fmt.Errorf("%w: no closing quote", ErrSyntax)
	}
	for i := 0; i < len(v); i++ {
		if v[i] == '#' && (i == 0 || v[i-1] == ' ' || v[i-1] == '\t') {
			v = v[:i]
			break
		}
	}
	return strings.TrimSpace(v), nil
}

// Validate checks values that parse but make no sense together.
func (c *Config) Validate() error {
	for _, p := range []struct {
		name string
		v    int
	}{{"signaling_port", c.SignalingPort}, {"api_port", c.APIPort}, {"media_port", c.MediaPort},
		{"turn_udp_listen_port", c.TURNUDPListenPort}, {"turn_udp_port", c.TURNUDPPort},
		{"turn_tcp_listen_port", c.TURNTCPListenPort}, {"turn_tcp_port", c.TURNTCPPort},
		{"turn_tls_listen_port", c.TURNTLSListenPort}, {"turn_tls_port", c.TURNTLSPort}, {"ice_tcp_port", c.ICETCPPort}} {
		if p.v < 0 || p.v > 65535 {
			return fmt.Errorf("config: %s = %d: %w", p.name, p.v, ErrOutOfRange)
		}
	}
	if !c.IPv4Address.Is4() {
		return fmt.Errorf("config: ipv4_address %v: %w", c.IPv4Address, ErrOutOfRange)
	}
	if c.MediaAdvertisedAddress.IsValid() && !c.MediaAdvertisedAddress.Addr().Is4() {
		return fmt.Errorf("config: media_advertised_address %v: %w", c.MediaAdvertisedAddress, ErrOutOfRange)
	}
	if c.MaxSignalingMessageBytes < 4096 {
		return fmt.Errorf("config: max_signaling_message_bytes must be at least 4096: %w", ErrOutOfRange)
	}
	if c.Cluster {
		if err := c.validateCluster(); err != nil {
			return err
		}
	}
	if c.MaxConnections < 0 || c.MaxChannelConnections < 0 || c.MaxPendingConnections < 1 {
		return fmt.Errorf("config: max_connections and max_channel_connections must be 0 or more, max_pending_connections at least 1: %w", ErrOutOfRange)
	}
	if c.DataChannelMaxMessageSize < 1024 || c.DataChannelMaxMessageSize > 1<<24 || c.DataChannelMessagesPerSecond < 0 ||
		c.DataChannelQueueBytes < c.DataChannelMaxMessageSize {
		return fmt.Errorf("config: data_channel_max_message_size must be 1024 to 16777216, data_channel_queue_bytes at least that, data_channel_messages_per_second 0 or more: %w", ErrOutOfRange)
	}
	if c.WebSocketStatsTimerInterval < 0 || c.DataChannelStatsTimerInterval < 0 || c.RTCStatsMaxBytes < 1024 || c.RTCStatsMaxBytes > 1<<24 {
		return fmt.Errorf("config: websocket_stats_timer_interval and data_channel_stats_timer_interval must be 0 or more, rtc_stats_max_bytes 1024 to 16777216: %w", ErrOutOfRange)
	}
	if c.WebhookRetries < 0 || c.WebhookRetries > 10 || c.WebhookRetryInterval <= 0 {
		return fmt.Errorf("config: webhook_retries must be 0 to 10 and webhook_retry_interval positive: %w", ErrOutOfRange)
	}
	if c.WebhookWorkers < 1 || c.WebhookQueueSize < 1 || c.MediaSockets < 1 {
		return fmt.Errorf("config: webhook_workers, webhook_queue_size and media_sockets must be at least 1: %w", ErrOutOfRange)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"signaling_ping_interval", c.SignalingPingInterval}, {"signaling_pong_timeout", c.SignalingPongTimeout},
		{"connect_timeout", c.ConnectTimeout}, {"answer_timeout", c.AnswerTimeout},
		{"webhook_response_timeout", c.WebhookResponseTimeout},
		{"ice_connection_state_failed_timeout", c.ICEConnectionStateFailedTimeout},
		{"signaling_handshake_timeout", c.SignalingHandshakeTimeout},
	} {
		if d.v <= 0 {
			return fmt.Errorf("config: %s must be positive: %w", d.name, ErrOutOfRange)
		}
	}
	if err := c.validateTURN(); err != nil {
		return err
	}
	if c.DrainTimeout < 0 {
		return fmt.Errorf("config: drain_timeout must not be negative: %w", ErrOutOfRange)
	}
	for _, u := range []struct{ name, v string }{
		{"auth_webhook_url", c.AuthWebhookURL}, {"session_webhook_url", c.SessionWebhookURL}, {"event_webhook_url", c.EventWebhookURL},
	} {
		if u.v == "" {
			continue
		}
		p, err := url.Parse(u.v)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
			return fmt.Errorf("config: %s %q: %w", u.name, u.v, ErrBadURL)
		}
	}
	switch strings.ToUpper(c.DefaultVideoCodecType) {
	case "VP8", "VP9", "AV1", "H264", "H265":
	default:
		return fmt.Errorf("config: default_video_codec_type %q: %w", c.DefaultVideoCodecType, ErrOutOfRange)
	}
	if strings.ToUpper(c.DefaultAudioCodecType) != "OPUS" {
		return fmt.Errorf("config: default_audio_codec_type %q: %w", c.DefaultAudioCodecType, ErrOutOfRange)
	}
	switch c.MediaBackend {
	case "auto", "epoll", "io_uring":
	default:
		return fmt.Errorf("config: media_backend %q (want auto, io_uring or epoll): %w", c.MediaBackend, ErrOutOfRange)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("config: log_level %q: %w", c.LogLevel, ErrOutOfRange)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("config: log_format %q (want text or json): %w", c.LogFormat, ErrOutOfRange)
	}
	return nil
}

// EffectiveNodeName is node_name, or hayate@<ipv4_address> when unset.
func (c *Config) validateCluster() error {
	for _, p := range []struct {
		name string
		v    int
	}{{"cluster_port", c.ClusterPort}, {"cluster_raft_port", c.ClusterRaftPort}} {
		if p.v < 0 || p.v > 65535 {
			return fmt.Errorf("config: %s = %d: %w", p.name, p.v, ErrOutOfRange)
		}
	}
	if c.ClusterPort == 0 && c.ClusterNodeName == "" {
		return fmt.Errorf("config: cluster_port = 0 needs a cluster_node_name: %w", ErrOutOfRange)
	}
	if c.ClusterAddress.IsValid() && !c.ClusterAddress.Is4() {
		return fmt.Errorf("config: cluster_address %v: %w", c.ClusterAddress, ErrOutOfRange)
	}
	if !c.ClusterTemporaryNode && c.ClusterDataDir == "" {
		return fmt.Errorf("config: a regular cluster node needs cluster_data_dir: %w", ErrOutOfRange)
	}
	if c.ClusterHeartbeatInterval <= 0 || c.ClusterLeaseTTL <= 2*c.ClusterHeartbeatInterval || c.ClusterLeaseGrace <= 0 {
		return fmt.Errorf("config: cluster_lease_ttl must exceed twice cluster_heartbeat_interval, and both and cluster_lease_grace be positive: %w", ErrOutOfRange)
	}
	set := 0
	for _, f := range []string{c.ClusterTLSCAFile, c.ClusterTLSCertFile, c.ClusterTLSKeyFile} {
		if f != "" {
			set++
		}
	}
	switch {
	case set != 0 && set != 3:
		return fmt.Errorf("config: set all of cluster_tls_ca_file, cluster_tls_cert_file and cluster_tls_key_file, or none: %w", ErrInsecure)
	case set == 0 && !c.ClusterAddr().IsLoopback():
		// Safe by default: raft and the cluster RPC steer the whole cluster.
		return fmt.Errorf("config: the cluster listens on %v, beyond loopback, without credentials: set cluster_tls_ca_file, "+
			"cluster_tls_cert_file and cluster_tls_key_file (hayate cluster-cert makes them), or cluster_address = 127.0.0.1: %w",
			c.ClusterAddr(), ErrInsecure)
	}
	return nil
}

// validateTURN checks the TURN keys.
func (c *Config) validateTURN() error {
	if c.ICETransportPolicy != "all" && c.ICETransportPolicy != "relay" {
		return fmt.Errorf("config: ice_transport_policy %q (want all or relay): %w", c.ICETransportPolicy, ErrOutOfRange)
	}
	if (c.TURNTLSCertFile == "") != (c.TURNTLSKeyFile == "") {
		return fmt.Errorf("config: set both turn_tls_cert_file and turn_tls_key_file, or neither: %w", ErrOutOfRange)
	}
	if c.TURNMaxAllocationsPerConnection < 1 || c.TURNMaxTCPConnections < 1 || c.TURNAllocationIdleTimeout <= 0 || c.TURNExternalTTL <= 0 {
		return fmt.Errorf("config: turn_max_allocations_per_connection and turn_max_tcp_connections must be at least 1, "+
			"turn_allocation_idle_timeout and turn_external_ttl positive: %w", ErrOutOfRange)
	}
	for _, u := range c.ExternalTURNURLs() {
		if !strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") && !strings.HasPrefix(u, "stun:") {
			return fmt.Errorf("config: turn_external_urls %q (want turn:, turns: or stun: URLs): %w", u, ErrBadURL)
		}
	}
	return nil
}

// ExternalTURNURLs are the URLs of turn_external_urls.
func (c *Config) ExternalTURNURLs() []string {
	var out []string
	for _, u := range strings.Split(c.TURNExternalURLs, ",") {
		if u = strings.TrimSpace(u); u != "" {
			out = append(out, u)
		}
	}
	return out
}

// ClusterTLS reports whether the cluster credentials are configured.
func (c *Config) ClusterTLS() bool { return c.ClusterTLSCAFile != "" }

// ClusterAddr is the address the cluster listeners use.
func (c *Config) ClusterAddr() netip.Addr {
	if c.ClusterAddress.IsValid() {
		return c.ClusterAddress
	}
	return c.IPv4Address
}

// EffectiveClusterNodeName is cluster_node_name, or hayate@<address>:<port>
// (Sora's name@host style, with the RPC port other nodes reach it on).
func (c *Config) EffectiveClusterNodeName() string {
	if c.ClusterNodeName != "" {
		return c.ClusterNodeName
	}
	return "hayate@" + netip.AddrPortFrom(c.ClusterAddr(), uint16(c.ClusterPort)).String()
}

func (c *Config) EffectiveNodeName() string {
	if c.NodeName != "" {
		return c.NodeName
	}
	return "hayate@" + c.IPv4Address.String()
}

func intKey(name, doc string, p *int) key {
	return key{name: name, doc: doc,
		set: func(s string) error {
			v, err := strconv.Atoi(s)
			if err != nil {
				return fmt.Errorf("%w: %q is not an integer", ErrSyntax, s)
			}
			*p = v
			return nil
		},
		get: func() string { return strconv.Itoa(*p) }}
}

func boolKey(name, doc string, p *bool) key {
	return key{name: name, doc: doc,
		set: func(s string) error {
			switch s {
			case "true":
				*p = true
			case "false":
				*p = false
			default:
				return fmt.Errorf("%w: %q is not true or false", ErrSyntax, s)
			}
			return nil
		},
		get: func() string { return strconv.FormatBool(*p) }}
}

func stringKey(name, doc string, p *string) key {
	return key{name: name, doc: doc,
		set: func(s string) error { *p = s; return nil },
		get: func() string {
			if *p == "" {
				return `""`
			}
			return *p
		}}
}

func addrKey(name, doc string, p *netip.Addr) key {
	return key{name: name, doc: doc,
		set: func(s string) error {
			if s == "" {
				*p = netip.Addr{} // unset: the key's documented fallback
				return nil
			}
			a, err := netip.ParseAddr(s)
			if err != nil {
				return fmt.Errorf("%w: %q is not an IP address", ErrSyntax, s)
			}
			*p = a
			return nil
		},
		get: func() string {
			if !p.IsValid() {
				return ""
			}
			return p.String()
		}}
}

// addrPortKey reads an IP address with an optional :port (port 0 when
// absent).
func addrPortKey(name, doc string, p *netip.AddrPort) key {
	return key{name: name, doc: doc,
		set: func(s string) error {
			if s == "" {
				*p = netip.AddrPort{}
				return nil
			}
			if a, err := netip.ParseAddr(s); err == nil {
				*p = netip.AddrPortFrom(a, 0)
				return nil
			}
			ap, err := netip.ParseAddrPort(s)
			if err != nil {
				return fmt.Errorf("%w: %q is not an IP address or address:port", ErrSyntax, s)
			}
			*p = ap
			return nil
		},
		get: func() string {
			switch {
			case !p.IsValid():
				return ""
			case p.Port() == 0:
				return p.Addr().String()
			}
			return p.String()
		}}
}

func modeKey(name, doc string, p *mode.Mode) key {
	return key{name: name, doc: doc,
		set: func(s string) error {
			m, err := mode.Parse(s)
			if err != nil {
				return err
			}
			*p = m
			return nil
		},
		get: func() string { return p.String() }}
}

func durationKey(name, doc string, p *time.Duration) key {
	return key{name: name, doc: doc,
		set: func(s string) error {
			d, err := ParseDuration(s)
			if err != nil {
				return err
			}
			*p = d
			return nil
		},
		get: func() string { return FormatDuration(*p) }}
}

// ParseDuration reads a sora.conf duration: a non-negative integer and a unit
// (ms, s, min, h), with or without a space between them.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("%w: duration %q must start with a number", ErrSyntax, s)
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: duration %q", ErrSyntax, s)
	}
	var unit time.Duration
	switch strings.TrimSpace(s[i:]) {
	case "ms":
		unit = time.Millisecond
	case "s":
		unit = time.Second
	case "min", "m":
		unit = time.Minute
	case "h":
		unit = time.Hour
	default:
		return 0, fmt.Errorf("%w: duration %q needs a unit: ms, s, min or h", ErrSyntax, s)
	}
	if n > int64(1<<62)/int64(unit) {
		return 0, fmt.Errorf("%w: duration %q is too long", ErrOutOfRange, s)
	}
	return time.Duration(n) * unit, nil
}

// FormatDuration writes d in sora.conf form with the largest exact unit.
func FormatDuration(d time.Duration) string {
	switch {
	case d == 0:
		return "0 s"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + " h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + " min"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + " s"
	default:
		return strconv.FormatInt(int64(d/time.Millisecond), 10) + " ms"
	}
}
