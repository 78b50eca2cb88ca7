package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/hayate-sfu/hayate/mode"
)

// Cluster is one node of a Hayate cluster. See doc.go for the model.
type Cluster struct {
	cfg Config
	log *slog.Logger
	// inc is this process's incarnation (Sora's epoch): unix microseconds at Start.
	inc uint64
	now func() time.Time

	raft     *raft.Raft
	trans    raft.Transport
	stream   *streamLayer // raft's, unless a test hook supplied the transport
	stores   []io.Closer
	rpcLn    net.Listener
	rpcSrv   *http.Server
	httpTr   *http.Transport
	client   *http.Client
	raftAddr string // advertised raft address
	rpcAddr  string // advertised RPC address
	scheme   string // of RPC URLs: https with TLS credentials, else http
	// raftReady is raft once started, for the TLS handshakes of raft peers
	// (which may begin before NewRaft returns).
	raftReady atomic.Pointer[raft.Raft]
	// refusals limits the log lines about refused peers.
	refusals *repeats

	ev        *dispatcher
	kick      chan struct{} // wakes the lease loop after a renewal
	beatNow   chan struct{} // asks the heartbeat loop for a beat now
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	mu sync.Mutex
	// tab is the replicated state, written only by the FSM; appliedCh is
	// closed and replaced whenever tab.Applied moves.
	tab       table
	appliedCh chan struct{}

	// The local view, guarded by mu (docs/spec/cluster.md §3.4, 3.5).
	closed bool
	// leaseUntil is the send time of the newest own heartbeat applied by
	// this node's FSM, plus LeaseTTL; lastRenew is when that apply happened.
	leaseUntil, lastRenew time.Time
	// lapsed is set when a held lease ran out; renewals counts renewals since.
	lapsed   bool
	renewals int
	health   mode.Mode
	conns    int
	hbSeq    uint64
	// pendingHB maps the sequence number of an own heartbeat in flight to its send time.
	pendingHB map[uint64]time.Time
	// mine holds the channels the table gives to this incarnation.
	mine map[string]struct{}
	// served holds the channels this node serves now, with the start time.
	served map[string]time.Time
	// releasing holds channels whose Release is proposed; the channel closes when it resolves.
	releasing map[string]chan struct{}
	// lingering holds Release calls waiting out ReleaseLinger.
	lingering map[string]*linger
	// seen is when this node applied each node's latest beat.
	seen map[string]time.Time
	// Leader-side state (docs/spec/cluster.md §3.4): the term and time this node last became
	// leader, and the Expire proposals in flight.
	leaderTerm  uint64
	leaderSince time.Time
	expiring    map[string]bool
	healthFns   []func(mode.Mode)
	fencedFns   []func([]string)
	apiFn       APIHandler // OnAPI
	// futures counts raft futures being waited on; futuresIdle is closed
	// when it drops to zero.
	futures     int
	futuresIdle chan struct{}
}

// Start opens the stores, starts raft, the RPC listener and the node's
// loops, and returns at once. A node with no raft state waits in
// block_new_connection until InitCluster or Join; a regular node restarted
// from its DataDir rejoins by itself and registers its new incarnation.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	c := &Cluster{
		cfg:       cfg,
		log:       cfg.Log.With("cluster_node", cfg.NodeName),
		now:       cfg.hooks.now,
		tab:       newTable(),
		appliedCh: make(chan struct{}),
		health:    mode.BlockNewConnection,
		pendingHB: map[uint64]time.Time{},
		mine:      map[string]struct{}{},
		served:    map[string]time.Time{},
		releasing: map[string]chan struct{}{},
		lingering: map[string]*linger{},
		seen:      map[string]time.Time{},
		expiring:  map[string]bool{},
		kick:      make(chan struct{}, 1),
		beatNow:   make(chan struct{}, 1),
		ev:        newDispatcher(),
		refusals:  &repeats{last: map[string]*repeat{}},
		scheme:    "http",
	}
	if cfg.TLS != nil {
		c.scheme = "https"
	}
	c.inc = uint64(c.now().UnixMicro())
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if err := c.start(); err != nil {
		c.teardown()
		return nil, err
	}
	c.log.Info("cluster node started", "raft", c.raftAddr, "rpc", c.rpcAddr, "temporary", cfg.Temporary, "epoch", c.inc, "tls", cfg.TLS != nil)
	return c, nil
}

func (c *Cluster) start() error {
	cfg := &c.cfg
	hl := newHclog(c.log, "raft")

	var (
		logs   raft.LogStore
		stable raft.StableStore
		snaps  raft.SnapshotStore
	)
	if cfg.Temporary || cfg.hooks.memStores {
		s := raft.NewInmemStore()
		logs, stable, snaps = s, s, raft.NewInmemSnapshotStore()
	} else {
		if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
			return fmt.Errorf("cluster: data dir: %w", err)
		}
		bs, err := raftboltdb.New(raftboltdb.Options{
			Path:        filepath.Join(cfg.DataDir, "raft.db"),
			BoltOptions: &bbolt.Options{Timeout: time.Second},
		})
		if err != nil {
			return fmt.Errorf("cluster: open raft log: %w", err)
		}
		c.stores = append(c.stores, bs)
		fs, err := raft.NewFileSnapshotStoreWithLogger(cfg.DataDir, 2, hl.Named("snapshot"))
		if err != nil {
			return fmt.Errorf("cluster: snapshot store: %w", err)
		}
		logs, stable, snaps = bs, bs, fs
	}

	if cfg.hooks.transport != nil {
		c.trans = cfg.hooks.transport
		c.raftAddr = string(c.trans.LocalAddr())
	} else {
		ln, err := c.listen(cfg.RaftListen)
		if err != nil {
			return fmt.Errorf("cluster: raft listen: %w", err)
		}
		adv, err := advertised(cfg.AdvertiseRaft, ln)
		if err != nil {
			ln.Close()
			return err
		}
		c.raftAddr = adv.String()
		c.stream = &streamLayer{Listener: c.secure(ln, listenerRaft), dial: c.dialPeer, advertise: adv}
		c.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream:  c.stream,
			MaxPool: 3,
			Timeout: max(2*cfg.LeaseTTL, time.Second),
			Logger:  hl.Named("transport"),
			// No pipelined replication. With it (hashicorp/raft v1.7.3, at
			// its default of 2 in flight: unbuffered queues), a leader
			// told of a newer term by a follower ends the pipeline's
			// decoder while its sender may still hand it a request: the
			// sender blocks for good, Shutdown waits for it, and the node
			// never closes (seen: a test's Close hung 13 minutes). The
			// cluster replicates a few small entries a second; one
			// request in flight per follower is plenty.
			MaxRPCsInFlight: 1,
		})
	}

	ln := cfg.hooks.rpcListener
	if ln == nil {
		var err error
		if ln, err = c.listen(cfg.RPCListen); err != nil {
			return fmt.Errorf("cluster: rpc listen: %w", err)
		}
	}
	c.rpcLn = ln
	if cfg.AdvertiseRPC != "" {
		c.rpcAddr = cfg.AdvertiseRPC
	} else if cfg.hooks.rpcListener != nil {
		c.rpcAddr = ln.Addr().String()
	} else {
		adv, err := advertised("", ln)
		if err != nil {
			return err
		}
		c.rpcAddr = adv.String()
	}
	c.httpTr = &http.Transport{
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	dial := func(ctx context.Context, _, addr string) (net.Conn, error) { return c.dialPeer(ctx, addr) }
	if cfg.TLS != nil {
		c.httpTr.DialTLSContext = dial
	} else {
		c.httpTr.DialContext = dial
	}
	c.client = &http.Client{Transport: c.httpTr}

	rc := cfg.raftConfig()
	rc.Logger = hl
	if cfg.hooks.raftConfig != nil {
		cfg.hooks.raftConfig(rc)
	}
	r, err := raft.NewRaft(rc, fsm{c}, logs, stable, snaps, c.trans)
	if err != nil {
		return fmt.Errorf("cluster: start raft: %w", err)
	}
	c.raft = r
	c.raftReady.Store(r)

	c.rpcSrv = &http.Server{Handler: c.rpcHandler(), ReadHeaderTimeout: 5 * time.Second, ErrorLog: hl.StandardLogger(nil),
		ConnContext: connContext}
	srvLn := c.secure(ln, listenerRPC)
	c.wg.Go(func() {
		if err := c.rpcSrv.Serve(srvLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.log.Warn("cluster rpc server stopped", "err", err)
		}
	})
	c.wg.Go(c.heartbeatLoop)
	c.wg.Go(c.leaseLoop)
	c.wg.Go(c.leaderLoop)
	return nil
}

// Close stops the node. A temporary node first removes itself from the
// cluster (Remove + RemoveServer, docs/spec/cluster.md §3.1); a regular node expires its own
// channels so that they move at once instead of after TTL + grace. The node
// stops serving every channel before it tells anyone.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.close() })
	return c.closeErr
}

func (c *Cluster) close() error {
	c.mu.Lock()
	c.closed = true
	for _, l := range c.lingering {
		l.t.Stop()
	}
	clear(c.lingering)
	var none []string // nothing is fenced on Close: the server is stopping its sessions itself
	c.syncAllLocked(c.now(), &none)
	c.evalHealthLocked(c.now())
	c.mu.Unlock()
	c.wakeWaiters()

	// Stop the loops (heartbeats in flight are cancelled) but keep raft and
	// the RPC server up for the goodbye.
	c.cancel()
	if !c.cfg.hooks.crash {
		c.leave()
	}
	c.teardown()
	c.log.Info("cluster node closed")
	return nil
}

// leave tells the cluster this node is going, bounded in time.
func (c *Cluster) leave() {
	if c.raft == nil {
		return
	}
	// A goodbye gets a lease's time: long enough for a loaded leader, short
	// enough for a shutdown when the cluster cannot be reached.
	ctx, cancel := context.WithTimeout(context.Background(), max(4*c.cfg.Heartbeat, c.cfg.LeaseTTL))
	defer cancel()
	if c.cfg.Temporary {
		if member, err := c.isMember(c.cfg.NodeName); err != nil || !member {
			return // never joined, or already removed
		}
		err := c.leaderCall(ctx, pathLeave, nameReq{Name: c.cfg.NodeName}, nil, func(ctx context.Context) error {
			return c.leaveLocal(ctx, c.cfg.NodeName)
		})
		if err != nil {
			c.log.Warn("temporary node could not leave the cluster", "err", err)
		}
		return
	}
	c.mu.Lock()
	n := c.tab.Nodes[c.cfg.NodeName]
	var cmd *command
	if n != nil && n.Inc == c.inc && !n.Closed {
		cmd = &command{Op: opExpire, Node: c.cfg.NodeName, Inc: c.inc, Bye: true}
	}
	c.mu.Unlock()
	if cmd != nil {
		if _, err := c.propose(ctx, cmd); err != nil {
			c.log.Debug("could not expire own channels on close", "err", err)
		}
	}
	// Hand leadership over rather than leave the cluster without a leader
	// for an election timeout.
	if c.raft.State() == raft.Leader {
		if err := c.await(ctx, c.raft.LeadershipTransfer()); err != nil {
			c.log.Debug("leadership transfer on close", "err", err)
		}
	}
}

// teardown releases everything start acquired; safe on a half-started node.
func (c *Cluster) teardown() {
	c.cancel()
	c.waitFutures(c.cfg.LeaseTTL)
	if c.raft != nil {
		if err := c.raft.Shutdown().Error(); err != nil {
			c.log.Debug("raft shutdown", "err", err)
		}
	}
	if c.rpcSrv != nil {
		_ = c.rpcSrv.Close()
	} else if c.rpcLn != nil {
		_ = c.rpcLn.Close()
	}
	c.wg.Wait()
	if c.httpTr != nil {
		c.httpTr.CloseIdleConnections()
	}
	if nt, ok := c.trans.(*raft.NetworkTransport); ok {
		// Pooled outbound connections: closed, so that the other nodes'
		// handlers of them end too.
		nt.CloseStreams()
	}
	if cl, ok := c.trans.(io.Closer); ok {
		_ = cl.Close()
	}
	if c.stream != nil && !c.stream.handlers.shutdown(c.cfg.LeaseTTL) {
		// Closing the stores under a handler would panic raft; leaving
		// them open costs a file handle of a process that is stopping.
		c.log.Error("raft connection handlers still busy after a lease's time; raft stores left open")
	} else {
		for _, s := range c.stores {
			_ = s.Close()
		}
	}
	c.ev.close()
}

// Name returns the node name.
func (c *Cluster) Name() string { return c.cfg.NodeName }

// Epoch returns this process's incarnation, Sora's epoch.
func (c *Cluster) Epoch() uint64 { return c.inc }

// RPCAddr returns the advertised address of the node's RPC listener, the
// address other nodes use in InitCluster and Join.
func (c *Cluster) RPCAddr() string { return c.rpcAddr }

// RaftAddr returns the advertised raft transport address.
func (c *Cluster) RaftAddr() string { return c.raftAddr }

// OnHealthMode registers f to be called with the node's health mode: once at
// once with the current one, then on every change (docs/spec/cluster.md §3.5). Calls come in
// order from one goroutine; f must not block for long.
func (c *Cluster) OnHealthMode(f func(mode.Mode)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.healthFns = append(c.healthFns, f)
	m := c.health
	c.ev.post(func() { f(m) })
}

// OnFenced registers f to be called with the channels this node stopped
// serving without having released them: its lease lapsed, or they were
// expired or moved. The server must close those channels' sessions.
func (c *Cluster) OnFenced(f func(channels []string)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fencedFns = append(c.fencedFns, f)
}

// HealthMode returns the node's current health mode.
func (c *Cluster) HealthMode() mode.Mode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.health
}

// SetLoad sets the connection count carried by the next heartbeat.
func (c *Cluster) SetLoad(conns int) {
	c.mu.Lock()
	c.conns = conns
	c.mu.Unlock()
}

// SetOperatorMode replicates this node's operator mode (Sora's ChangeMode,
// docs/spec/cluster.md §3.5: stored in the FSM so that placement skips the node cluster-wide)
// and returns once this node's FSM applied it.
func (c *Cluster) SetOperatorMode(ctx context.Context, m mode.Mode) error {
	if m > mode.BlockNewConnection {
		return mode.ErrInvalid
	}
	res, err := c.propose(ctx, &command{Op: opSetMode, Node: c.cfg.NodeName, Mode: m})
	if err != nil {
		return err
	}
	if !res.Result.OK {
		return fmt.Errorf("%w: %s", ErrRejected, res.Result.Reason)
	}
	return c.waitApplied(ctx, res.Index)
}

// OperatorMode returns this node's replicated operator mode.
func (c *Cluster) OperatorMode() mode.Mode {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.tab.Nodes[c.cfg.NodeName]; n != nil {
		return n.Operator
	}
	return c.cfg.InitialMode
}

func (c *Cluster) broadcastAppliedLocked() {
	close(c.appliedCh)
	c.appliedCh = make(chan struct{})
}

// wakeWaiters wakes everything that waits on the applied index (after Close).
func (c *Cluster) wakeWaiters() {
	c.mu.Lock()
	c.broadcastAppliedLocked()
	c.mu.Unlock()
}

// waitApplied waits until this node's FSM has applied index: the FSM's own
// applied index, not raft.AppliedIndex (docs/spec/cluster.md §3.7).
func (c *Cluster) waitApplied(ctx context.Context, index uint64) error {
	for {
		c.mu.Lock()
		applied, ch, closed := c.tab.Applied, c.appliedCh, c.closed
		c.mu.Unlock()
		if applied >= index {
			return nil
		}
		if closed {
			return ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: waiting for index %d: %w", ErrUnavailable, index, ctx.Err())
		}
	}
}
