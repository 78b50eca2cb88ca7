package media

// Simulcast and congestion control across the seam. A simulcast track is
// published as one Track with its RIDs; every subscriber receives it as one
// stream (Track.SSRC), fed by one of the publisher's streams at a time. Which
// one is chosen per subscriber by the media path, within a cap that signal
// sets (LayerTransport.LimitLayer) from the viewer's rid and the API; the
// media path reports each switch (LayerEvents.Switched).

// Layers are indices into a track's RIDs: 0 is r0, the lowest stream.
const (
	// LayerNone receives no video of the track.
	LayerNone = -1
	// LayerMax caps nothing: the best stream the network carries.
	LayerMax = 255
)

// LayerTransport is implemented by transports that forward simulcast.
type LayerTransport interface {
	// LimitLayer caps the stream this transport receives of the track ssrc
	// (its Track.SSRC) of src: this subscriber of this track wants layer
	// at most (LayerNone: no video). It takes effect at the next key frame
	// of the stream chosen.
	LimitLayer(src Transport, ssrc uint32, layer int)
	// Layer is the stream this transport receives of the track ssrc of src
	// now (LayerNone before the first key frame).
	Layer(src Transport, ssrc uint32) int
}

// SwitchCause says why a subscriber's stream changed.
type SwitchCause uint8

// The causes.
const (
	// ByReceiver: the subscriber's cap or its network (congestion control).
	ByReceiver SwitchCause = iota
	// BySender: the publisher stopped or started sending a stream.
	BySender
)

// LayerEvents are implemented by the Events of subscribing transports.
type LayerEvents interface {
	// Switched: the stream this transport receives of the track ssrc of
	// the publisher connection sender changed from layer from to layer
	// to. Called from a media goroutine; it must not block.
	Switched(sender string, ssrc uint32, from, to int, cause SwitchCause)
}
