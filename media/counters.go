package media

// Counters are one transport's counters that Sora's statistics API reports
// per connection (https://sora-doc.shiguredo.jp/API_STATS): the DTLS
// datagrams received from and sent to the peer, and the RTP received on
// each simulcast layer the peer publishes, by rid.
type Counters struct {
	DTLSReceived, DTLSSent uint64
	Layers                 map[string]RTPCounters
}

// RTPCounters are the packets and bytes (as received, SRTP) of one stream.
type RTPCounters struct {
	Packets, Bytes uint64
}

// CountingTransport is a Transport that keeps Counters.
type CountingTransport interface {
	Counters() Counters
}
