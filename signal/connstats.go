package signal

import (
	"slices"
	"strings"
	"time"

	"github.com/hayate-sfu/hayate/media"
)

// ConnectionStats is one connection in Sora's statistics API
// (https://sora-doc.shiguredo.jp/API_STATS): GetStatsAllConnections,
// GetStatsConnection and GetStatsClient. The identity fields, then the
// counters of Sora's list that Hayate keeps, with Sora's names and nesting;
// a counter Hayate does not keep is left out, never sent as 0 (README,
// "Sora compatibility: API targets").
type ConnectionStats struct {
	// Timestamp is when the answer was made: UTC, RFC 3339 with
	// microseconds (Sora's).
	Timestamp    string `json:"timestamp"`
	ChannelID    string `json:"channel_id"`
	SessionID    string `json:"session_id"`
	ClientID     string `json:"client_id"`
	BundleID     string `json:"bundle_id"`
	ConnectionID string `json:"connection_id"`
	// Simulcast has the RTP received on each layer (r0, r1, r2) of a
	// simulcast publisher; absent for any other connection.
	Simulcast map[string]SimulcastLayerStats `json:"simulcast,omitempty"`
	// DTLS counts the DTLS datagrams; absent before the transport counts.
	DTLS *DTLSStats `json:"dtls,omitempty"`
}

// SimulcastLayerStats is simulcast.rN.
type SimulcastLayerStats struct {
	RTP SimulcastRTPStats `json:"rtp"`
}

// SimulcastRTPStats is simulcast.rN.rtp: the packets and bytes (SRTP, as
// received) of the layer.
type SimulcastRTPStats struct {
	TotalReceivedRTP         uint64 `json:"total_received_rtp"`
	TotalReceivedRTPByteSize uint64 `json:"total_received_rtp_byte_size"`
}

// DTLSStats is the dtls object: DTLS datagrams received and sent.
type DTLSStats struct {
	TotalReceivedDTLS uint64 `json:"total_received_dtls"`
	TotalSentDTLS     uint64 `json:"total_sent_dtls"`
}

// ConnectionStats returns the statistics of the connections of channelID
// that sel picks (of every connection of the node when channelID is
// empty), sorted by channel and connection. The errors are those of
// Disconnect's selection.
func (h *Hub) ConnectionStats(channelID string, sel Selector) ([]ConnectionStats, error) {
	h.mu.Lock()
	var picked []*Conn
	if channelID == "" {
		for _, c := range h.conns {
			picked = append(picked, c)
		}
	} else {
		var err error
		if picked, err = h.selectLocked(channelID, sel); err != nil {
			h.mu.Unlock()
			return nil, err
		}
	}
	out := make([]ConnectionStats, 0, len(picked))
	now := timestamp(time.Now())
	for _, c := range picked {
		out = append(out, ConnectionStats{Timestamp: now, ChannelID: c.channelID, SessionID: c.sessionID,
			ClientID: c.clientID, BundleID: c.bundleID, ConnectionID: c.id})
	}
	h.mu.Unlock()
	for i, c := range picked {
		ct, ok := c.tr.(media.CountingTransport)
		if !ok {
			continue
		}
		n := ct.Counters()
		out[i].DTLS = &DTLSStats{TotalReceivedDTLS: n.DTLSReceived, TotalSentDTLS: n.DTLSSent}
		for rid, l := range n.Layers {
			if out[i].Simulcast == nil {
				out[i].Simulcast = map[string]SimulcastLayerStats{}
			}
			out[i].Simulcast[rid] = SimulcastLayerStats{RTP: SimulcastRTPStats{TotalReceivedRTP: l.Packets, TotalReceivedRTPByteSize: l.Bytes}}
		}
	}
	slices.SortFunc(out, func(a, b ConnectionStats) int {
		return strings.Compare(a.ChannelID+"\x00"+a.ConnectionID, b.ChannelID+"\x00"+b.ConnectionID)
	})
	return out, nil
}
