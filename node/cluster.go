package node

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hayate-sfu/hayate/cluster"
	"github.com/hayate-sfu/hayate/config"
	"github.com/hayate-sfu/hayate/control"
	"github.com/hayate-sfu/hayate/mode"
	"github.com/hayate-sfu/hayate/signal"
)

// clusterNode is the node's part of a cluster: it adapts cluster.Cluster
// to what signaling (signal.Router) and the API (control.Cluster) need,
// feeds the cluster's health mode and fencing into the hub, and replicates
// the operator mode so that placement skips a blocked node cluster-wide.
type clusterNode struct {
	c   *cluster.Cluster
	n   *Node
	url string // this node's signaling URL, sent in redirects to it

	// routes counts Route calls (tests check that a cut-off node refuses
	// without routing).
	routes atomic.Int64

	kick chan struct{} // the operator mode changed
	stop chan struct{}
	wg   sync.WaitGroup
}

// Interfaces served.
var (
	_ signal.Router   = (*clusterNode)(nil)
	_ control.Cluster = (*clusterNode)(nil)
)

// startCluster starts the node's cluster part from cfg once its listeners
// are bound (the URLs it advertises name their ports).
func (n *Node) startCluster(cfg config.Config) (*clusterNode, error) {
	sig := cfg.ClusterSignalingURL
	if sig == "" {
		sig = "ws://" + netip.AddrPortFrom(cfg.IPv4Address, n.SignalingAddr().Port()).String() + "/signaling"
	}
	api := cfg.ClusterAPIURL
	if api == "" {
		api = "http://" + n.APIAddr().String() + "/"
	}
	host := cfg.ClusterAddr().String()
	ccfg := cluster.Config{
		NodeName:     cfg.EffectiveClusterNodeName(),
		RaftListen:   net.JoinHostPort(host, strconv.Itoa(cfg.ClusterRaftPort)),
		RPCListen:    net.JoinHostPort(host, strconv.Itoa(cfg.ClusterPort)),
		DataDir:      filepath.Clean(cfg.ClusterDataDir),
		Temporary:    cfg.ClusterTemporaryNode,
		SignalingURL: sig, APIURL: api,
		MaxConnections: cfg.MaxConnections,
		InitialMode:    cfg.InitialMode,
		Heartbeat:      cfg.ClusterHeartbeatInterval, LeaseTTL: cfg.ClusterLeaseTTL, Grace: cfg.ClusterLeaseGrace,
		Log: n.log.With("component", "cluster"),
	}
	if cfg.ClusterTLS() {
		creds, err := cluster.LoadCredentials(cfg.ClusterTLSCAFile, cfg.ClusterTLSCertFile, cfg.ClusterTLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("cluster_tls_ca_file, cluster_tls_cert_file, cluster_tls_key_file: %w", err)
		}
		if creds.Name() != ccfg.NodeName {
			return nil, fmt.Errorf("cluster_tls_cert_file names %q, but cluster_node_name is %q: %w", creds.Name(), ccfg.NodeName, cluster.ErrBadCredentials)
		}
		ccfg.TLS = creds
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := cluster.Start(ctx, ccfg)
	if err != nil {
		return nil, err
	}
	cn := &clusterNode{c: c, n: n, url: sig, kick: make(chan struct{}, 1), stop: make(chan struct{})}
	return cn, nil
}

// attach connects the cluster to the hub: health mode, fencing, and the
// operator mode's replication.
func (cn *clusterNode) attach() {
	cn.c.OnHealthMode(func(m mode.Mode) { cn.n.setClusterHealth(m) })
	cn.c.OnFenced(func(channels []string) { cn.n.hub.Fence(channels) })
	cn.c.OnAPI(cn.n.api.Local)
	cn.wg.Go(cn.replicateMode)
}

// Route implements signal.Router. A cluster that cannot place the channel
// refuses like the mode feature does: no node can take a new session
// (BLOCKED-NEW-SESSION), or this node cannot decide now
// (BLOCKED-NEW-CONNECTION: not initialised, cut off, no lease).
func (cn *clusterNode) Route(ctx context.Context, channelID string) (bool, string, error) {
	cn.routes.Add(1)
	d, err := cn.c.Route(ctx, channelID)
	switch {
	case errors.Is(err, cluster.ErrNoEligibleNode):
		return false, "", signal.ErrBlockedNewSession
	case err != nil:
		cn.n.log.Debug("cluster cannot route", "channel_id", channelID, "err", err)
		return false, "", signal.ErrBlockedNewConnection
	}
	return d.Serve, d.RedirectURL, nil
}

func (cn *clusterNode) Serving(channelID string) bool { return cn.c.Serving(channelID) }
func (cn *clusterNode) Release(channelID string)      { cn.c.Release(channelID) }
func (cn *clusterNode) SetLoad(conns int)             { cn.c.SetLoad(conns) }

// operatorChanged asks for the operator mode to be replicated.
func (cn *clusterNode) operatorChanged() {
	select {
	case cn.kick <- struct{}{}:
	default:
	}
}

// replicateMode keeps the replicated operator mode equal to the local one:
// the local mode word decides admission on this node at once; the
// replicated one makes placement skip the node (docs/spec/cluster.md §3.5). A
// failure (no majority) is retried every heartbeat until it takes.
func (cn *clusterNode) replicateMode() {
	tick := time.NewTicker(cn.n.cfg.ClusterHeartbeatInterval)
	defer tick.Stop()
	warned := false
	for {
		select {
		case <-cn.stop:
			return
		case <-cn.kick:
		case <-tick.C:
		}
		want := cn.n.replicatedMode()
		if cn.c.OperatorMode() == want {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), cn.n.cfg.ClusterLeaseTTL)
		err := cn.c.SetOperatorMode(ctx, want)
		cancel()
		switch {
		case err == nil:
			cn.n.log.Info("operator mode replicated to the cluster", "mode", want.String())
			warned = false
		case !warned:
			cn.n.log.Warn("operator mode not replicated yet; retrying", "mode", want.String(), "err", err)
			warned = true
		}
	}
}

// close leaves the cluster: a regular node gives its channels up at once,
// a temporary node leaves the raft configuration.
func (cn *clusterNode) close() {
	close(cn.stop)
	cn.wg.Wait()
	if err := cn.c.Close(); err != nil && !errors.Is(err, cluster.ErrClosed) {
		cn.n.log.Warn("cluster close", "err", err)
	}
}

// InitCluster implements control.Cluster.
func (cn *clusterNode) InitCluster(ctx context.Context, names []string) error {
	return apiError(cn.c.InitCluster(ctx, names))
}

// RegisterClusterNode implements control.Cluster: this node joins.
func (cn *clusterNode) RegisterClusterNode(ctx context.Context, contact string) error {
	return apiError(cn.c.Join(ctx, contact))
}

// PurgeClusterNode implements control.Cluster.
func (cn *clusterNode) PurgeClusterNode(ctx context.Context, name string) error {
	return apiError(cn.c.Purge(ctx, name))
}

// ListClusterNodes implements control.Cluster.
func (cn *clusterNode) ListClusterNodes(ctx context.Context, stale bool) (any, error) {
	if err := cn.sync(ctx, stale); err != nil {
		return nil, err
	}
	return cn.c.Nodes(), nil
}

// ListClusterChannels implements control.Cluster.
func (cn *clusterNode) ListClusterChannels(ctx context.Context, stale bool) (any, error) {
	if err := cn.sync(ctx, stale); err != nil {
		return nil, err
	}
	return cn.c.Channels(), nil
}

// Fanout implements control.Cluster: the operation runs on every other
// node, bounded by cluster_lease_ttl.
func (cn *clusterNode) Fanout(ctx context.Context, target string, body []byte) []control.PeerAnswer {
	ctx, cancel := context.WithTimeout(ctx, cn.n.cfg.ClusterLeaseTTL)
	defer cancel()
	var out []control.PeerAnswer
	for _, a := range cn.c.Fanout(ctx, target, body) {
		out = append(out, control.PeerAnswer{Node: a.Node, Status: a.Status, Body: a.Body, Err: a.Err})
	}
	return out
}

// sync is the read barrier before a cluster read (cluster.Sync), bounded
// by cluster_lease_ttl: a node that cannot reach a leader by then answers
// CLUSTER-UNAVAILABLE.
func (cn *clusterNode) sync(ctx context.Context, stale bool) error {
	if stale {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, cn.n.cfg.ClusterLeaseTTL)
	defer cancel()
	return apiError(cn.c.Sync(ctx))
}

// apiError maps the cluster's errors to the API's.
func apiError(err error) error {
	var e *control.Error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, cluster.ErrAlreadyInitialised):
		e = control.ErrClusterAlreadyInitialised
	case errors.Is(err, cluster.ErrUnknownNode), errors.Is(err, cluster.ErrNameMismatch):
		e = control.ErrClusterNodeNotFound
	case errors.Is(err, cluster.ErrNodeAlive):
		e = control.ErrClusterNodeAlive
	case errors.Is(err, cluster.ErrTemporaryNode), errors.Is(err, cluster.ErrSelf):
		e = control.ErrClusterInvalidNode
	case errors.Is(err, cluster.ErrUnavailable), errors.Is(err, cluster.ErrNoLeader),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, cluster.ErrNotMember),
		errors.Is(err, cluster.ErrPeerUntrusted):
		e = control.ErrClusterUnavailable
	default:
		return fmt.Errorf("cluster: %w", err)
	}
	return control.ClusterError(e, err)
}
