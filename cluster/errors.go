package cluster

import "errors"

// Sentinel errors of the cluster package. Errors that cross the RPC between
// nodes are carried by name (see rpcError) and come back as these values, so
// errors.Is works on both sides.
var (
	// ErrUnavailable means the cluster cannot decide now: no leader, no lease,
	// the node is not initialised or joined, or the decision timed out. The
	// signaling layer refuses the connect (block_new_connection).
	ErrUnavailable = errors.New("cluster: unavailable")
	// ErrNoEligibleNode means no node is in normal mode with a fresh
	// heartbeat, so a new channel cannot be placed anywhere.
	ErrNoEligibleNode = errors.New("cluster: no node can take a new channel")
	// ErrAlreadyInitialised is InitCluster on a node that already has a raft
	// configuration (docs/spec/cluster.md §3.1: a second bootstrap must never form a second cluster).
	ErrAlreadyInitialised = errors.New("cluster: already initialised")
	// ErrNoLeader means no leader is known, or the node asked is no longer leader.
	ErrNoLeader = errors.New("cluster: no leader")
	// ErrUnknownNode is a node name that is neither in the cluster nor resolvable to an address.
	ErrUnknownNode = errors.New("cluster: unknown node")
	// ErrNameMismatch means the node reached at an address reports another node name.
	ErrNameMismatch = errors.New("cluster: node name does not match the node at that address")
	// ErrNodeAlive refuses to purge a node whose heartbeats still arrive.
	ErrNodeAlive = errors.New("cluster: node is alive; stop it before purging")
	// ErrTemporaryNode refuses an operation that needs a regular node, such as
	// InitCluster with a temporary node in the list.
	ErrTemporaryNode = errors.New("cluster: operation needs a regular node")
	// ErrNotMember refuses a Register from a node that is not in the raft configuration.
	ErrNotMember = errors.New("cluster: node is not a member of the raft configuration")
	// ErrSelf refuses Join through the node itself and Purge of the node itself.
	ErrSelf = errors.New("cluster: operation cannot target this node")
	// ErrRejected is a command the state machine refused (a stale release, a
	// heartbeat of an old incarnation).
	ErrRejected = errors.New("cluster: command rejected")
	// ErrClosed is returned after Close.
	ErrClosed = errors.New("cluster: closed")
	// ErrInvalidConfig is a Config that Start cannot run with.
	ErrInvalidConfig = errors.New("cluster: invalid config")
	// ErrNeedsCredentials refuses to start a node whose listeners are
	// reachable beyond loopback without TLS credentials (Config.TLS).
	ErrNeedsCredentials = errors.New("cluster: listeners beyond loopback need TLS credentials")
	// ErrBadCredentials is a CA bundle, certificate or key that cannot be used.
	ErrBadCredentials = errors.New("cluster: unusable credentials")
	// ErrPeerNoCertificate refuses a peer that presented no certificate.
	ErrPeerNoCertificate = errors.New("cluster: peer presented no certificate")
	// ErrPeerUntrusted refuses a peer whose certificate does not chain to the
	// cluster CA, has expired, or carries no node name.
	ErrPeerUntrusted = errors.New("cluster: peer certificate not trusted")
	// ErrForbidden refuses a request the peer may not make: it acts for
	// another node than the one its certificate names, it is an operation
	// only the leader performs itself, or a non-member forwarded it.
	ErrForbidden = errors.New("cluster: request not allowed for this peer")
	// ErrBadRequest is an RPC request that does not decode or fails its checks.
	ErrBadRequest = errors.New("cluster: bad request")
)

// errTransient marks an RPC that failed on the way (connection refused or
// reset, a bad answer): leaderCall retries it until its context ends.
var errTransient = errors.New("cluster: rpc failed")

// errorByName maps the names that travel in RPC answers back to sentinels.
func errorByName(name string) error {
	for _, e := range []error{
		ErrUnavailable, ErrNoEligibleNode, ErrAlreadyInitialised, ErrNoLeader, ErrUnknownNode,
		ErrNameMismatch, ErrNodeAlive, ErrTemporaryNode, ErrNotMember, ErrSelf, ErrRejected, ErrClosed,
		ErrForbidden, ErrBadRequest,
	} {
		if e.Error() == name {
			return e
		}
	}
	return nil
}
