package cluster

import (
	"cmp"
	"maps"

	"github.com/hayate-sfu/hayate/mode"
)

// table is the replicated state (docs/spec/cluster.md §3.2). It is changed only by apply, in
// log order, and apply never reads a clock: every time it stores was stamped
// by the proposer. Nothing here is safe for concurrent use; the Cluster
// guards it with its mutex.
type table struct {
	Nodes    map[string]*nodeRec `json:"nodes"`
	Channels map[string]*chanRec `json:"channels"`
	// Applied is the index of the last log entry this state machine applied.
	// Read-your-writes waits on it, never on raft.AppliedIndex, which may be
	// ahead of the FSM (docs/spec/cluster.md §3.7, the lesson of the prototype).
	Applied uint64 `json:"applied"`
}

// nodeRec is one node as the cluster knows it.
type nodeRec struct {
	Name string `json:"name"`
	// Inc is the incarnation (Sora's epoch): new on every start.
	Inc          uint64 `json:"inc"`
	SignalingURL string `json:"signaling_url"`
	APIURL       string `json:"api_url"`
	RPCAddr      string `json:"rpc_addr"`
	Temporary    bool   `json:"temporary"`
	// MemberSince is the proposer's wall clock at the first Register, unix ns.
	MemberSince int64 `json:"member_since"`
	// Operator is the replicated operator mode (SetMode); Health the node's
	// own mode as of its last heartbeat.
	Operator mode.Mode `json:"operator"`
	Health   mode.Mode `json:"health"`
	Conns    int       `json:"conns"`
	MaxConns int       `json:"max_conns"`
	// Expired is set by Expire and cleared by the node's next heartbeat.
	Expired bool `json:"expired"`
	// Closed: this incarnation said goodbye (its own Expire on Close); a
	// heartbeat of it still in flight must not bring it back.
	Closed bool `json:"closed,omitempty"`
	// Beats counts accepted Register and Heartbeat commands of this node. An
	// Expire carries the count its proposer saw and is void if another beat
	// was applied in between (see applyExpire).
	Beats uint64 `json:"beats"`
}

// effective is the node's mode as placement sees it (docs/spec/cluster.md §3.5).
func (n *nodeRec) effective() mode.Mode {
	if n.Expired {
		return mode.BlockNewConnection
	}
	return mode.Stricter(n.Operator, n.Health)
}

// chanRec is the owner of one channel.
type chanRec struct {
	Owner string `json:"owner"`
	// Inc is the owner's incarnation when it got the channel.
	Inc uint64 `json:"inc"`
	// Index is the claim's log index: a fencing token for logs and Release.
	Index uint64 `json:"index"`
}

type op uint8

// Commands of docs/spec/cluster.md §3.2.
const (
	opRegister op = iota + 1
	opHeartbeat
	opSetMode
	opClaim
	opRelease
	opExpire
	opRemove
)

// command is one log entry. One flat struct keeps the encoding trivial;
// each op uses the fields its comment names.
type command struct {
	Op op `json:"op"`
	// Node: the subject node (Register, Heartbeat, SetMode, Release, Expire,
	// Remove) or the requester (Claim). Inc: its incarnation.
	Node    string `json:"node,omitempty"`
	Inc     uint64 `json:"inc,omitempty"`
	Channel string `json:"ch,omitempty"`
	// Register.
	SignalingURL string `json:"sig,omitempty"`
	APIURL       string `json:"api,omitempty"`
	RPCAddr      string `json:"rpc,omitempty"`
	Temporary    bool   `json:"tmp,omitempty"`
	MaxConns     int    `json:"max,omitempty"`
	At           int64  `json:"at,omitempty"` // proposer's wall clock, unix ns
	// Mode: the initial operator mode (Register), the operator mode
	// (SetMode) or the sender's health mode (Heartbeat).
	Mode mode.Mode `json:"mode"`
	// Heartbeat: the sender's sequence number and connection count.
	Seq   uint64 `json:"seq,omitempty"`
	Conns int    `json:"conns,omitempty"`
	// Claim: the nodes the leader saw heartbeating recently, stamped by the
	// leader when it proposes.
	Eligible []string `json:"eligible,omitempty"`
	// Release: the claim index being released.
	Index uint64 `json:"index,omitempty"`
	// Expire: the Beats count the leader saw.
	Beats uint64 `json:"beats,omitempty"`
	// Expire: the node's own goodbye (Close), which closes its incarnation.
	Bye bool `json:"bye,omitempty"`
}

// result is what apply returns through raft's ApplyFuture.
type result struct {
	OK     bool   `json:"ok"`
	Owner  string `json:"owner,omitempty"`
	Index  uint64 `json:"index,omitempty"`
	Reason string `json:"reason,omitempty"`
}

func newTable() table {
	return table{Nodes: map[string]*nodeRec{}, Channels: map[string]*chanRec{}}
}

// clone deep-copies the table for a snapshot.
func (t *table) clone() table {
	c := table{Nodes: make(map[string]*nodeRec, len(t.Nodes)), Channels: make(map[string]*chanRec, len(t.Channels)), Applied: t.Applied}
	for k, v := range t.Nodes {
		n := *v
		c.Nodes[k] = &n
	}
	for k, v := range t.Channels {
		ch := *v
		c.Channels[k] = &ch
	}
	return c
}

// apply applies cmd at log index; it returns the result and the channels
// whose owner changed. It is deterministic: same table, same command, same
// outcome on every node.
func (t *table) apply(index uint64, cmd *command) (result, []string) {
	t.Applied = index
	switch cmd.Op {
	case opRegister:
		return t.applyRegister(cmd)
	case opHeartbeat:
		n := t.Nodes[cmd.Node]
		if n == nil || n.Inc != cmd.Inc {
			return result{Reason: "unknown incarnation"}, nil
		}
		if n.Closed {
			return result{Reason: "closed incarnation"}, nil
		}
		n.Conns, n.Health, n.Expired = cmd.Conns, cmd.Mode, false
		n.Beats++
		return result{OK: true}, nil
	case opSetMode:
		n := t.Nodes[cmd.Node]
		if n == nil {
			return result{Reason: "unknown node"}, nil
		}
		n.Operator = cmd.Mode
		return result{OK: true}, nil
	case opClaim:
		return t.applyClaim(index, cmd)
	case opRelease:
		ch := t.Channels[cmd.Channel]
		if ch == nil || ch.Owner != cmd.Node || ch.Inc != cmd.Inc || ch.Index != cmd.Index {
			return result{Reason: "stale release"}, nil
		}
		delete(t.Channels, cmd.Channel)
		return result{OK: true}, []string{cmd.Channel}
	case opExpire:
		return t.applyExpire(cmd)
	case opRemove:
		// Beats 0: the node asked itself (a temporary node leaving). Otherwise
		// the same check as Expire (a purge).
		n := t.Nodes[cmd.Node]
		if n == nil || cmd.Beats != 0 && n.Beats != cmd.Beats {
			return result{Reason: "unknown node or stale remove"}, nil
		}
		delete(t.Nodes, cmd.Node)
		return result{OK: true}, t.dropChannels(cmd.Node, func(*chanRec) bool { return true })
	default:
		return result{Reason: "unknown op"}, nil
	}
}

// applyRegister records a node's new incarnation. Channels of an older
// incarnation died with that process, so they are dropped (docs/spec/cluster.md §3.5).
func (t *table) applyRegister(cmd *command) (result, []string) {
	n := t.Nodes[cmd.Node]
	if n == nil {
		n = &nodeRec{Name: cmd.Node, MemberSince: cmd.At}
		t.Nodes[cmd.Node] = n
	}
	var changed []string
	if n.Inc != cmd.Inc {
		changed = t.dropChannels(cmd.Node, func(ch *chanRec) bool { return ch.Inc != cmd.Inc })
		n.Operator = cmd.Mode
		n.Health = mode.BlockNewConnection
		n.Conns = 0
	}
	n.Inc = cmd.Inc
	n.SignalingURL, n.APIURL, n.RPCAddr = cmd.SignalingURL, cmd.APIURL, cmd.RPCAddr
	n.Temporary, n.MaxConns = cmd.Temporary, cmd.MaxConns
	n.Expired, n.Closed = false, false
	n.Beats++
	return result{OK: true}, changed
}

// applyClaim is docs/spec/cluster.md §3.3 step 5: first claim in log order wins; a new
// channel goes to the eligible node with the lowest connections / maximum,
// the requester on a tie (Sora's rule, docs/spec/cluster.md §1 item 3).
func (t *table) applyClaim(index uint64, cmd *command) (result, []string) {
	if ch := t.Channels[cmd.Channel]; ch != nil {
		return result{OK: true, Owner: ch.Owner, Index: ch.Index}, nil
	}
	owner := t.place(cmd.Node, cmd.Eligible)
	if owner == nil {
		return result{Reason: ErrNoEligibleNode.Error()}, nil
	}
	t.Channels[cmd.Channel] = &chanRec{Owner: owner.Name, Inc: owner.Inc, Index: index}
	return result{OK: true, Owner: owner.Name, Index: index}, []string{cmd.Channel}
}

func (t *table) place(requester string, eligible []string) *nodeRec {
	var best *nodeRec
	for _, name := range eligible {
		n := t.Nodes[name]
		if n == nil || n.Inc == 0 || n.effective() != mode.Normal {
			continue
		}
		if best == nil {
			best = n
			continue
		}
		c := compareLoad(n, best)
		if c < 0 || c == 0 && (n.Name == requester || best.Name != requester && n.Name < best.Name) {
			best = n
		}
	}
	return best
}

// compareLoad compares a.Conns/a.MaxConns with b.Conns/b.MaxConns exactly,
// a maximum of 0 counting as 1.
func compareLoad(a, b *nodeRec) int {
	am, bm := max(a.MaxConns, 1), max(b.MaxConns, 1)
	return cmp.Compare(int64(a.Conns)*int64(bm), int64(b.Conns)*int64(am))
}

// applyExpire is docs/spec/cluster.md §3.4: the leader saw no heartbeat of the node for
// longer than TTL + grace. The Beats check makes the expiry void if any
// beat of the node was ordered between the leader's decision and this
// entry: the node may hold a lease from that beat, and it applies this
// Expire only after that beat, so it could otherwise still serve a channel
// that a later Claim hands to another node.
//
// A goodbye (Bye: the node's own Expire as it closes) needs no Beats check,
// since the node stopped serving before proposing it; it closes the
// incarnation, so that a heartbeat still in flight cannot mark the node
// alive again (it would be placed new channels and refuse purges until
// the leader expired it).
func (t *table) applyExpire(cmd *command) (result, []string) {
	n := t.Nodes[cmd.Node]
	if n == nil || n.Inc != cmd.Inc || n.Closed || !cmd.Bye && (n.Beats != cmd.Beats || n.Expired) {
		return result{Reason: "stale expire"}, nil
	}
	n.Expired, n.Closed = true, cmd.Bye
	n.Health = mode.BlockNewConnection
	return result{OK: true}, t.dropChannels(cmd.Node, func(*chanRec) bool { return true })
}

func (t *table) dropChannels(node string, match func(*chanRec) bool) []string {
	var dropped []string
	maps.DeleteFunc(t.Channels, func(id string, ch *chanRec) bool {
		if ch.Owner == node && match(ch) {
			dropped = append(dropped, id)
			return true
		}
		return false
	})
	return dropped
}
