package cluster

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/hayate-sfu/hayate/mode"
)

// maxBootstrapServers bounds an InitCluster list (Sora: up to about 100 nodes).
const maxBootstrapServers = 1000

// rpcRequest is one decoded request of the node-to-node RPC; the field of
// its path is set.
type rpcRequest struct {
	path string
	cmd  *command      // pathPropose
	join *joinReq      // pathJoin
	name *nameReq      // pathLeave, pathPurge
	boot *bootstrapReq // pathBootstrap
	api  *apiReq       // pathAPI
}

// decodeRPC decodes and checks the body of a request to path: the one
// parser of what arrives on the RPC listener (fuzzed by FuzzDecodeRPC).
// Whatever it accepts is safe to hand to the leader's handlers and, for a
// proposal, to the state machine.
func decodeRPC(path string, body []byte) (rpcRequest, error) {
	q := rpcRequest{path: path}
	var err error
	switch path {
	case pathInfo, pathReadIndex:
		return q, nil
	case pathBootstrap:
		q.boot = new(bootstrapReq)
		if err = json.Unmarshal(body, q.boot); err == nil {
			err = q.boot.check()
		}
	case pathPropose:
		q.cmd = new(command)
		if err = json.Unmarshal(body, q.cmd); err == nil {
			err = q.cmd.checkRemote()
		}
	case pathJoin:
		q.join = new(joinReq)
		if err = json.Unmarshal(body, q.join); err == nil {
			err = checkNode(q.join.Name, q.join.RaftAddr)
		}
	case pathLeave, pathPurge:
		q.name = new(nameReq)
		if err = json.Unmarshal(body, q.name); err == nil && !validName(q.name.Name) {
			err = fmt.Errorf("node name %q", q.name.Name)
		}
	case pathAPI:
		q.api = new(apiReq)
		if err = json.Unmarshal(body, q.api); err == nil {
			err = q.api.check()
		}
	default:
		err = fmt.Errorf("no such operation")
	}
	if err != nil {
		return rpcRequest{}, fmt.Errorf("%w: %s: %w", ErrBadRequest, path, err)
	}
	return q, nil
}

func checkNode(name, raftAddr string) error {
	if !validName(name) {
		return fmt.Errorf("node name %q", name)
	}
	if !validName(raftAddr) { // raft addresses are opaque to raft; host:port on TCP
		return fmt.Errorf("raft address %q of %q", raftAddr, name)
	}
	return nil
}

func (b *bootstrapReq) check() error {
	if len(b.Servers) == 0 || len(b.Servers) > maxBootstrapServers {
		return fmt.Errorf("%d servers", len(b.Servers))
	}
	seen := make(map[string]bool, len(b.Servers))
	for _, s := range b.Servers {
		if err := checkNode(s.Name, s.RaftAddr); err != nil {
			return err
		}
		if seen[s.Name] {
			return fmt.Errorf("%q listed twice", s.Name)
		}
		seen[s.Name] = true
	}
	return nil
}

// checkRemote checks a command proposed by another node. Remove, and Expire
// of a node other than the sender (the leader's expiry), are decisions the
// leader makes and proposes itself: no node may ask for them.
func (cmd *command) checkRemote() error {
	if !validName(cmd.Node) {
		return fmt.Errorf("node name %q", cmd.Node)
	}
	switch cmd.Op {
	case opRegister, opHeartbeat, opSetMode:
	case opClaim, opRelease:
		if cmd.Channel == "" || len(cmd.Channel) > maxName {
			return fmt.Errorf("channel ID of %d bytes", len(cmd.Channel))
		}
	case opExpire:
		if !cmd.Bye {
			return fmt.Errorf("%w: only the leader expires a node", ErrForbidden)
		}
	default:
		return fmt.Errorf("%w: operation %d is the leader's own", ErrForbidden, cmd.Op)
	}
	if cmd.Mode > mode.BlockNewConnection || cmd.Conns < 0 || cmd.MaxConns < 0 {
		return fmt.Errorf("mode %d, %d connections, maximum %d", cmd.Mode, cmd.Conns, cmd.MaxConns)
	}
	cmd.Eligible = nil // the leader stamps it
	return nil
}

// actor is the node a request acts for, whose certificate must send it;
// "" when any member may ask (info, bootstrap, read index, purge of a dead
// node).
func (q *rpcRequest) actor() string {
	switch {
	case q.cmd != nil:
		return q.cmd.Node
	case q.join != nil:
		return q.join.Name
	case q.path == pathLeave:
		return q.name.Name
	}
	return ""
}

// authorize decides whether the peer that sent r may make request q. A
// plain listener (loopback only) knows no peer and checks nothing. Over
// TLS the peer's certificate already chains to the cluster CA; a request
// that acts for a node must come from that node's certificate, and a
// request forwarded by a node (which checked its sender) only from a node
// in the raft configuration.
func (c *Cluster) authorize(r *http.Request, q *rpcRequest) error {
	peer, ok := peerName(r)
	if !ok {
		return nil
	}
	if r.Header.Get(hdrForwarded) != "" {
		if member, err := c.isMember(peer); err != nil || !member {
			return fmt.Errorf("%w: %q, not a member, forwarded a request", ErrForbidden, peer)
		}
		return nil
	}
	if a := q.actor(); a != "" && a != peer {
		return fmt.Errorf("%w: the certificate names %q, the request acts for %q", ErrForbidden, peer, a)
	}
	return nil
}
