package signal

import (
	"sync"
	"time"

	"github.com/gobwas/ws"
)

// Writing to a client.
//
// Before admission only the reader writes (a refusal's close frame). After
// admission any goroutine may queue a frame (queue) or ask for the close
// (requestClose); a writer goroutine runs only while there is something to
// write, so an idle connection has none. Frames are written in queue order,
// the close frame last. Keepalive pings come from the hub's keepalive loop.

// writer is a connection's outbound queue.
type writer struct {
	mu      sync.Mutex
	q       []outFrame
	spare   []outFrame
	running bool // a flush goroutine is writing
	closing bool // the close frame is due after the queue
	done    bool // the close frame is written or the socket is dead
	// finished is closed once the writer is done.
	finished chan struct{}
	once     sync.Once
}

// queue queues a frame for the client without blocking. A client too slow
// to keep fewer than outQueueLen frames waiting is closed with 4429.
func (c *Conn) queue(f outFrame) {
	w := &c.w
	w.mu.Lock()
	if w.done || w.closing {
		w.mu.Unlock()
		return
	}
	if len(w.q) >= outQueueLen {
		w.mu.Unlock()
		c.requestClose(ErrQueueFull)
		return
	}
	w.q = append(w.q, f)
	start := !w.running
	w.running = true
	w.mu.Unlock()
	if start {
		go c.flush()
	}
}

// flush writes the queue, then the close frame if one is due, and ends
// when nothing is left.
func (c *Conn) flush() {
	w := &c.w
	for {
		w.mu.Lock()
		if len(w.q) == 0 {
			if !w.closing {
				w.running = false
				w.mu.Unlock()
				return
			}
			w.mu.Unlock()
			if e := c.closeRequested(); e != nil && e.Code != 0 {
				c.writeClose(e)
			}
			// Give the reader closeGrace to read the client's reply.
			c.nc.SetReadDeadline(time.Now().Add(closeGrace))
			c.finishWrites()
			return
		}
		frames := w.q
		w.q, w.spare = w.spare[:0], nil
		w.mu.Unlock()
		for i, f := range frames {
			if err := c.write(f.op, f.data); err != nil {
				c.nc.Close()
				c.finishWrites()
				return
			}
			frames[i] = outFrame{}
		}
		w.mu.Lock()
		if w.spare == nil {
			w.spare = frames[:0]
		}
		w.mu.Unlock()
	}
}

// finishWrites marks the writer done; nothing is written after it.
func (c *Conn) finishWrites() {
	w := &c.w
	w.once.Do(func() {
		w.mu.Lock()
		w.done, w.running, w.q = true, false, nil
		w.mu.Unlock()
		close(w.finished)
	})
}

// requestClose asks for the connection to be closed with e; the first
// request wins. Before admission it wakes the reader, which writes the
// close itself; after, the close frame follows the queued frames.
func (c *Conn) requestClose(e *CloseError) {
	c.closeMu.Lock()
	first := c.closeErr == nil
	if first {
		c.closeErr = e
	}
	detached := c.dc != nil && c.dc.detached.Load()
	live := c.live.Load() // ordered with admit's going live by closeMu
	c.closeMu.Unlock()
	if !first {
		return
	}
	if detached {
		c.closeDetached(e) // no WebSocket left: the DataChannels carry the close
		return
	}
	if !live {
		// Not admitted yet: the reader writes the close itself, or, if
		// the admission is already committing, admit carries it out.
		c.nc.SetReadDeadline(time.Now())
		return
	}
	c.startClosing()
}

// startClosing makes the writer write the close frame after the queued
// frames, starting it if it is idle.
func (c *Conn) startClosing() {
	w := &c.w
	w.mu.Lock()
	if w.done {
		w.mu.Unlock()
		return
	}
	w.closing = true
	start := !w.running
	w.running = true
	w.mu.Unlock()
	if start {
		go c.flush()
	}
}

func (c *Conn) closeRequested() *CloseError {
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	return c.closeErr
}

// write writes one frame; callers are serialised (the reader before
// admission, the flush goroutine after).
func (c *Conn) write(op ws.OpCode, data []byte) error {
	c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	return writeFrame(c.nc, op, data)
}

func (c *Conn) writeClose(e *CloseError) {
	_ = c.write(ws.OpClose, closePayload(e.Code, e.Reason))
}

// pongDirect answers a WebSocket ping before admission, when the reader is
// the only writer.
func (c *Conn) pongDirect(p []byte) { _ = c.write(ws.OpPong, append([]byte(nil), p...)) }

// pongQueued answers a WebSocket ping through the queue.
func (c *Conn) pongQueued(p []byte) {
	c.queue(outFrame{op: ws.OpPong, data: append([]byte(nil), p...)})
}

// keepalive is the hub's one timer for every connection (Sora's ping):
// every ping interval it closes the connections whose last pong is older
// than the pong timeout (4408 PONG-TIMEOUT) and pings the others. A tick
// that comes late means the node itself stalled (GC, a starved CPU,
// SIGSTOP): the pongs sent meanwhile may not have been read yet, so a
// client's silence is counted from the end of the stall at the earliest,
// and it is not closed for the node's own silence.
func (h *Hub) keepalive() {
	t := time.NewTicker(h.set.PingInterval)
	defer t.Stop()
	var conns []*Conn
	last := time.Now()
	var resumed int64 // the end of the node's last stall (ns)
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		if now.Sub(last) > h.set.PingInterval+max(h.set.PingInterval, keepaliveLate) {
			resumed = now.UnixNano()
		}
		last = now
		h.mu.Lock()
		conns = conns[:0]
		for _, c := range h.conns {
			conns = append(conns, c)
		}
		h.mu.Unlock()
		for _, c := range conns {
			if c.dc != nil && c.dc.detached.Load() {
				continue // no WebSocket to ping; ICE consent tells liveness
			}
			heard := max(c.lastPong.Load(), resumed)
			if now.Sub(time.Unix(0, heard)) > h.set.PongTimeout {
				c.requestClose(ErrPongTimeout)
				continue
			}
			c.queue(outText(pingJSON))
		}
		clear(conns)
	}
}

// keepaliveLate is how late a keepalive tick may come (beyond one more
// interval) before it counts as a node stall.
const keepaliveLate = 250 * time.Millisecond
