package webhook

import "errors"

// Sentinel errors of webhook calls.
var (
	// ErrTimeout is a receiver that did not answer within webhook_response_timeout.
	ErrTimeout = errors.New("webhook: timeout")
	// ErrUnreachable is a receiver that could not be reached.
	ErrUnreachable = errors.New("webhook: receiver unreachable")
	// ErrStatus is an answer whose HTTP status is not 2xx.
	ErrStatus = errors.New("webhook: non-2xx status")
	// ErrBadResponse is a 2xx answer whose body is not a valid auth decision.
	ErrBadResponse = errors.New("webhook: invalid response body")
)
