// Package cluster decides which node of a Hayate cluster serves each channel
// and keeps each node's health mode, on embedded hashicorp/raft (docs/design.md,
// decision 10). The design is docs/spec/cluster.md §3; the Sora facts it
// copies are docs/spec/cluster.md §1 and docs/spec/sora-protocol.md §5.
//
// # Model
//
// Sora's owner model: every connection of one channel goes to the one node
// that owns the channel; a node that does not own it answers the connect with
// {"type":"redirect","location":<owner's signaling URL>}. A new channel goes
// to the node with the lowest connections ÷ licensed maximum, the node asked
// on a tie. The channel table and the node table are a raft-replicated state
// machine (table.go); every node holds a copy and decides redirects locally.
//
// No channel is ever served by two nodes at once. A node serves a channel
// only while the table gives it to this incarnation and the node holds a
// lease. The lease runs from the send time of the node's latest heartbeat
// that its own state machine has applied, for LeaseTTL. The leader expires a
// node whose heartbeats it has not seen for LeaseTTL + Grace, and only then
// can its channels move; by then the node has fenced itself (docs/spec/cluster.md §3.4).
//
// # Use from the server
//
//	c, err := cluster.Start(ctx, cluster.Config{NodeName: ..., DataDir: ..., SignalingURL: ...})
//	c.OnHealthMode(func(m mode.Mode) { word.SetHealth(m) })
//	c.OnFenced(func(channels []string) { /* close the sessions of these channels */ })
//	...
//	d, err := c.Route(ctx, channelID) // after parsing connect, before auth
//	switch {
//	case err != nil: // ErrUnavailable, ErrNoEligibleNode: refuse (block_new_connection)
//	case d.Serve: // admit; re-check c.Serving(channelID) on a short timer
//	default: // send {"type":"redirect","location": d.RedirectURL}
//	}
//	c.Release(channelID) // when the channel's last connection leaves
//	c.SetLoad(connections) // carried by the next heartbeat
//
// The full surface:
//
//	func Start(ctx context.Context, cfg Config) (*Cluster, error)
//	func (c *Cluster) Close() error
//	func (c *Cluster) Route(ctx context.Context, channelID string) (Decision, error)
//	func (c *Cluster) Serving(channelID string) bool
//	func (c *Cluster) Release(channelID string)
//	func (c *Cluster) SetLoad(conns int)
//	func (c *Cluster) SetOperatorMode(ctx context.Context, m mode.Mode) error   // ChangeMode
//	func (c *Cluster) OperatorMode() mode.Mode
//	func (c *Cluster) HealthMode() mode.Mode
//	func (c *Cluster) OnHealthMode(f func(mode.Mode))
//	func (c *Cluster) OnFenced(f func(channels []string))
//	func (c *Cluster) InitCluster(ctx context.Context, nodeNames []string) error // Sora_20221221.InitCluster
//	func (c *Cluster) Join(ctx context.Context, contact string) error             // Sora_20211215.RegisterClusterNode
//	func (c *Cluster) Purge(ctx context.Context, nodeName string) error          // Sora_20220629.PurgeClusterNode
//	func (c *Cluster) Nodes() []NodeStatus       // Sora_20211215.ListClusterNodes
//	func (c *Cluster) Channels() []ChannelStatus // Sora_20211215.ListClusterChannels
//	func (c *Cluster) Owner(channelID string) (string, bool)
//	func (c *Cluster) RaftStats() map[string]any // GetStatsReport "cluster"
//	func (c *Cluster) OnAPI(h APIHandler); Fanout(ctx, target, body) []PeerAnswer // cluster-wide API targets
//	func (c *Cluster) Name() string; Epoch() uint64; RPCAddr() string; RaftAddr() string
//
// # Node names and addresses
//
// A node's name (Config.NodeName, Sora's cluster_node_name) is its raft
// server ID; it must be unique and, for a regular node, stable across
// restarts. Each node has two listeners: the raft transport (RaftListen) and
// a small HTTP RPC (RPCListen) used for forwarding proposals to the leader,
// joining, bootstrapping and purging. Once registered, every node's RPC
// address is in the replicated table, so nodes find the leader by name.
//
// Before that, an operator names nodes to InitCluster, Join and Purge, and an
// entry is resolved in this order:
//
//  1. Config.Peers, a name → RPC address map;
//  2. a node already in this node's table;
//  3. Sora's "name@host" style with a port: "node-01@10.0.0.1:5690" names
//     the node node-01@10.0.0.1:5690 whose RPC listener is 10.0.0.1:5690
//     (so a cluster whose NodeNames follow this form needs no Peers);
//  4. a bare "host:port", taken as an RPC address; the node there reports
//     its own name.
//
// When an entry names a node (1 to 3), the node reached must report that
// name, else ErrNameMismatch.
//
// # Forming and changing a cluster
//
// A node with no raft state starts in block_new_connection and Route returns
// ErrUnavailable until it is part of a cluster.
//
// InitCluster(names) asks every listed node who it is, refuses with
// ErrAlreadyInitialised if any of them already has a raft configuration (so a
// second InitCluster can never form a second cluster) and ErrTemporaryNode if
// one is temporary, then bootstraps every listed node with the same
// configuration, all voters. It returns once this node's registration is
// applied (if this node is listed).
//
// Join(contact) sends this node's name and raft address to the contact node,
// which forwards it to the leader; the leader adds it as a voter (regular
// node) or non-voter (temporary node) and the node registers. A regular node
// restarted from its DataDir is already a member: it needs no Join, and Join
// only waits for its registration.
//
// Purge(name) removes a dead regular node: its channels, its table entry and
// its raft membership. It refuses with ErrNodeAlive while the leader has seen
// the node's heartbeat within LeaseTTL + Grace. A temporary node removes
// itself on Close; a regular node's Close expires its own channels at once
// and hands leadership over if it leads, but keeps its membership.
//
// Regular nodes keep the raft log, stable store (raft-boltdb, DataDir/raft.db)
// and snapshots in DataDir; a regular node must never come back under the
// same name without its DataDir (purge it first). Temporary nodes use raft's
// in-memory stores. Three regular nodes at least, then five (Sora's advice).
//
// # Incarnations, leases and fencing
//
// Every Start is a new incarnation (Sora's epoch: unix microseconds). The
// node registers it; the Register entry drops every channel the node's
// previous incarnation still owned, because those sessions died with the
// process. Then the node proposes a heartbeat every Heartbeat, carrying its
// connection count and health mode.
//
// Route: owned by another node, redirect; owned by this node with a valid
// lease, serve; not owned, forward Claim to the leader, wait until this
// node's state machine has applied that log index (its own applied index,
// never raft.AppliedIndex, docs/spec/cluster.md §3.7), and decide again from the local table.
//
// The leader proposes Expire for a node it has not heard from for LeaseTTL +
// Grace (timed from its election for nodes it never heard from). An Expire
// carries the count of the node's heartbeats the leader had seen and is void
// if another one was committed first, because that heartbeat may have given
// the node a lease. A lease-check timer fences an isolated owner even when
// nothing else happens: its sessions must be closed (OnFenced).
//
// Release stops serving the channel at once, before it is proposed, because
// another node may get the channel before this one applies its own Release.
//
// # Modes
//
// The health mode (docs/spec/cluster.md §3.5), reported through OnHealthMode; the server's
// effective mode is the stricter of it and the operator mode:
//
//   - block_new_connection: at start, until this incarnation is registered and
//     its first lease granted; when the lease lapses; after a lapse until two
//     renewals in a row;
//   - block_new_session: the last renewal is older than LeaseTTL/2;
//   - normal otherwise.
//
// SetOperatorMode replicates the operator mode, so that placement skips a node
// in block_new_session or block_new_connection cluster-wide. Placement also
// skips nodes whose last heartbeat reported a non-normal health mode, expired
// nodes, and nodes the leader has not heard from within LeaseTTL.
//
// # Timings
//
// Defaults: Heartbeat 1 s, LeaseTTL 5 s, Grace 2 s (tests: 50/300/100 ms).
// Raft's heartbeat and election timeouts are 2×Heartbeat capped at 1 s, its
// leader lease half that, its commit timeout Heartbeat/5 capped at 50 ms.
// Grace must cover clock-rate drift between nodes and the longest pause of
// an owner's lease check. Raft's own log lines go to Config.Log: Trace, Debug
// and Info at debug level, Warn at info, Error at warn.
//
// # Security
//
// With Config.TLS (a cluster CA bundle, the node's certificate naming
// NodeName in its Subject Common Name, and its key: LoadCredentials) both
// listeners speak mutual TLS 1.3 only, and a peer is accepted only if its
// certificate chains to the cluster CA (secure.go). On top of that:
//
//   - raft: the peer's name must be in the raft configuration, unless this
//     node has none yet (being bootstrapped or joined). A node removed by
//     Purge, or holding a certificate but never added, cannot send raft
//     messages, with any term.
//   - RPC: a request that acts for a node (register, heartbeat, claim,
//     release, mode, goodbye, join, leave) must come from that node's
//     certificate; Remove, and Expire of another node, are refused from any
//     peer (the leader decides them); a request forwarded by a node (a join
//     through a contact) is accepted only from a member. Bodies are decoded
//     and checked by decodeRPC before anything runs.
//   - A replayed capture is refused: TLS 1.3 keys are fresh on every
//     connection, and 0-RTT is not accepted.
//   - Refused peers are logged ("cluster: refused peer", with the listener,
//     the peer's address and the reason, a certificate's name included),
//     repeats within 10 s counted rather than logged.
//
// Credential files are read again when they change, so the CA is rotated
// with no restart: bundle old and new CA, replace each node's certificate,
// drop the old CA (README). A member is fully trusted, as in any raft
// cluster: its certificate is the cluster's trust unit.
//
// Without Config.TLS, Start refuses listeners that are not on loopback
// (ErrNeedsCredentials): a cluster without credentials is for one machine.
package cluster
