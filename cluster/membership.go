package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/hashicorp/raft"
)

// info describes this node to a node that is forming or joining a cluster.
func (c *Cluster) info() infoResp {
	return infoResp{
		Name: c.cfg.NodeName, RaftAddr: c.raftAddr, RPCAddr: c.rpcAddr,
		Temporary: c.cfg.Temporary, Initialised: c.initialised(), Epoch: c.inc,
	}
}

// initialised reports whether this node has a raft configuration (from
// InitCluster, a Join, or its DataDir).
func (c *Cluster) initialised() bool {
	f := c.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return true // shut down: certainly not available for a bootstrap
	}
	return len(f.Configuration().Servers) > 0
}

// resolve maps an InitCluster / RegisterClusterNode / PurgeClusterNode entry
// to an RPC address. In order: Config.Peers; a node already in the table;
// "name@host:port" (the part after the last @); a bare "host:port". byName
// says the entry named a node, whose name the answer must then match.
func (c *Cluster) resolve(entry string) (addr string, byName bool, err error) {
	if a, ok := c.cfg.Peers[entry]; ok {
		return a, true, nil
	}
	c.mu.Lock()
	n := c.tab.Nodes[entry]
	c.mu.Unlock()
	if n != nil && n.RPCAddr != "" {
		return n.RPCAddr, true, nil
	}
	if i := strings.LastIndexByte(entry, '@'); i >= 0 {
		if _, _, err := net.SplitHostPort(entry[i+1:]); err == nil {
			return entry[i+1:], true, nil
		}
	}
	if _, _, err := net.SplitHostPort(entry); err == nil {
		return entry, false, nil
	}
	return "", false, fmt.Errorf("%w: %q (give name@host:port, host:port, or list it in Peers)", ErrUnknownNode, entry)
}

// lookup asks the node behind entry who it is.
func (c *Cluster) lookup(ctx context.Context, entry string) (infoResp, error) {
	if entry == c.cfg.NodeName || entry == c.rpcAddr {
		return c.info(), nil
	}
	addr, byName, err := c.resolve(entry)
	if err != nil {
		return infoResp{}, err
	}
	var info infoResp
	if addr == c.rpcAddr {
		info = c.info()
	} else if err := c.call(ctx, addr, pathInfo, struct{}{}, &info, ""); err != nil {
		return infoResp{}, fmt.Errorf("%w: %q at %s: %w", ErrUnknownNode, entry, addr, err)
	}
	if byName && info.Name != entry {
		return infoResp{}, fmt.Errorf("%w: %q at %s is %q", ErrNameMismatch, entry, addr, info.Name)
	}
	return info, nil
}

// InitCluster forms a new cluster from regular nodes (Sora_20221221.InitCluster
// {node_name_list}; docs/spec/cluster.md §3.1): every listed node is bootstrapped with the
// same raft configuration, all of them voters. Entries are resolved as in
// resolve; an empty list means this node alone. It refuses with
// ErrAlreadyInitialised if any listed node already has a configuration,
// so a second InitCluster can never form a second cluster, and with
// ErrTemporaryNode if a listed node is temporary. When this node is listed,
// InitCluster returns once its registration is applied.
func (c *Cluster) InitCluster(ctx context.Context, nodeNames []string) error {
	if len(nodeNames) == 0 {
		nodeNames = []string{c.cfg.NodeName}
	}
	var infos []infoResp
	seen := map[string]bool{}
	self := false
	for _, entry := range nodeNames {
		info, err := c.lookup(ctx, entry)
		if err != nil {
			return err
		}
		switch {
		case info.Temporary:
			return fmt.Errorf("%w: %s is temporary", ErrTemporaryNode, info.Name)
		case info.Initialised:
			return fmt.Errorf("%w: %s", ErrAlreadyInitialised, info.Name)
		case seen[info.Name]:
			continue
		}
		seen[info.Name] = true
		self = self || info.Name == c.cfg.NodeName
		infos = append(infos, info)
	}
	req := bootstrapReq{}
	for _, info := range infos {
		req.Servers = append(req.Servers, bootstrapServer{Name: info.Name, RaftAddr: info.RaftAddr})
	}
	for _, info := range infos {
		var err error
		if info.Name == c.cfg.NodeName {
			err = c.bootstrapLocal(ctx, &req)
		} else {
			err = c.call(ctx, info.RPCAddr, pathBootstrap, &req, nil, "")
		}
		if err != nil {
			return fmt.Errorf("cluster: bootstrap %s: %w", info.Name, err)
		}
	}
	c.log.Info("cluster initialised", "nodes", len(infos))
	if !self {
		return nil
	}
	return c.waitRegistered(ctx)
}

func (c *Cluster) bootstrapLocal(ctx context.Context, req *bootstrapReq) error {
	if c.cfg.Temporary {
		return ErrTemporaryNode
	}
	var conf raft.Configuration
	for _, s := range req.Servers {
		conf.Servers = append(conf.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(s.Name), Address: raft.ServerAddress(s.RaftAddr)})
	}
	err := c.raft.BootstrapCluster(conf).Error()
	if errors.Is(err, raft.ErrCantBootstrap) {
		// The other listed nodes, bootstrapped first, may have elected a
		// leader that already gave this node the very configuration asked
		// for: that is this InitCluster's cluster, not a second one. A
		// candidate's vote request may have come first, leaving a term but
		// no configuration yet: the leader's first entries bring it.
		for {
			f := c.raft.GetConfiguration()
			if f.Error() == nil && len(f.Configuration().Servers) > 0 {
				if sameServers(f.Configuration(), conf) {
					return nil
				}
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%w: %s has raft state but no configuration yet", ErrUnavailable, c.cfg.NodeName)
			case <-time.After(c.cfg.Heartbeat / 5):
			}
		}
		return fmt.Errorf("%w: %s", ErrAlreadyInitialised, c.cfg.NodeName)
	}
	return err
}

// sameServers reports whether two configurations list the same servers.
func sameServers(a, b raft.Configuration) bool {
	if len(a.Servers) != len(b.Servers) {
		return false
	}
	want := make(map[raft.Server]bool, len(b.Servers))
	for _, s := range b.Servers {
		want[s] = true
	}
	for _, s := range a.Servers {
		if !want[s] {
			return false
		}
	}
	return true
}

// Join adds this node to a running cluster through a contact node
// (Sora_20211215.RegisterClusterNode {contact_node_name}; docs/spec/cluster.md §3.1): the
// contact forwards the request to the leader, which adds this node as a
// voter (regular) or non-voter (temporary). Join returns once this node's
// registration is applied here. A node that is already a member only waits
// for that.
func (c *Cluster) Join(ctx context.Context, contact string) error {
	if member, err := c.isMember(c.cfg.NodeName); err == nil && member {
		return c.waitRegistered(ctx)
	}
	if contact == c.cfg.NodeName || contact == c.rpcAddr {
		return ErrSelf
	}
	addr, _, err := c.resolve(contact)
	if err != nil {
		return err
	}
	if addr == c.rpcAddr {
		return ErrSelf
	}
	req := joinReq{Name: c.cfg.NodeName, RaftAddr: c.raftAddr, Temporary: c.cfg.Temporary}
	backoff := c.cfg.Heartbeat / 5
	for {
		err = c.call(ctx, addr, pathJoin, &req, nil, "")
		if err == nil || !retriable(err) {
			break
		}
		if certRefused(err) {
			// A certificate is refused on one side or the other: retrying
			// cannot help; the operator must fix the credentials.
			return fmt.Errorf("%w: join through %s: %w", ErrPeerUntrusted, contact, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: join through %s: %w (last error: %v)", ErrUnavailable, contact, ctx.Err(), err)
		case <-c.ctx.Done():
			return ErrClosed
		case <-time.After(backoff):
		}
	}
	if err != nil {
		return err
	}
	c.log.Info("cluster joined", "contact", contact)
	return c.waitRegistered(ctx)
}

// joinLocal adds a node on the leader. A node already in the configuration
// with the same address and kind is left alone; one with another address
// (a temporary node restarted elsewhere) is replaced.
func (c *Cluster) joinLocal(ctx context.Context, req *joinReq) error {
	if req.Name == "" || req.RaftAddr == "" {
		return fmt.Errorf("%w: join without name or address", ErrUnknownNode)
	}
	f := c.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) != req.Name {
			continue
		}
		if string(s.Address) == req.RaftAddr && (s.Suffrage == raft.Voter) == !req.Temporary {
			return nil
		}
		if err := c.await(ctx, c.raft.RemoveServer(s.ID, 0, c.enqueueTimeout(ctx))); err != nil {
			return err
		}
	}
	var fut raft.IndexFuture
	if req.Temporary {
		fut = c.raft.AddNonvoter(raft.ServerID(req.Name), raft.ServerAddress(req.RaftAddr), 0, c.enqueueTimeout(ctx))
	} else {
		fut = c.raft.AddVoter(raft.ServerID(req.Name), raft.ServerAddress(req.RaftAddr), 0, c.enqueueTimeout(ctx))
	}
	if err := c.await(ctx, fut); err != nil {
		return err
	}
	c.log.Info("cluster member added", "node", req.Name, "temporary", req.Temporary)
	return nil
}

// leaveLocal removes a temporary node that is closing: its channels first
// (it stopped serving them before asking), then its raft membership.
func (c *Cluster) leaveLocal(ctx context.Context, name string) error {
	if _, err := c.proposeLocal(ctx, &command{Op: opRemove, Node: name}); err != nil {
		return err
	}
	return c.removeServer(ctx, name)
}

func (c *Cluster) removeServer(ctx context.Context, name string) error {
	member, err := c.isMember(name)
	if err != nil || !member {
		return err
	}
	if err := c.await(ctx, c.raft.RemoveServer(raft.ServerID(name), 0, c.enqueueTimeout(ctx))); err != nil {
		return err
	}
	c.log.Info("cluster member removed", "node", name)
	return nil
}

// Purge removes a dead node from the cluster (Sora_20220629.PurgeClusterNode
// {target_node_name}; docs/spec/cluster.md §3.1): its channels, its entry and its raft
// membership. It refuses with ErrNodeAlive while the leader has seen the
// node's heartbeat within TTL + grace: purging a live owner could hand its
// channels to another node while it still serves them.
//
// Purge is idempotent across its own retries: an attempt that failed on the
// way (the leader lost its leadership after the removal was committed, or
// its answer was lost) may have purged the node, so ErrUnknownNode after
// such a failure means the node is gone, which is success.
func (c *Cluster) Purge(ctx context.Context, nodeName string) error {
	if nodeName == c.cfg.NodeName {
		return ErrSelf
	}
	return c.leaderCallAgain(ctx, pathPurge, nameReq{Name: nodeName}, nil, func(ctx context.Context) error {
		return c.purgeLocal(ctx, nodeName)
	}, func(err error) error {
		if errors.Is(err, ErrUnknownNode) {
			return nil
		}
		return err
	})
}

func (c *Cluster) purgeLocal(ctx context.Context, name string) error {
	if name == c.cfg.NodeName {
		// The leader is alive by definition (the caller named another node).
		return fmt.Errorf("%w: %s is the leader", ErrNodeAlive, name)
	}
	member, err := c.isMember(name)
	if err != nil {
		return err
	}
	c.mu.Lock()
	n := c.tab.Nodes[name]
	var cmd *command
	if n != nil {
		if !n.Expired && c.now().Sub(c.lastSeenLocked(name)) <= c.cfg.LeaseTTL+c.cfg.Grace {
			c.mu.Unlock()
			return fmt.Errorf("%w: %s", ErrNodeAlive, name)
		}
		// Like Expire, void if a beat of the node lands first.
		cmd = &command{Op: opRemove, Node: name, Beats: n.Beats}
	}
	c.mu.Unlock()
	if n == nil && !member {
		return fmt.Errorf("%w: %s", ErrUnknownNode, name)
	}
	if cmd != nil {
		res, err := c.proposeLocal(ctx, cmd)
		if err != nil {
			return err
		}
		if !res.Result.OK {
			return fmt.Errorf("%w: %s: %s", ErrNodeAlive, name, res.Result.Reason)
		}
	}
	if err := c.removeServer(ctx, name); err != nil {
		return err
	}
	c.log.Info("cluster node purged", "node", name)
	if h := c.cfg.hooks.purged; h != nil {
		return h(name)
	}
	return nil
}

// waitRegistered waits until this node's FSM has applied this
// incarnation's Register.
func (c *Cluster) waitRegistered(ctx context.Context) error {
	for {
		c.mu.Lock()
		n := c.tab.Nodes[c.cfg.NodeName]
		ok := n != nil && n.Inc == c.inc
		ch, closed := c.appliedCh, c.closed
		c.mu.Unlock()
		switch {
		case ok:
			return nil
		case closed:
			return ErrClosed
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: waiting for registration: %w", ErrUnavailable, ctx.Err())
		}
	}
}
