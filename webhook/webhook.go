// Package webhook sends Sora's webhooks (https://sora-doc.shiguredo.jp/WEBHOOK):
// the synchronous auth webhook, and session and event webhooks through a
// bounded queue with a fixed number of senders (queue.go).
//
// A webhook is an HTTP/1.1 POST of a JSON object. The auth webhook decides a
// connect, so signaling waits for it, but never longer than
// webhook_response_timeout. Session and event webhooks never make signaling
// wait: when a receiver is slow or down the queue fills, and further events
// are dropped and counted (Sora's total_ignored_*_webhook counters). Events
// of one key (a channel's session webhooks, a connection's event webhooks)
// are delivered one after another in the order they were queued.
package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	neturl "net/url"
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
