package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/hashicorp/raft"
)

// The node-to-node RPC: JSON over HTTP POST on the RPC listener (HTTPS with
// mutual TLS when the node has credentials). Operations that only the
// leader can perform (propose, join, leave, purge) are forwarded once by a
// node that is not the leader. Requests are decoded and checked by
// decodeRPC and authorize (rpcdecode.go) before anything runs.
const (
	pathInfo      = "/cluster/v1/info"
	pathBootstrap = "/cluster/v1/bootstrap"
	pathPropose   = "/cluster/v1/propose"
	pathJoin      = "/cluster/v1/join"
	pathLeave     = "/cluster/v1/leave"
	pathPurge     = "/cluster/v1/purge"
	pathReadIndex = "/cluster/v1/read-index"
	pathAPI       = "/cluster/v1/api"

	hdrForwarded = "X-Hayate-Forwarded"
	maxRPCBody   = 1 << 20
)

type infoResp struct {
	Name        string `json:"name"`
	RaftAddr    string `json:"raft_addr"`
	RPCAddr     string `json:"rpc_addr"`
	Temporary   bool   `json:"temporary"`
	Initialised bool   `json:"initialised"`
	Epoch       uint64 `json:"epoch"`
}

type bootstrapReq struct {
	Servers []bootstrapServer `json:"servers"`
}

type bootstrapServer struct {
	Name     string `json:"name"`
	RaftAddr string `json:"raft_addr"`
}

type proposeResp struct {
	Index  uint64 `json:"index"`
	Result result `json:"result"`
}

type joinReq struct {
	Name      string `json:"name"`
	RaftAddr  string `json:"raft_addr"`
	Temporary bool   `json:"temporary"`
}

// indexResp is the leader's answer to a read barrier (Sync).
type indexResp struct {
	Index uint64 `json:"index"`
}

type nameReq struct {
	Name string `json:"name"`
}

// apiReq is an API operation a node runs on every other node (Fanout):
// the x-sora-target and the request body.
type apiReq struct {
	Target string          `json:"target"`
	Body   json.RawMessage `json:"body"`
}

// apiResp is the HTTP status and body of the API's answer.
type apiResp struct {
	Status int             `json:"status"`
	Body   json.RawMessage `json:"body"`
}

type errResp struct {
	Error  string `json:"error"`
	Detail string `json:"detail"`
}

func (c *Cluster) rpcHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /cluster/v1/", c.serveRPC)
	return mux
}

// serveRPC decodes, checks and runs one request. Operations that only the
// leader performs run here on the leader; a follower forwards them once to
// the leader, and a forwarded request that reaches a follower fails with
// ErrNoLeader (the caller retries).
func (c *Cluster) serveRPC(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRPCBody))
	if err != nil {
		reply(w, nil, fmt.Errorf("%w: %w", ErrBadRequest, err))
		return
	}
	q, err := decodeRPC(r.URL.Path, body)
	if err == nil {
		err = c.authorize(r, &q)
	}
	if err != nil {
		c.refused(listenerRPC, r.RemoteAddr, err)
		reply(w, nil, err)
		return
	}
	switch q.path {
	case pathInfo:
		reply(w, c.info(), nil)
		return
	case pathBootstrap:
		reply(w, struct{}{}, c.bootstrapLocal(r.Context(), q.boot))
		return
	case pathAPI:
		resp, err := c.serveAPI(r.Context(), q.api)
		reply(w, resp, err)
		return
	}
	if c.raft.State() == raft.Leader {
		resp, err := c.leaderLocal(r.Context(), &q)
		reply(w, resp, err)
		return
	}
	if r.Header.Get(hdrForwarded) != "" {
		reply(w, nil, ErrNoLeader)
		return
	}
	addr, err := c.leaderRPCAddr()
	if err != nil {
		reply(w, nil, err)
		return
	}
	origin, ok := peerName(r)
	if !ok {
		origin = r.RemoteAddr
	}
	var raw json.RawMessage
	err = c.call(r.Context(), addr, q.path, json.RawMessage(body), &raw, origin)
	reply(w, raw, err)
}

// leaderLocal runs a leader operation on this node, the leader.
func (c *Cluster) leaderLocal(ctx context.Context, q *rpcRequest) (any, error) {
	switch q.path {
	case pathPropose:
		return c.proposeLocal(ctx, q.cmd)
	case pathJoin:
		return struct{}{}, c.joinLocal(ctx, q.join)
	case pathReadIndex:
		return c.readIndexLocal(ctx)
	case pathLeave:
		return struct{}{}, c.leaveLocal(ctx, q.name.Name)
	default: // pathPurge
		return struct{}{}, c.purgeLocal(ctx, q.name.Name)
	}
}

// reply writes v as JSON, or err as {"error": <sentinel text>, "detail": ...}.
func reply(w http.ResponseWriter, v any, err error) {
	w.Header().Set("Content-Type", "application/json")
	if err != nil {
		status, name := http.StatusBadRequest, "invalid request"
		for _, s := range []struct {
			err    error
			status int
		}{
			{ErrNoLeader, http.StatusServiceUnavailable},
			{ErrUnavailable, http.StatusServiceUnavailable},
			{ErrClosed, http.StatusServiceUnavailable},
			{ErrAlreadyInitialised, http.StatusConflict},
			{ErrNodeAlive, http.StatusConflict},
			{ErrNotMember, http.StatusForbidden},
			{ErrTemporaryNode, http.StatusBadRequest},
			{ErrUnknownNode, http.StatusNotFound},
			{ErrSelf, http.StatusBadRequest},
			{ErrRejected, http.StatusConflict},
			{ErrNoEligibleNode, http.StatusServiceUnavailable},
			{ErrForbidden, http.StatusForbidden},
			{ErrBadRequest, http.StatusBadRequest},
		} {
			if errors.Is(err, s.err) {
				status, name = s.status, s.err.Error()
				break
			}
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(errResp{Error: name, Detail: err.Error()})
		return
	}
	_ = json.NewEncoder(w).Encode(v)
}

// call POSTs req to path at addr and decodes the answer into resp. origin,
// if not empty, marks a request forwarded on behalf of that peer.
func (c *Cluster) call(ctx context.Context, addr, path string, req, resp any, origin string) error {
	body, err := json.Marshal(req)
	if err != nil {
		return err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.scheme+"://"+addr+path, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnknownNode, err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	if origin != "" {
		hreq.Header.Set(hdrForwarded, origin)
	}
	res, err := c.client.Do(hreq)
	if err != nil {
		return fmt.Errorf("%w: %s %s: %w", errTransient, addr, path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, maxRPCBody))
	if err != nil {
		return fmt.Errorf("%w: %s %s: %w", errTransient, addr, path, err)
	}
	if res.StatusCode != http.StatusOK {
		var e errResp
		_ = json.Unmarshal(data, &e)
		if s := errorByName(e.Error); s != nil {
			return fmt.Errorf("%w (from %s: %s)", s, addr, e.Detail)
		}
		return fmt.Errorf("%w: %s %s: status %d: %s", errTransient, addr, path, res.StatusCode, e.Detail)
	}
	if resp == nil {
		return nil
	}
	if err := json.Unmarshal(data, resp); err != nil {
		return fmt.Errorf("%w: %s %s: bad answer: %w", errTransient, addr, path, err)
	}
	return nil
}

// leaderRPCAddr is the RPC address of the current leader, from the table
// (every node registers its RPC address).
func (c *Cluster) leaderRPCAddr() (string, error) {
	_, id := c.raft.LeaderWithID()
	if id == "" {
		return "", ErrNoLeader
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.tab.Nodes[string(id)]; n != nil && n.RPCAddr != "" {
		return n.RPCAddr, nil
	}
	return "", fmt.Errorf("%w: leader %s has not registered yet", ErrNoLeader, id)
}

func retriable(err error) bool {
	return errors.Is(err, errTransient) || errors.Is(err, ErrNoLeader) || errors.Is(err, ErrUnavailable)
}

// leaderCall runs an operation on the leader: local when this node leads,
// else over RPC to the leader. It retries transient failures with backoff
// until ctx ends.
func (c *Cluster) leaderCall(ctx context.Context, path string, req, resp any, local func(context.Context) error) error {
	return c.leaderCallAgain(ctx, path, req, resp, local, nil)
}

// leaderCallAgain is leaderCall for an operation that is not idempotent as
// such: once an attempt that may have reached the leader failed
// retriably, again (if not nil) maps the error of every later attempt,
// which may find the operation already done.
func (c *Cluster) leaderCallAgain(ctx context.Context, path string, req, resp any, local func(context.Context) error, again func(error) error) error {
	backoff := 5 * time.Millisecond
	reached := false // an attempt may have reached the leader and failed retriably
	for {
		var err error
		sent := true
		switch c.raft.State() {
		case raft.Shutdown:
			return ErrClosed
		case raft.Leader:
			err = local(ctx)
		default:
			var addr string
			if addr, err = c.leaderRPCAddr(); err == nil {
				err = c.call(ctx, addr, path, req, resp, "")
			} else {
				sent = false
			}
		}
		if reached && again != nil {
			err = again(err)
		}
		if err == nil || !retriable(err) {
			return err
		}
		reached = reached || sent
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w: %w (last error: %v)", ErrUnavailable, ctx.Err(), err)
		case <-t.C:
		}
		backoff = min(2*backoff, c.cfg.Heartbeat)
	}
}

// propose gets cmd into the log through the leader and returns its index
// and the leader's apply result.
func (c *Cluster) propose(ctx context.Context, cmd *command) (proposeResp, error) {
	var resp proposeResp
	err := c.leaderCall(ctx, pathPropose, cmd, &resp, func(ctx context.Context) error {
		var err error
		resp, err = c.proposeLocal(ctx, cmd)
		return err
	})
	return resp, err
}

// proposeLocal appends cmd on this node, the leader, after stamping what the
// leader decides: membership for Register, the eligible nodes for Claim.
func (c *Cluster) proposeLocal(ctx context.Context, cmd *command) (proposeResp, error) {
	switch cmd.Op {
	case opRegister:
		member, err := c.isMember(cmd.Node)
		if err != nil {
			return proposeResp{}, err
		}
		if !member {
			return proposeResp{}, fmt.Errorf("%w: %s", ErrNotMember, cmd.Node)
		}
	case opClaim:
		cmd.Eligible = c.eligible()
	}
	data, err := json.Marshal(cmd)
	if err != nil {
		return proposeResp{}, err
	}
	f := c.raft.Apply(data, c.enqueueTimeout(ctx))
	if err := c.await(ctx, f); err != nil {
		return proposeResp{}, err
	}
	res, _ := f.Response().(result)
	return proposeResp{Index: f.Index(), Result: res}, nil
}

func (c *Cluster) enqueueTimeout(ctx context.Context) time.Duration {
	if dl, ok := ctx.Deadline(); ok {
		return max(time.Until(dl), time.Millisecond)
	}
	return c.cfg.LeaseTTL
}

// await waits for a raft future, mapping raft's errors to ours.
func (c *Cluster) await(ctx context.Context, f raft.Future) error {
	done := make(chan error, 1)
	c.futureStarted()
	go func() {
		defer c.futureDone()
		done <- f.Error()
	}()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrAbortedByRestore):
		return fmt.Errorf("%w: %w", ErrNoLeader, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%w: %w", ErrClosed, err)
	default:
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
}

// futureStarted and futureDone count the raft futures being waited on.
// Raft never resolves a future whose entry was committed but not applied
// when it shuts down, so teardown lets them finish first (bounded).
func (c *Cluster) futureStarted() {
	c.mu.Lock()
	if c.futures == 0 {
		c.futuresIdle = make(chan struct{})
	}
	c.futures++
	c.mu.Unlock()
}

func (c *Cluster) futureDone() {
	c.mu.Lock()
	c.futures--
	if c.futures == 0 {
		close(c.futuresIdle)
	}
	c.mu.Unlock()
}

// waitFutures waits until no raft future is pending, at most d.
func (c *Cluster) waitFutures(d time.Duration) {
	c.mu.Lock()
	if c.futures == 0 {
		c.mu.Unlock()
		return
	}
	idle := c.futuresIdle
	c.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-idle:
	case <-t.C:
		c.log.Debug("cluster closing with raft futures pending")
	}
}

func (c *Cluster) isMember(name string) (bool, error) {
	f := c.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return false, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == name {
			return true, nil
		}
	}
	return false, nil
}
