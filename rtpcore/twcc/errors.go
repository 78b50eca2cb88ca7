package twcc

import "errors"

// Errors of Parse.
var (
	// ErrShort is a feedback shorter than its header or than its chunks
	// and deltas announce.
	ErrShort = errors.New("twcc: truncated feedback")
	// ErrBadChunk is a packet chunk with a reserved symbol.
	ErrBadChunk = errors.New("twcc: malformed packet chunk")
)
