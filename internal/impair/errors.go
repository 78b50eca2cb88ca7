package impair

import "errors"

// ErrClosed is returned by operations on a closed relay.
var ErrClosed = errors.New("impair: relay closed")
