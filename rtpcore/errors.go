package rtpcore

import "errors"

// Errors of the media path, in one place.
var (
	// ErrTimeout is a Recv whose deadline passed with nothing received.
	ErrTimeout = errors.New("rtpcore: receive timeout")
	// ErrClosed is an operation on a closed socket.
	ErrClosed = errors.New("rtpcore: socket closed")
	// ErrBackend is an unknown media_backend.
	ErrBackend = errors.New("rtpcore: unknown socket backend")
	// ErrUnsupportedOS: the media sockets use Linux system calls
	// (recvmmsg, sendmmsg, UDP GSO, io_uring); on other systems the
	// control plane builds and runs its tests, the media path does not.
	ErrUnsupportedOS = errors.New("rtpcore: the media path runs on Linux only")
	// ErrLinkAddrInUse is a link whose address another live link has.
	ErrLinkAddrInUse = errors.New("rtpcore: link address in use")

	// errNoSocket is an engine started without a socket.
	errNoSocket = errors.New("rtpcore: no socket")
	// errFingerprint is a peer certificate that does not match the answer.
	errFingerprint = errors.New("rtpcore: DTLS certificate does not match a=fingerprint")
	// errNoDTLSState and errNoSRTPProfile: a finished DTLS handshake
	// without the state SRTP keys are exported from (RFC 5764 §4.2).
	errNoDTLSState   = errors.New("rtpcore: no DTLS state")
	errNoSRTPProfile = errors.New("rtpcore: no SRTP profile negotiated")

	// errBatchInUse is a Recv with a batch whose buffers another open
	// io_uring socket receives into.
	errBatchInUse = errors.New("rtpcore: RecvBatch is armed by another io_uring socket")
	// errRingFull: the io_uring submission queue stayed full.
	errRingFull = errors.New("rtpcore: io_uring submission queue full")
	// errNotCancelled: a closing io_uring socket's requests did not end.
	errNotCancelled = errors.New("rtpcore: io_uring requests not cancelled")
	// errNoExtArg: io_uring without IORING_FEAT_EXT_ARG (Linux < 5.11).
	errNoExtArg = errors.New("io_uring: no IORING_FEAT_EXT_ARG (Linux 5.11 or later is needed)")
)
