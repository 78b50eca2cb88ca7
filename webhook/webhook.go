// Package webhook sends Sora's webhooks (https://sora-doc.shiguredo.jp/WEBHOOK):
// the synchronous auth webhook, and session and event webhooks through a
// bounded queue with a fixed number of senders.
//
// A webhook is an HTTP/1.1 POST of a JSON object. The auth webhook decides a
// connect, so signaling waits for it, but never longer than
// webhook_response_timeout. Session and event webhooks never make signaling
// wait: when a receiver is slow or down the queue fills, and further events
// are dropped and counted (Sora's total_ignored_*_webhook counters).
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	neturl "net/url"
	"sync"
	"sync/atomic"
	"time"
)

// maxResponseBytes bounds the body read from any webhook receiver.
const maxResponseBytes = 1 << 20

// Counters count webhook outcomes, with Sora's meaning: successful (2xx),
// failed (error, timeout, non-2xx) and ignored (dropped before sending).
type Counters struct {
	// Queued counts events accepted into a queue (not used by Auth).
	Queued     atomic.Uint64
	Successful atomic.Uint64
	Failed     atomic.Uint64
	Ignored    atomic.Uint64
}

// newHTTPClient returns the client used for every webhook: no proxy from
// the environment, keep-alive, and a per-request timeout set by the caller.
func newHTTPClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          conns,
		MaxIdleConnsPerHost:   conns,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 0,
	}}
}

// post sends body to url and returns the response body of a 2xx answer.
func post(ctx context.Context, client *http.Client, url string, body []byte, header http.Header) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: bad URL", ErrUnreachable, Redact(url))
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, ErrTimeout
		}
		return nil, fmt.Errorf("%w: %s: %v", ErrUnreachable, Redact(url), cause(err)) //nolint:errorlint // classify, keep text
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, ErrTimeout
		}
		return nil, fmt.Errorf("%w: %s: reading body: %v", ErrUnreachable, Redact(url), cause(err)) //nolint:errorlint // classify
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("%w: %s: %d", ErrStatus, Redact(url), resp.StatusCode)
	}
	if len(data) > maxResponseBytes {
		return nil, fmt.Errorf("%w: response over %d bytes", ErrBadResponse, maxResponseBytes)
	}
	return data, nil
}

// Redact returns a webhook URL fit for logs: scheme, host and path, without
// user information or query, where credentials often sit.
func Redact(raw string) string {
	u, err := neturl.Parse(raw)
	if err != nil {
		return "<unparsable URL>"
	}
	return u.Scheme + "://" + u.Host + u.EscapedPath()
}

// cause strips the URL net/http puts in its errors (*url.Error).
func cause(err error) error {
	var ue *neturl.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// Queue sends events of one kind (session or event webhooks) to one URL.
type Queue struct {
	name    string
	url     string
	timeout time.Duration
	client  *http.Client
	log     *slog.Logger
	ch      chan []byte
	wg      sync.WaitGroup
	stop    chan struct{}
	once    sync.Once
	// Counters are read by the stats report.
	Counters Counters
}

// NewQueue starts workers senders for url with a queue of size events. name
// is used in logs ("session" or "event"). A Queue with an empty url drops
// nothing and sends nothing: Send reports false and counts nothing.
func NewQueue(name, url string, workers, size int, timeout time.Duration, log *slog.Logger) *Queue {
	q := &Queue{name: name, url: url, timeout: timeout, log: log, stop: make(chan struct{})}
	if url == "" {
		return q
	}
	q.client = newHTTPClient(workers)
	q.ch = make(chan []byte, size)
	for range workers {
		q.wg.Add(1)
		go q.worker()
	}
	return q
}

// Enabled reports whether the queue has a URL to send to.
func (q *Queue) Enabled() bool { return q.url != "" }

// Send queues payload (any JSON-marshalable value) without blocking. It
// reports false when the queue is disabled or full; a full queue counts the
// event as ignored.
func (q *Queue) Send(payload any) bool {
	if q.url == "" {
		return false
	}
	body, err := json.Marshal(payload)
	if err != nil {
		q.log.Error("webhook payload does not marshal", "webhook", q.name, "err", err)
		q.Counters.Ignored.Add(1)
		return false
	}
	select {
	case <-q.stop:
		q.Counters.Ignored.Add(1)
		return false
	default:
	}
	select {
	case q.ch <- body:
		q.Counters.Queued.Add(1)
		return true
	default:
		q.Counters.Ignored.Add(1)
		q.log.Warn("webhook queue full, event dropped", "webhook", q.name)
		return false
	}
}

func (q *Queue) worker() {
	defer q.wg.Done()
	for {
		select {
		case body := <-q.ch:
			q.deliver(body)
		case <-q.stop:
			// Drain what is queued; Close bounds how long this may take.
			for {
				select {
				case body := <-q.ch:
					q.deliver(body)
				default:
					return
				}
			}
		}
	}
}

func (q *Queue) deliver(body []byte) {
	ctx, cancel := context.WithTimeout(context.Background(), q.timeout)
	defer cancel()
	if _, err := post(ctx, q.client, q.url, body, nil); err != nil {
		q.Counters.Failed.Add(1)
		q.log.Warn("webhook failed", "webhook", q.name, "err", err)
		return
	}
	q.Counters.Successful.Add(1)
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
	q.once.Do(func() { close(q.stop) })
	if q.url == "" {
		return
	}
	done := make(chan struct{})
	go func() { q.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		q.Counters.Ignored.Add(uint64(len(q.ch)))
		q.log.Warn("webhook queue not drained at shutdown", "webhook", q.name, "left", len(q.ch))
	}
}
