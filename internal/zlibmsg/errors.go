package zlibmsg

import "errors"

// Errors of Inflate.
var (
	// ErrCorrupt is input that is not one complete zlib stream.
	ErrCorrupt = errors.New("zlibmsg: not a valid zlib stream")
	// ErrTooLarge is a stream that inflates to more than the bound.
	ErrTooLarge = errors.New("zlibmsg: inflated message over the size bound")
)
