// Package media is the seam between Hayate's control plane (signal) and its
// media path (rtpcore): a few interfaces and the types they carry. Neither
// side reaches into the other's state; signal drives transports through
// Transport, and the media path reports back through Events.
package media

import "net/netip"

// Kind is a track's media kind.
type Kind uint8

// The kinds Hayate forwards.
const (
	Audio Kind = iota + 1
	Video
)

func (k Kind) String() string {
	switch k {
	case Audio:
		return "audio"
	case Video:
		return "video"
	default:
		return "unknown"
	}
}

// Track is one RTP stream a connection publishes, as declared in its answer.
type Track struct {
	Kind Kind
	// SSRC is the stream's SSRC; for a simulcast track, the SSRC its
	// subscribers receive (the publisher's streams name themselves by rid).
	SSRC        uint32
	PayloadType uint8
	ClockRate   uint32
	// Codec is the rtpmap encoding name (VP8, H264, opus, ...).
	Codec string
	// RIDs are a simulcast track's streams, lowest first (simulcast.go).
	RIDs []string
	// RTXSSRC and RTXPayloadType, on the subscriber's side, carry
	// retransmissions in a stream of their own (RFC 4588); 0: none.
	RTXSSRC        uint32
	RTXPayloadType uint8
}

// Remote is the peer's side of a transport, from its answer.
type Remote struct {
	// Ufrag and Pwd are the peer's ICE credentials.
	Ufrag, Pwd string
	// Fingerprint is the sha-256 fingerprint the peer's DTLS certificate
	// must match.
	Fingerprint string
	// DTLSClient is true when the peer answered a=setup:passive: the node
	// then opens the DTLS handshake. Otherwise (active, what browsers
	// answer) the peer does and the node is the DTLS server.
	DTLSClient bool
	// Data, when set (the answer accepted an m=application section), keeps
	// DTLS after the handshake and runs DataChannels over it (data.go).
	// Only the first Start's value counts.
	Data *DataRemote
	// Extensions are the header extension ids the answer accepted (0:
	// not accepted); each Start replaces them.
	Extensions Extensions
	// TransportCC: the peer sends transport-wide congestion feedback
	// (and gets it, when it sends); REMB: it sends goog-remb.
	TransportCC, REMB bool
}

// Extensions are negotiated RTP header extension ids (RFC 8285).
type Extensions struct {
	MID, RID, RRID, TWCC uint8
	// AudioLevel is the client-to-mixer audio level (RFC 6464), read for
	// spotlight (VoiceTransport).
	AudioLevel uint8
}

// Engine is the node's media path.
type Engine interface {
	// Fingerprint is the sha-256 fingerprint of the DTLS certificate, as
	// written in SDP.
	Fingerprint() string
	// Candidate is the advertised ICE host candidate address.
	Candidate() netip.AddrPort
	// Open creates the transport of a new connection with fresh local ICE
	// credentials. Nothing is accepted from the network until Start.
	Open(connectionID string, ev Events) (Transport, error)
}

// Transport is one connection's media: one ICE-lite/DTLS-SRTP transport
// carrying every track of the connection (BUNDLE).
type Transport interface {
	// LocalCredentials are our ICE ufrag and password for the offer.
	LocalCredentials() (ufrag, pwd string)
	// Start accepts ICE and DTLS from the peer described by its answer.
	// It is called again for every re-answer: new ICE credentials there
	// are a client-side ICE restart; the DTLS parameters of the first call
	// stay.
	Start(r Remote) error
	// Publish declares the tracks the peer sends; packets of other SSRCs are
	// dropped.
	Publish(tracks []Track)
	// Subscribe forwards tracks of src to this transport. It takes effect
	// at once; call it after the offer announcing the tracks is queued.
	Subscribe(src Transport, tracks []Track)
	// Unsubscribe stops forwarding every track of src to this transport.
	Unsubscribe(src Transport)
	// Close stops the transport and releases its resources. Idempotent.
	Close()
}

// KeyFrameRequester is a Transport that can ask its peer for a key frame on
// every video track it publishes (the API's RequestKeyFrame).
type KeyFrameRequester interface {
	RequestKeyFrame()
}

// Events are the media path's reports on one transport. They are called
// from media goroutines and must not block.
type Events interface {
	// Connected: ICE and DTLS are up and SRTP keys are in place.
	Connected()
	// Failed: the transport is dead (handshake failed or timed out, no
	// packet for the liveness timeout); reason is an upper-case hyphenated
	// tag such as ICE-CONNECTION-STATE-FAILED.
	Failed(reason string)
}
