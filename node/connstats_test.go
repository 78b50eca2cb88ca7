package node

import (
	"testing"
	"time"
)

// soraStatsConnection is one connection in GetStatsAllConnections,
// GetStatsConnection and GetStatsClient (API_STATS): the identity fields
// and the counters Hayate serves, with Sora's names and nesting.
type soraStatsConnection struct {
	Timestamp    string `json:"timestamp"`
	ChannelID    string `json:"channel_id"`
	SessionID    string `json:"session_id"`
	ClientID     string `json:"client_id"`
	BundleID     string `json:"bundle_id"`
	ConnectionID string `json:"connection_id"`
	Simulcast    *struct {
		R0 *soraStatsLayer `json:"r0"`
		R1 *soraStatsLayer `json:"r1"`
		R2 *soraStatsLayer `json:"r2"`
	} `json:"simulcast"`
	DTLS *struct {
		TotalReceivedDTLS uint64 `json:"total_received_dtls"`
		TotalSentDTLS     uint64 `json:"total_sent_dtls"`
	} `json:"dtls"`
}

// soraStatsLayer is simulcast.rN.
type soraStatsLayer struct {
	RTP struct {
		TotalReceivedRTP         uint64 `json:"total_received_rtp"`
		TotalReceivedRTPByteSize uint64 `json:"total_received_rtp_byte_size"`
	} `json:"rtp"`
}

func (s soraStatsConnection) layers() [3]uint64 {
	var out [3]uint64
	if s.Simulcast == nil {
		return out
	}
	for i, l := range []*soraStatsLayer{s.Simulcast.R0, s.Simulcast.R1, s.Simulcast.R2} {
		if l != nil && l.RTP.TotalReceivedRTPByteSize > 0 {
			out[i] = l.RTP.TotalReceivedRTP
		}
	}
	return out
}

// TestStatsConnection: GetStatsConnection, GetStatsClient and
// GetStatsAllConnections describe a simulcast publisher with Sora's
// identity fields, its DTLS datagrams both ways and the RTP received on
// each layer, which grow with the media; unknown channels, connections and
// clients are refused.
func TestStatsConnection(t *testing.T) {
	n := startNode(t, nil)
	p := newSimPublisher(t, n, "stats", tinyLayers)
	id := p.peer.Offer.ConnectionID
	_, plain := join(t, n, "stats", "recvonly") // signaling only: no media counted
	body := `{"channel_id":"stats","connection_id":"` + id + `"}`

	var first soraStatsConnection
	waitFor(t, "RTP counted on the three layers", patience, func() bool {
		first = apiOK[soraStatsConnection](t, n, "Sora_20170529.GetStatsConnection", body)
		l := first.layers()
		return l[0] > 0 && l[1] > 0 && l[2] > 0
	})
	at, err := time.Parse(time.RFC3339Nano, first.Timestamp)
	if err != nil || time.Since(at) > time.Minute || time.Since(at) < 0 {
		t.Errorf("timestamp %q: %v", first.Timestamp, err)
	}
	checkTimeFormat(t, "GetStatsConnection timestamp", first.Timestamp, 6)
	if first.ChannelID != "stats" || first.ConnectionID != id || first.ClientID != id || first.BundleID != id || first.SessionID == "" {
		t.Errorf("identity: %+v", first)
	}
	if first.DTLS == nil || first.DTLS.TotalReceivedDTLS == 0 || first.DTLS.TotalSentDTLS == 0 {
		t.Errorf("dtls: %+v, want datagrams both ways", first.DTLS)
	}
	waitFor(t, "every layer's counters growing", patience, func() bool {
		now := apiOK[soraStatsConnection](t, n, "Sora_20170529.GetStatsConnection", body).layers()
		a := first.layers()
		return now[0] > a[0] && now[1] > a[1] && now[2] > a[2]
	})

	clients := apiOK[[]soraStatsConnection](t, n, "Sora_20170529.GetStatsClient", `{"channel_id":"stats","client_id":"`+id+`"}`)
	if len(clients) != 1 || clients[0].ConnectionID != id {
		t.Errorf("GetStatsClient: %+v", clients)
	}
	all := apiOK[[]soraStatsConnection](t, n, "Sora_20171101.GetStatsAllConnections", ``)
	if len(all) != 2 {
		t.Fatalf("GetStatsAllConnections: %+v, want 2 connections", all)
	}
	for _, s := range all {
		if s.ConnectionID == plain.ConnectionID && s.Simulcast != nil {
			t.Errorf("a connection that publishes nothing has simulcast counters: %+v", s)
		}
	}
	apiErr(t, n, "Sora_20170529.GetStatsConnection", `{"channel_id":"stats","connection_id":"NOPE"}`, 404, "CONNECTION-NOT-FOUND")
	apiErr(t, n, "Sora_20170529.GetStatsConnection", `{"channel_id":"nowhere","connection_id":"`+id+`"}`, 404, "CHANNEL-NOT-FOUND")
	apiErr(t, n, "Sora_20170529.GetStatsClient", `{"channel_id":"stats","client_id":"NOPE"}`, 404, "CLIENT-NOT-FOUND")
	apiErr(t, n, "Sora_20170529.GetStatsClient", `{"channel_id":"stats"}`, 400, "MISSING-PARAMETER")
}
