package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/hashicorp/raft"

	"github.com/hayate-sfu/hayate/mode"
)

// Default timings (docs/spec/cluster.md §3.4: heartbeat H, lease TTL, expiry grace).
const (
	DefaultHeartbeat = 1 * time.Second
	DefaultLeaseTTL  = 5 * time.Second
	DefaultGrace     = 2 * time.Second
	defaultListen    = "127.0.0.1:0"
)

// Config configures one cluster node. Only NodeName is required, plus DataDir
// for a regular node; everything else has a loopback or spec default.
type Config struct {
	// NodeName is Sora's cluster_node_name, unique in the cluster and stable
	// across restarts of a regular node (it is the raft server ID). A name of
	// the form "name@host:port" also tells other nodes where this node's RPC
	// listener is (see doc.go, "Node names and addresses").
	NodeName string
	// RaftListen is the raft TCP transport's listen address ("127.0.0.1:0" by default).
	RaftListen string
	// RPCListen is the listen address of the small HTTP RPC between nodes
	// (claim forwarding, join, bootstrap); "127.0.0.1:0" by default.
	RPCListen string
	// AdvertiseRaft and AdvertiseRPC are the addresses other nodes use; by
	// default the listeners' own addresses.
	AdvertiseRaft, AdvertiseRPC string
	// DataDir holds a regular node's raft log, stable store (raft-boltdb) and
	// snapshots. Ignored for a temporary node.
	DataDir string
	// Temporary makes this node a raft non-voter with in-memory stores
	// (Sora's temporary node): it may own channels, does not count for
	// quorum and removes itself from the cluster on Close.
	Temporary bool
	// SignalingURL is this node's ws://host:port/signaling, sent to clients
	// redirected here. APIURL is reported by ListClusterNodes.
	SignalingURL, APIURL string
	// MaxConnections is the licence maximum; load = connections / MaxConnections
	// (Sora's placement rule). 0 counts as 1, so loads compare as plain counts.
	MaxConnections int
	// InitialMode is the operator mode this incarnation registers with.
	InitialMode mode.Mode
	// Peers optionally maps node names to RPC addresses, for InitCluster,
	// Join and Purge by name.
	Peers map[string]string
	// Heartbeat (H), LeaseTTL and Grace: docs/spec/cluster.md §3.4. Defaults 1 s, 5 s, 2 s.
	// LeaseTTL must exceed 2*Heartbeat.
	Heartbeat, LeaseTTL, Grace time.Duration
	// ReleaseLinger is how long Release waits for a new connection before it
	// gives the channel up (docs/spec/cluster.md §3.3 step 6). Default Heartbeat; negative: none.
	ReleaseLinger time.Duration
	// TLS, if set, makes both listeners mutual TLS 1.3 between holders of
	// certificates of one cluster CA (doc.go, "Security"); its certificate
	// must name NodeName. Without it, both listeners must be on loopback.
	TLS *Credentials
	// Log receives the node's log; raft's own chatter is logged at debug level.
	Log *slog.Logger

	hooks hooks
}

// hooks are test-only knobs; the zero value is production behaviour.
type hooks struct {
	// listen and dial replace net.Listen and net.Dialer for both the raft
	// transport and the RPC (a cuttable test network).
	listen func(addr string) (net.Listener, error)
	dial   func(ctx context.Context, addr string) (net.Conn, error)
	// transport replaces the raft TCP transport (raft.InmemTransport inside
	// synctest); rpcListener replaces the RPC listener.
	transport   raft.Transport
	rpcListener net.Listener
	// memStores uses raft's in-memory stores on a regular node too.
	memStores bool
	// applyDelay sleeps inside FSM.Apply before the state changes, so the
	// local FSM lags raft's own applied index (docs/spec/cluster.md §3.7 lesson).
	applyDelay time.Duration
	// raftConfig adjusts raft's config (snapshot thresholds in tests).
	raftConfig func(*raft.Config)
	// crash makes Close skip the goodbye (Remove or Expire of itself), as
	// if the process died.
	crash bool
	// purged, if not nil, is called when this node, as leader, has purged
	// a node; an error it returns replaces the success (an answer lost
	// after the purge took effect).
	purged func(name string) error
	// now replaces time.Now for lease and expiry arithmetic.
	now func() time.Time
	// serve observes the exact serving history: start=true when this node
	// begins to serve channel at time at, start=false when it stops.
	// Called with the node's lock held; must not call back into the Cluster.
	serve func(node, channel string, start bool, at time.Time)
}

func (cfg *Config) setDefaults() error {
	if !validName(cfg.NodeName) {
		return fmt.Errorf("%w: NodeName %q", ErrInvalidConfig, cfg.NodeName)
	}
	if cfg.RaftListen == "" {
		cfg.RaftListen = defaultListen
	}
	if cfg.RPCListen == "" {
		cfg.RPCListen = defaultListen
	}
	if err := cfg.checkSecurity(); err != nil {
		return err
	}
	if !cfg.Temporary && !cfg.hooks.memStores && cfg.DataDir == "" {
		return fmt.Errorf("%w: a regular node needs DataDir", ErrInvalidConfig)
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.LeaseTTL <= 2*cfg.Heartbeat {
		return fmt.Errorf("%w: LeaseTTL %v must exceed 2*Heartbeat %v", ErrInvalidConfig, cfg.LeaseTTL, cfg.Heartbeat)
	}
	if cfg.ReleaseLinger == 0 {
		cfg.ReleaseLinger = cfg.Heartbeat
	}
	if cfg.InitialMode > mode.BlockNewConnection {
		return fmt.Errorf("%w: InitialMode %d", ErrInvalidConfig, cfg.InitialMode)
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.hooks.now == nil {
		cfg.hooks.now = time.Now
	}
	return nil
}

// maxName is the longest node name (and channel ID) the cluster accepts.
const maxName = 255

// validName is the rule for node names: 1 to maxName bytes, no white
// space, no slash.
func validName(s string) bool {
	return s != "" && len(s) <= maxName && !strings.ContainsAny(s, " \t\r\n/")
}

// checkSecurity is "safe by default": without credentials both listeners
// must be on loopback; with them, the certificate must name this node.
func (cfg *Config) checkSecurity() error {
	if cfg.TLS != nil {
		if name := cfg.TLS.Name(); name != cfg.NodeName {
			return fmt.Errorf("%w: %w: the certificate names %q, the node is %q", ErrInvalidConfig, ErrBadCredentials, name, cfg.NodeName)
		}
		return nil
	}
	for _, l := range []struct {
		what, addr string
		used       bool
	}{
		{"raft", cfg.RaftListen, cfg.hooks.transport == nil},
		{"rpc", cfg.RPCListen, cfg.hooks.rpcListener == nil},
	} {
		if l.used && !loopbackOnly(l.addr) {
			return fmt.Errorf("%w: %w: the %s listener %s is not on loopback", ErrInvalidConfig, ErrNeedsCredentials, l.what, l.addr)
		}
	}
	return nil
}

// raftConfig derives raft's timings from the heartbeat: raft heartbeat and
// election timeouts 2H capped at raft's defaults (1 s), leader lease half of
// that, commit timeout H/5 capped at 50 ms. With H = 50 ms (tests) that is
// 100/100/50/10 ms, the prototype's values (docs/spec/cluster.md §3.7).
func (cfg *Config) raftConfig() *raft.Config {
	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeName)
	hb := min(2*cfg.Heartbeat, time.Second)
	rc.HeartbeatTimeout = hb
	rc.ElectionTimeout = hb
	rc.LeaderLeaseTimeout = hb / 2
	rc.CommitTimeout = max(min(cfg.Heartbeat/5, 50*time.Millisecond), time.Millisecond)
	rc.NoLegacyTelemetry = true
	// A leader that removes itself steps down rather than shutting raft down
	// from inside: teardown's Shutdown then waits for raft's goroutines
	// before the stores close (a raft that shut itself down cannot be waited
	// for, and one still running writes a closed store and panics).
	rc.ShutdownOnRemove = false
	return rc
}
