package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hayate-sfu/hayate/internal/poll"
)

// receiver is a real HTTP webhook receiver that records bodies in arrival
// order; answer decides each answer's delay and status.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	got    []testEvent
	answer func(ev testEvent, attempt int) (time.Duration, int)
	seen   map[string]int // attempts per event id
}

type testEvent struct {
	ID  string `json:"id"`
	Key string `json:"key"`
	Seq int    `json:"seq"`
}

func newReceiver(t testing.TB, answer func(ev testEvent, attempt int) (time.Duration, int)) *receiver {
	r := &receiver{answer: answer, seen: map[string]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var ev testEvent
		data, _ := io.ReadAll(req.Body)
		_ = json.Unmarshal(data, &ev)
		r.mu.Lock()
		r.seen[ev.ID]++
		attempt := r.seen[ev.ID]
		r.mu.Unlock()
		d, status := 0*time.Second, http.StatusOK
		if r.answer != nil {
			d, status = r.answer(ev, attempt)
		}
		time.Sleep(d) // the receiver's own slowness: what the test is about
		if status == http.StatusOK {
			r.mu.Lock()
			r.got = append(r.got, ev)
			r.mu.Unlock()
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) events() []testEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]testEvent(nil), r.got...)
}

func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newTestQueue(t testing.TB, url string, opt Options) *Queue {
	if opt.Timeout == 0 {
		opt.Timeout = poll.Patience
	}
	q := NewQueue("test", url, opt, quietLog())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), poll.Patience)
		defer cancel()
		q.Close(ctx)
	})
	return q
}

// inOrder checks that the events of every key arrived in sequence.
func inOrder(t *testing.T, got []testEvent) {
	t.Helper()
	next := map[string]int{}
	for _, ev := range got {
		if ev.Seq != next[ev.Key] {
			t.Fatalf("key %s: event %d arrived when %d was due", ev.Key, ev.Seq, next[ev.Key])
		}
		next[ev.Key]++
	}
}

// TestQueueKeepsOrderPerKey: with a receiver that answers after a random
// delay and several senders, the events of each key arrive in the order
// they were sent, and all of them arrive.
func TestQueueKeepsOrderPerKey(t *testing.T) {
	r := newReceiver(t, func(testEvent, int) (time.Duration, int) {
		return time.Duration(rand.IntN(20)) * time.Millisecond, http.StatusOK
	})
	q := newTestQueue(t, r.srv.URL, Options{Workers: 8, Size: 4096})
	// Few keys, many events each: a sender free while a key's event is in
	// flight would take the same key's next one if order were not kept.
	const keys, per = 5, 60
	for s := range per {
		for k := range keys {
			q.Send(fmt.Sprint(k), testEvent{ID: fmt.Sprintf("%d-%d", k, s), Key: fmt.Sprint(k), Seq: s})
		}
	}
	poll.Soon(t, "every event delivered", func() bool { return len(r.events()) == keys*per })
	inOrder(t, r.events())
	poll.Soon(t, "the deliveries counted", q.Idle)
	if c := &q.Counters; c.Successful.Load() != keys*per || c.Failed.Load() != 0 || c.Ignored.Load() != 0 {
		t.Fatalf("counters: %d ok, %d failed, %d ignored", c.Successful.Load(), c.Failed.Load(), c.Ignored.Load())
	}
}

// TestQueueSlowKeyHoldsOnlyItself: a key whose receiver hangs does not
// hold up the others: they are delivered while it still waits.
func TestQueueSlowKeyHoldsOnlyItself(t *testing.T) {
	release := make(chan struct{})
	r := newReceiver(t, func(ev testEvent, _ int) (time.Duration, int) {
		if ev.Key == "slow" {
			<-release
		}
		return 0, http.StatusOK
	})
	q := newTestQueue(t, r.srv.URL, Options{Workers: 2, Size: 1024})
	t.Cleanup(func() { close(release) }) // runs first: the queue and the server then close at once
	q.Send("slow", testEvent{ID: "s0", Key: "slow", Seq: 0})
	q.Send("slow", testEvent{ID: "s1", Key: "slow", Seq: 1})
	for i := range 20 {
		q.Send(fmt.Sprint(i), testEvent{ID: fmt.Sprint(i), Key: fmt.Sprint(i)})
	}
	poll.Soon(t, "the other keys delivered", func() bool { return len(r.events()) == 20 })
}

// TestQueueRetriesKeepOrder: a failed delivery is retried with the same id,
// and the key's next event waits for it.
func TestQueueRetriesKeepOrder(t *testing.T) {
	r := newReceiver(t, func(ev testEvent, attempt int) (time.Duration, int) {
		if ev.Seq == 0 && attempt < 3 {
			return 0, http.StatusServiceUnavailable
		}
		return 0, http.StatusOK
	})
	q := newTestQueue(t, r.srv.URL, Options{Workers: 4, Size: 64, Retries: 2, RetryWait: 10 * time.Millisecond})
	for s := range 3 {
		q.Send("k", testEvent{ID: fmt.Sprint("k", s), Key: "k", Seq: s})
	}
	poll.Soon(t, "three events delivered", func() bool { return len(r.events()) == 3 })
	inOrder(t, r.events())
	poll.Soon(t, "the deliveries counted", q.Idle)
	r.mu.Lock()
	attempts := r.seen["k0"]
	r.mu.Unlock()
	if attempts != 3 || q.Counters.Successful.Load() != 3 || q.Counters.Failed.Load() != 0 {
		t.Fatalf("attempts of the first event %d (want 3), counters ok %d failed %d",
			attempts, q.Counters.Successful.Load(), q.Counters.Failed.Load())
	}
	// Out of retries: counted as failed once, and the key goes on.
	r.answer = nil
	q2 := newTestQueue(t, "http://127.0.0.1:1/unreachable", Options{Workers: 1, Size: 8, Retries: 1, RetryWait: time.Millisecond})
	q2.Send("k", testEvent{ID: "x"})
	poll.Soon(t, "the failure counted", func() bool { return q2.Counters.Failed.Load() == 1 })
}

// TestQueueAfterAll: an event sent with SendAfterAll arrives after every
// event sent before it, whatever their keys and delays, and before none it
// did not wait for.
func TestQueueAfterAll(t *testing.T) {
	r := newReceiver(t, func(ev testEvent, _ int) (time.Duration, int) {
		if ev.Key == "slow" {
			return 200 * time.Millisecond, http.StatusOK
		}
		return time.Duration(rand.IntN(10)) * time.Millisecond, http.StatusOK
	})
	q := newTestQueue(t, r.srv.URL, Options{Workers: 8, Size: 1024})
	q.Send("slow", testEvent{ID: "slow", Key: "slow"})
	for i := range 30 {
		q.Send(fmt.Sprint(i), testEvent{ID: fmt.Sprint(i), Key: fmt.Sprint(i)})
	}
	q.SendAfterAll(testEvent{ID: "after", Key: "after"})
	poll.Soon(t, "everything delivered", func() bool { return len(r.events()) == 32 })
	if got := r.events(); got[len(got)-1].ID != "after" {
		t.Fatalf("the after-all event arrived at %v", got)
	}
	// With nothing pending it goes at once.
	q.SendAfterAll(testEvent{ID: "alone", Key: "after"})
	poll.Soon(t, "the lone after-all event", func() bool { return len(r.events()) == 33 })
}

// TestQueueFullDrops: beyond Size waiting events, Send drops and counts;
// the events kept still go out, in order.
func TestQueueFullDrops(t *testing.T) {
	release := make(chan struct{})
	var held atomic.Bool
	r := newReceiver(t, func(ev testEvent, _ int) (time.Duration, int) {
		if ev.ID == "block" {
			held.Store(true)
			<-release
		}
		return 0, http.StatusOK
	})
	q := newTestQueue(t, r.srv.URL, Options{Workers: 1, Size: 3})
	t.Cleanup(func() { close(release) }) // runs first: the queue and the server then close at once
	q.Send("b", testEvent{ID: "block", Key: "b"})
	poll.Soon(t, "the only sender busy", func() bool { return held.Load() })
	ok := 0
	for s := range 5 {
		if q.Send("k", testEvent{ID: fmt.Sprint(s), Key: "k", Seq: s}) {
			ok++
		}
	}
	if ok != 3 || q.Counters.Ignored.Load() != 2 {
		t.Fatalf("%d queued, %d ignored; want 3 and 2", ok, q.Counters.Ignored.Load())
	}
}
