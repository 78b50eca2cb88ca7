package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
)

// The API's cluster-wide operations: a node runs an operation (Sora's
// DisconnectChannel, PushChannel, ...) on itself and on every other node of
// the cluster through the RPC, and each node runs it on its own
// connections only.

// maxTarget bounds an x-sora-target carried over the RPC.
const maxTarget = 128

// APIHandler runs an API operation that another node fans out, on this node
// only, and returns the API's HTTP status and JSON body.
type APIHandler func(ctx context.Context, target string, body []byte) (status int, resp []byte)

// PeerAnswer is one node's answer to a fanned-out API operation: its HTTP
// status and body, or the error that kept it from answering.
type PeerAnswer struct {
	Node   string
	Status int
	Body   []byte
	Err    error
}

// OnAPI registers the handler of the API operations other nodes fan out.
// Until then they are answered ErrUnavailable.
func (c *Cluster) OnAPI(h APIHandler) {
	c.mu.Lock()
	c.apiFn = h
	c.mu.Unlock()
}

func (c *Cluster) serveAPI(ctx context.Context, q *apiReq) (apiResp, error) {
	c.mu.Lock()
	h := c.apiFn
	c.mu.Unlock()
	if h == nil {
		return apiResp{}, fmt.Errorf("%w: the API is not attached yet", ErrUnavailable)
	}
	status, body := h(ctx, q.Target, q.Body)
	return apiResp{Status: status, Body: body}, nil
}

// Fanout runs an API operation on every other node of the table that has
// registered its RPC address and is not expired, at the same time, and
// returns their answers (in no particular order) once all have answered or
// ctx has ended.
func (c *Cluster) Fanout(ctx context.Context, target string, body []byte) []PeerAnswer {
	type peer struct{ name, addr string }
	var peers []peer
	c.mu.Lock()
	for name, n := range c.tab.Nodes {
		if name != c.cfg.NodeName && n.RPCAddr != "" && !n.Expired {
			peers = append(peers, peer{name, n.RPCAddr})
		}
	}
	c.mu.Unlock()
	req := apiReq{Target: target, Body: body}
	if len(body) == 0 {
		req.Body = json.RawMessage("{}")
	}
	out := make([]PeerAnswer, len(peers))
	var wg sync.WaitGroup
	for i, p := range peers {
		wg.Go(func() {
			var resp apiResp
			err := c.call(ctx, p.addr, pathAPI, req, &resp, "")
			out[i] = PeerAnswer{Node: p.name, Status: resp.Status, Body: resp.Body, Err: err}
		})
	}
	wg.Wait()
	return out
}

// check checks a fanned-out operation and puts its body in the compact
// form json.Marshal writes.
func (q *apiReq) check() error {
	if q.Target == "" || len(q.Target) > maxTarget {
		return fmt.Errorf("target of %d bytes", len(q.Target))
	}
	if len(q.Body) > 0 {
		b, err := json.Marshal(q.Body)
		if err != nil {
			return err
		}
		q.Body = b
	}
	if len(q.Body) == 0 || q.Body[0] != '{' {
		return fmt.Errorf("body is not a JSON object")
	}
	return nil
}
