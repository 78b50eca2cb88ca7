package webhook

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"time"
)

// Queue sends events of one kind (session or event webhooks) to one URL.
//
// # Order
//
// Every event has a key: the channel for session webhooks, the connection
// for event webhooks. Events of one key are delivered one at a time, in the
// order they were queued, each after the one before it was delivered or
// finally failed (retries included). Events of different keys go out in
// parallel on the queue's senders, so a slow receiver of one key's event
// holds up that key only: a sender takes the next key that has an event
// waiting, in the order the keys became ready.
//
// SendAfterAll queues an event that goes out only after every event queued
// before it has been delivered, finally failed or been dropped
// (session.vanished after the session.destroyed events that drained the
// node).
//
// # Bounds
//
// At most size events wait (in flight ones excluded); beyond that Send
// drops the event and counts it as ignored. A failed delivery (an error, a
// timeout, a non-2xx answer) is tried again up to retries times, waiting
// retryWait, then twice as long each time; the event keeps its id, so a
// receiver can tell a retry from a new event.
type Queue struct {
	name      string
	url       string
	timeout   time.Duration
	retries   int
	retryWait time.Duration
	client    *http.Client
	log       *slog.Logger
	wg        sync.WaitGroup

	sizeLimit int // most events waiting

	mu      sync.Mutex
	keys    map[string]*keyQueue // keys with events waiting or in flight
	ready   []*keyQueue          // keys with an event waiting and none in flight, FIFO
	waiting int                  // events queued, not in flight
	// inFlight holds the events queued and not yet finished (for
	// SendAfterAll's barriers).
	inFlight map[*event]struct{}
	wake     chan struct{} // signalled when a key becomes ready or on stop
	stopped  bool
	stopping chan struct{}

	// Counters are read by the stats report.
	Counters Counters
}

// keyQueue is the events of one key, oldest first; busy while its head is
// being delivered.
type keyQueue struct {
	key    string
	events []*event
	busy   bool
}

// event is one webhook body; barriers are the SendAfterAll events waiting
// for it to finish.
type event struct {
	body     []byte
	barriers []*barrier
	// then, if set, gets the receiver's answer to a delivered event.
	then func(answer []byte)
}

// barrier is a SendAfterAll event and the number of events before it that
// have not finished.
type barrier struct {
	body    []byte
	pending int
}

// Options configure a Queue.
type Options struct {
	// Workers is the number of senders, Size the most events waiting.
	Workers, Size int
	// Timeout bounds one delivery attempt.
	Timeout time.Duration
	// Retries is how often a failed delivery is tried again; RetryWait the
	// wait before the first retry (doubled each time).
	Retries   int
	RetryWait time.Duration
}

// NewQueue starts opt.Workers senders for url. name is used in logs
// ("session" or "event"). A Queue with an empty url sends nothing: Send
// reports false and counts nothing.
func NewQueue(name, url string, opt Options, log *slog.Logger) *Queue {
	q := &Queue{
		name: name, url: url, timeout: opt.Timeout, retries: opt.Retries, retryWait: opt.RetryWait, log: log,
		keys: map[string]*keyQueue{}, inFlight: map[*event]struct{}{},
		wake: make(chan struct{}, 1), stopping: make(chan struct{}),
	}
	if url == "" {
		return q
	}
	q.client = newHTTPClient(opt.Workers)
	q.sizeLimit = max(opt.Size, 1)
	for range max(opt.Workers, 1) {
		q.wg.Add(1)
		go q.worker()
	}
	return q
}

// Enabled reports whether the queue has a URL to send to.
func (q *Queue) Enabled() bool { return q.url != "" }

// Send queues payload (any JSON-marshalable value) as the last event of
// key, without blocking. It reports false when the queue is disabled,
// stopped or full; a full or stopped queue counts the event as ignored.
func (q *Queue) Send(key string, payload any) bool { return q.SendThen(key, payload, nil) }

// SendThen is Send, and then, if the event is delivered, calls then with
// the receiver's answer (a 2xx body, at most 1 MiB) on the sender
// goroutine, before the key's next event goes out. Sora reads payouts from
// the session.created answer this way.
func (q *Queue) SendThen(key string, payload any, then func(answer []byte)) bool {
	return q.enqueue(payload, func(body []byte) {
		ev := &event{body: body, then: then}
		q.inFlight[ev] = struct{}{}
		q.pushLocked(key, ev)
	})
}

// SendAfterAll queues payload to go out once every event queued before it
// has been delivered, has finally failed or was dropped. It reports false
// when the queue is disabled, stopped or full.
func (q *Queue) SendAfterAll(payload any) bool {
	return q.enqueue(payload, func(body []byte) {
		b := &barrier{body: body, pending: len(q.inFlight)}
		for ev := range q.inFlight {
			ev.barriers = append(ev.barriers, b)
		}
		if b.pending == 0 {
			q.releaseLocked(b)
		}
	})
}

// enqueue encodes payload and, if the queue takes it, hands the body to
// add with the queue locked.
func (q *Queue) enqueue(payload any, add func(body []byte)) bool {
	body, ok := q.marshal(payload)
	if !ok {
		return false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.admitLocked() {
		return false
	}
	add(body)
	return true
}

// marshal encodes payload, or counts it as ignored if it does not encode.
func (q *Queue) marshal(payload any) ([]byte, bool) {
	if q.url == "" {
		return nil, false
	}
	body, err := json.Marshal(payload)
	if err != nil {
		q.log.Error("webhook payload does not marshal", "webhook", q.name, "err", err)
		q.Counters.Ignored.Add(1)
		return nil, false
	}
	return body, true
}

// admitLocked counts an event in, or refuses it (counted as ignored) when
// the queue is stopped or full.
func (q *Queue) admitLocked() bool {
	if q.stopped {
		q.Counters.Ignored.Add(1)
		return false
	}
	if q.waiting >= q.sizeLimit {
		q.Counters.Ignored.Add(1)
		q.log.Warn("webhook queue full, event dropped", "webhook", q.name, "size", q.sizeLimit)
		return false
	}
	q.waiting++
	q.Counters.Queued.Add(1)
	return true
}

// pushLocked appends ev to key's events; a key that was idle becomes ready.
func (q *Queue) pushLocked(key string, ev *event) {
	kq := q.keys[key]
	if kq == nil {
		kq = &keyQueue{key: key}
		q.keys[key] = kq
	}
	kq.events = append(kq.events, ev)
	if !kq.busy && len(kq.events) == 1 {
		q.ready = append(q.ready, kq)
		q.signal()
	}
}

// releaseLocked queues a barrier's event once nothing before it is left;
// it is an event of its own, after which later barriers may wait.
func (q *Queue) releaseLocked(b *barrier) {
	ev := &event{body: b.body}
	q.inFlight[ev] = struct{}{}
	q.pushLocked("\x00after-all", ev)
}

func (q *Queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// worker delivers events until the queue stops and nothing is left.
//
// It wakes for: a key becoming ready, the stop (then it drains what is
// left; Close bounds how long).
func (q *Queue) worker() {
	defer q.wg.Done()
	for {
		q.mu.Lock()
		var kq *keyQueue
		var ev *event
		if len(q.ready) > 0 {
			kq = q.ready[0]
			q.ready[0] = nil
			q.ready = q.ready[1:]
			kq.busy = true
			ev = kq.events[0]
			q.waiting--
		}
		stopped := q.stopped
		more := len(q.ready) > 0
		q.mu.Unlock()
		if kq == nil {
			if stopped && q.drained() {
				return
			}
			select {
			case <-q.wake:
			case <-q.stopping:
				// Drain: deliveries still in flight may make keys ready.
				q.waitALittle()
			}
			continue
		}
		if more {
			q.signal() // another sender may take the next key
		}
		answer, ok := q.deliver(ev.body)
		if ok && ev.then != nil {
			ev.then(answer)
		}
		q.mu.Lock()
		kq.events[0] = nil
		kq.events = kq.events[1:]
		kq.busy = false
		if len(kq.events) > 0 {
			q.ready = append(q.ready, kq)
			q.signal()
		} else {
			delete(q.keys, kq.key)
		}
		q.finishLocked(ev)
		q.mu.Unlock()
		if ok {
			q.Counters.Successful.Add(1)
		} else {
			q.Counters.Failed.Add(1)
		}
	}
}

// finishLocked retires a delivered or failed event: barriers waiting for
// it move on.
func (q *Queue) finishLocked(ev *event) {
	delete(q.inFlight, ev)
	for _, b := range ev.barriers {
		if b.pending--; b.pending == 0 {
			q.releaseLocked(b)
		}
	}
	ev.barriers = nil
}

// drained reports whether nothing is waiting or in flight.
func (q *Queue) drained() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.inFlight) == 0
}

// waitALittle paces a stopped worker that found nothing ready while other
// deliveries are still in flight.
func (q *Queue) waitALittle() {
	t := time.NewTimer(5 * time.Millisecond)
	defer t.Stop()
	select {
	case <-q.wake:
	case <-t.C:
	}
}

// deliver sends one body, retrying a failure, and reports whether it was
// delivered.
func (q *Queue) deliver(body []byte) ([]byte, bool) {
	wait := q.retryWait
	for attempt := 0; ; attempt++ {
		ctx, cancel := context.WithTimeout(context.Background(), q.timeout)
		answer, err := post(ctx, q.client, q.url, body, nil)
		cancel()
		if err == nil {
			return answer, true
		}
		if attempt >= q.retries {
			q.log.Warn("webhook failed", "webhook", q.name, "attempts", attempt+1, "err", err)
			return nil, false
		}
		q.log.Info("webhook failed, retrying", "webhook", q.name, "attempt", attempt+1, "retry_in", wait.String(), "err", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-q.stopping:
			t.Stop()
			q.log.Warn("webhook failed, not retried: stopping", "webhook", q.name, "err", err)
			return nil, false
		}
		wait *= 2
	}
}

// CloseIdleConnections closes the queue's idle keep-alive connections.
func (q *Queue) CloseIdleConnections() {
	if q.client != nil {
		q.client.CloseIdleConnections()
	}
}

// Idle reports whether every queued event has been sent or has failed.
func (q *Queue) Idle() bool {
	c := &q.Counters
	return c.Successful.Load()+c.Failed.Load() >= c.Queued.Load()
}

// Close stops accepting events, sends what is queued and waits for the
// senders, at most until ctx ends. Events still queued then are counted as
// ignored.
func (q *Queue) Close(ctx context.Context) {
	q.mu.Lock()
	if q.stopped {
		q.mu.Unlock()
		return
	}
	q.stopped = true
	close(q.stopping)
	q.mu.Unlock()
	if q.url == "" {
		return
	}
	done := make(chan struct{})
	go func() { q.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		q.mu.Lock()
		left := len(q.inFlight)
		q.mu.Unlock()
		q.Counters.Ignored.Add(uint64(left))
		q.log.Warn("webhook queue not drained at shutdown", "webhook", q.name, "left", left)
	}
}
