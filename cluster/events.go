package cluster

import "sync"

// dispatcher runs callbacks (OnHealthMode, OnFenced) one at a time, in the
// order they were queued, on its own goroutine, so that the code that
// detects a change never calls out while it holds the node's lock.
type dispatcher struct {
	mu     sync.Mutex
	q      []func()
	wake   chan struct{}
	closed bool
	done   chan struct{}
}

func newDispatcher() *dispatcher {
	d := &dispatcher{wake: make(chan struct{}, 1), done: make(chan struct{})}
	go d.run()
	return d
}

// post queues f. It never blocks.
func (d *dispatcher) post(f func()) {
	d.mu.Lock()
	if !d.closed {
		d.q = append(d.q, f)
	}
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// close runs what is queued and stops the goroutine.
func (d *dispatcher) close() {
	d.mu.Lock()
	d.closed = true
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
	<-d.done
}

func (d *dispatcher) run() {
	defer close(d.done)
	for range d.wake {
		for {
			d.mu.Lock()
			q := d.q
			d.q = nil
			closed := d.closed
			d.mu.Unlock()
			for _, f := range q {
				f()
			}
			if len(q) == 0 {
				if closed {
					return
				}
				break
			}
		}
	}
}
