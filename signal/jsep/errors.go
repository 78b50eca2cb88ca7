package jsep

import "errors"

// Sentinel errors of SDP handling.
var (
	// ErrBadSDP is text that is not a usable SDP.
	ErrBadSDP = errors.New("jsep: malformed SDP")
	// ErrSDPTooLarge is an SDP over 256 KiB.
	ErrSDPTooLarge = errors.New("jsep: SDP too large")
	// ErrAnswerMismatch is an answer whose sections do not match the offer.
	ErrAnswerMismatch = errors.New("jsep: answer does not match the offer")
	// ErrUnsupported is a valid answer asking for something Hayate does not do.
	ErrUnsupported = errors.New("jsep: unsupported answer")
	// ErrBadCandidate is a malformed ICE candidate line.
	ErrBadCandidate = errors.New("jsep: malformed candidate")
)
