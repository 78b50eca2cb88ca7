package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"

	"github.com/hashicorp/raft"
)

// testNet is a network that can cut a node off: its live connections are
// closed, its dials and dials to it fail, and new accepts are dropped. The
// cut flag is checked under the same lock that tracks connections, so a dial
// in progress cannot survive a cut (docs/spec/cluster.md §3.7, the prototype's lesson).
//
// With mem set, connections are net.Pipe pairs instead of loopback TCP (for
// synctest bubbles), and raft runs over raft.InmemTransport, which the
// network also unplugs.
type testNet struct {
	mem bool

	mu     sync.Mutex
	nodes  map[string]*netNode
	owner  map[string]string // listen address → node
	dialer map[string]string // local address of a dialed conn → node
	memLns map[string]*memListener
	seq    int
	// recs record what a node writes on connections it opens to an address
	// (below any TLS: what a wiretap sees).
	recs []*recording
}

// recording holds the bytes written on each recorded connection.
type recording struct {
	node, addr string
	mu         sync.Mutex
	streams    []*bytes.Buffer
}

// record starts recording the connections node opens to addr from now on.
func (tn *testNet) record(node, addr string) *recording {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	r := &recording{node: node, addr: addr}
	tn.recs = append(tn.recs, r)
	return r
}

// size is the number of bytes recorded so far.
func (r *recording) size() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, b := range r.streams {
		n += b.Len()
	}
	return n
}

// stop ends the recording and returns one byte stream per connection.
func (r *recording) stop(tn *testNet) [][]byte {
	tn.mu.Lock()
	tn.recs = slices.DeleteFunc(tn.recs, func(o *recording) bool { return o == r })
	tn.mu.Unlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out [][]byte
	for _, b := range r.streams {
		out = append(out, bytes.Clone(b.Bytes()))
	}
	return out
}

type recordingConn struct {
	net.Conn
	r   *recording
	buf *bytes.Buffer
}

func (c *recordingConn) Write(b []byte) (int, error) {
	c.r.mu.Lock()
	c.buf.Write(b)
	c.r.mu.Unlock()
	return c.Conn.Write(b)
}

type netNode struct {
	// in: nobody can open a connection to the node; out: the node cannot
	// open one. Raft and the RPC open a connection per direction of
	// request, so in+out is a full cut and either alone a one-way partition.
	in, out bool
	conns   map[*trackedConn]struct{}
	trans   *raft.InmemTransport
}

var errCut = errors.New("testnet: node is cut off")

func newTestNet(mem bool) *testNet {
	return &testNet{
		mem: mem, nodes: map[string]*netNode{}, owner: map[string]string{},
		dialer: map[string]string{}, memLns: map[string]*memListener{},
	}
}

func (tn *testNet) nodeLocked(name string) *netNode {
	n := tn.nodes[name]
	if n == nil {
		n = &netNode{conns: map[*trackedConn]struct{}{}}
		tn.nodes[name] = n
	}
	return n
}

// isCutLocked reports whether dialer may not open a connection to target
// ("" when unknown).
func (tn *testNet) isCutLocked(dialer, target string) bool {
	return dialer != "" && tn.nodeLocked(dialer).out || target != "" && tn.nodeLocked(target).in
}

// cut isolates node from every other node.
func (tn *testNet) cut(node string) { tn.cutDir(node, true, true) }

// cutDir blocks connections opened to node (in) and/or by node (out), and
// closes the live ones that the new rule forbids.
func (tn *testNet) cutDir(node string, in, out bool) {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	n := tn.nodeLocked(node)
	n.in, n.out = n.in || in, n.out || out
	for c := range n.conns {
		if tn.isCutLocked(c.dialer, c.target) {
			tn.dropLocked(c)
		}
	}
	tn.wireInmemLocked()
}

// heal reconnects node.
func (tn *testNet) heal(node string) {
	tn.mu.Lock()
	defer tn.mu.Unlock()
	n := tn.nodeLocked(node)
	n.in, n.out = false, false
	tn.wireInmemLocked()
}

// wireInmemLocked connects every pair of inmem transports the cut rules
// allow, per direction, and disconnects the others.
func (tn *testNet) wireInmemLocked() {
	for a, na := range tn.nodes {
		for b, nb := range tn.nodes {
			if a == b || na.trans == nil || nb.trans == nil {
				continue
			}
			if tn.isCutLocked(a, b) {
				na.trans.Disconnect(nb.trans.LocalAddr())
			} else {
				na.trans.Connect(nb.trans.LocalAddr(), nb.trans)
			}
		}
	}
}

// inmemTransport creates node's raft transport for the mem network.
func (tn *testNet) inmemTransport(node string) *raft.InmemTransport {
	_, tr := raft.NewInmemTransport(raft.ServerAddress(node + ".raft"))
	tn.mu.Lock()
	defer tn.mu.Unlock()
	tn.nodeLocked(node).trans = tr
	tn.wireInmemLocked()
	return tr
}

func (tn *testNet) dropLocked(c *trackedConn) {
	tn.untrackLocked(c)
	_ = c.Conn.Close()
}

func (tn *testNet) untrackLocked(c *trackedConn) {
	for _, o := range []string{c.dialer, c.target} {
		if o != "" {
			delete(tn.nodeLocked(o).conns, c)
		}
	}
}

// trackLocked tracks one end of a connection dialer opened to target
// (either may be "" when unknown).
func (tn *testNet) trackLocked(c net.Conn, dialer, target string) *trackedConn {
	tc := &trackedConn{Conn: c, tn: tn, dialer: dialer, target: target}
	for _, o := range []string{dialer, target} {
		if o != "" {
			tn.nodeLocked(o).conns[tc] = struct{}{}
		}
	}
	return tc
}

type trackedConn struct {
	net.Conn
	tn             *testNet
	dialer, target string
}

func (c *trackedConn) Close() error {
	c.tn.mu.Lock()
	c.tn.untrackLocked(c)
	c.tn.mu.Unlock()
	return c.Conn.Close()
}

// listen returns node's listen hook.
func (tn *testNet) listen(node string) func(addr string) (net.Listener, error) {
	return func(addr string) (net.Listener, error) {
		var inner net.Listener
		if tn.mem {
			tn.mu.Lock()
			tn.seq++
			ml := &memListener{addr: memAddr(fmt.Sprintf("%s.mem:%d", node, tn.seq)), ch: make(chan net.Conn), done: make(chan struct{})}
			tn.memLns[string(ml.addr)] = ml
			tn.mu.Unlock()
			inner = ml
		} else {
			var lc net.ListenConfig
			l, err := lc.Listen(context.Background(), "tcp", addr)
			if err != nil {
				return nil, err
			}
			inner = l
		}
		tn.mu.Lock()
		tn.owner[inner.Addr().String()] = node
		tn.mu.Unlock()
		return &cutListener{Listener: inner, tn: tn, node: node}, nil
	}
}

type cutListener struct {
	net.Listener
	tn   *testNet
	node string
}

func (l *cutListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tn := l.tn
		tn.mu.Lock()
		if tc, ok := c.(*trackedConn); ok { // mem: already tracked by the dialer
			tn.mu.Unlock()
			return tc, nil
		}
		peer := tn.dialer[c.RemoteAddr().String()]
		if tn.isCutLocked(peer, l.node) {
			tn.mu.Unlock()
			_ = c.Close()
			continue
		}
		tc := tn.trackLocked(c, peer, l.node)
		tn.mu.Unlock()
		return tc, nil
	}
}

// dial returns node's dial hook.
func (tn *testNet) dial(node string) func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		tn.mu.Lock()
		target := tn.owner[addr]
		if tn.isCutLocked(node, target) {
			tn.mu.Unlock()
			return nil, errCut
		}
		if tn.mem {
			ml := tn.memLns[addr]
			tn.mu.Unlock()
			if ml == nil {
				return nil, fmt.Errorf("testnet: nothing listens on %s", addr)
			}
			client, server := net.Pipe()
			tn.mu.Lock()
			if tn.isCutLocked(node, target) {
				tn.mu.Unlock()
				client.Close()
				server.Close()
				return nil, errCut
			}
			tc := tn.trackLocked(client, node, target)
			ts := tn.trackLocked(server, node, target)
			tn.mu.Unlock()
			select {
			case ml.ch <- ts:
				return tc, nil
			case <-ml.done:
			case <-ctx.Done():
			}
			tc.Close()
			ts.Close()
			return nil, fmt.Errorf("testnet: dial %s: refused", addr)
		}
		tn.mu.Unlock()
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		tn.mu.Lock()
		defer tn.mu.Unlock()
		if tn.isCutLocked(node, target) {
			_ = c.Close()
			return nil, errCut
		}
		tn.dialer[c.LocalAddr().String()] = node
		tc := tn.trackLocked(c, node, target)
		for _, r := range tn.recs {
			if r.node == node && r.addr == addr {
				buf := new(bytes.Buffer)
				r.mu.Lock()
				r.streams = append(r.streams, buf)
				r.mu.Unlock()
				return &recordingConn{Conn: tc, r: r, buf: buf}, nil
			}
		}
		return tc, nil
	}
}

// memListener is an in-memory listener fed by testNet.dial.
type memListener struct {
	addr memAddr
	ch   chan net.Conn
	once sync.Once
	done chan struct{}
}

func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *memListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *memListener) Addr() net.Addr { return l.addr }

type memAddr string

func (a memAddr) Network() string { return "mem" }
func (a memAddr) String() string  { return string(a) }
