package signal

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// RTC stats (https://sora-doc.shiguredo.jp/API_RTC_STATS): the latest
// getStats() report each client sent, kept per connection with the time it
// arrived. Sora asks for it on a timer: on the WebSocket with
// {"type":"ping","stats":true}, answered by {"type":"pong","stats":[...]}
// (every WebSocket ping, Settings.WebSocketStatsInterval apart), and on the
// `stats` DataChannel once the connection switched to DataChannel signaling
// with {"type":"req-stats"}, answered there by {"type":"stats",
// "reports":[...]} (Settings.DataChannelStatsInterval;
// docs/spec/sora-protocol.md §1, docs/spec/sora-js-sdk-client.md §6 and §8).
// A report is passed through as the client sent it, once it is known to be
// a JSON array of objects of at most Settings.RTCStatsMaxBytes; any other
// is refused and counted, and the connection goes on.

// The stats requests Hayate sends.
var (
	pingStatsJSON = []byte(`{"type":"ping","stats":true}`)
	reqStatsJSON  = []byte(`{"type":"req-stats"}`)
)

// rtcReport is a connection's latest report.
type rtcReport struct {
	at    time.Time
	stats json.RawMessage
}

// RTCStats is one entry of ListRtcStats, ListChannelRtcStats and
// GetRtcStats: the connection, when its report arrived (RFC 3339 with
// milliseconds, as Sora's examples), and the report as the client sent it.
type RTCStats struct {
	ChannelID    string          `json:"channel_id"`
	ConnectionID string          `json:"connection_id"`
	Timestamp    string          `json:"timestamp"`
	RTCStats     json.RawMessage `json:"rtc_stats"`
}

// objectOnly is one element of a stats report: any JSON object.
type objectOnly struct{}

func (objectOnly) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || b[0] != '{' {
		return ErrRTCStatsMalformed
	}
	return nil
}

// ParseRTCStats checks a client's stats report: a JSON array of objects of
// at most max bytes. It returns the report (trimmed of surrounding white
// space, sharing raw's memory) or ErrRTCStatsTooLarge or
// ErrRTCStatsMalformed.
func ParseRTCStats(raw []byte, max int) (json.RawMessage, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > max {
		return nil, ErrRTCStatsTooLarge
	}
	if len(raw) == 0 || raw[0] != '[' {
		return nil, ErrRTCStatsMalformed
	}
	var elems []objectOnly
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, ErrRTCStatsMalformed
	}
	return raw, nil
}

// takeStats keeps the report in a client's stats reply: the `stats` of a
// pong, the `reports` of a DataChannel stats message. A reply without one
// (or with null) keeps nothing; a report that does not parse is counted
// and dropped.
func (c *Conn) takeStats(raw json.RawMessage) {
	if len(raw) == 0 || string(raw) == "null" {
		return
	}
	h := c.hub
	report, err := ParseRTCStats(raw, h.set.RTCStatsMaxBytes)
	switch err {
	case nil:
	case ErrRTCStatsTooLarge:
		h.stats.RTCStatsTooLarge.Add(1)
		h.log.Debug("rtc stats refused: too large", "connection_id", c.id, "bytes", len(raw), "max", h.set.RTCStatsMaxBytes)
		return
	default:
		h.stats.RTCStatsMalformed.Add(1)
		h.log.Debug("rtc stats refused: not a JSON array of objects", "connection_id", c.id)
		return
	}
	h.stats.RTCStatsReceived.Add(1)
	c.rtcStats.Store(&rtcReport{at: time.Now(), stats: bytes.Clone(report)})
}

// takePong handles a pong: the keepalive, and its stats.
func (c *Conn) takePong(msg []byte) {
	c.lastPong.Store(time.Now().UnixNano())
	if !bytes.Contains(msg, []byte(`"stats"`)) {
		return // the common pong: nothing more to parse
	}
	var m struct {
		Stats json.RawMessage `json:"stats"`
	}
	if json.Unmarshal(msg, &m) != nil {
		c.hub.stats.RTCStatsMalformed.Add(1)
		return
	}
	c.takeStats(m.Stats)
}

// takeDataStats handles a message on the `stats` DataChannel.
func (c *Conn) takeDataStats(text []byte) {
	var m struct {
		Type    string          `json:"type"`
		Reports json.RawMessage `json:"reports"`
	}
	if json.Unmarshal(text, &m) != nil {
		c.hub.stats.RTCStatsMalformed.Add(1)
		return
	}
	if m.Type != "stats" {
		c.hub.stats.IgnoredMessages.Add(1)
		return
	}
	c.takeStats(m.Reports)
}

// rtcStatsLoop asks every admitted connection for its stats: on the
// WebSocket every WebSocketStatsInterval, on the `stats` DataChannel every
// DataChannelStatsInterval once the connection has switched (0: never).
func (h *Hub) rtcStatsLoop() {
	ws, dc := tickerOf(h.set.WebSocketStatsInterval), tickerOf(h.set.DataChannelStatsInterval)
	defer ws.Stop()
	defer dc.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case <-ws.C:
			h.requestStats(false)
		case <-dc.C:
			h.requestStats(true)
		}
	}
}

// stoppable is a ticker whose channel never fires when its interval is 0.
type stoppable struct {
	C <-chan time.Time
	t *time.Ticker
}

func (s stoppable) Stop() {
	if s.t != nil {
		s.t.Stop()
	}
}

func tickerOf(d time.Duration) stoppable {
	if d <= 0 {
		return stoppable{}
	}
	t := time.NewTicker(d)
	return stoppable{C: t.C, t: t}
}

// requestStats sends a stats request to every admitted connection that
// signals on DataChannels (onDC) or on its WebSocket (!onDC).
func (h *Hub) requestStats(onDC bool) {
	h.mu.Lock()
	conns := make([]*Conn, 0, len(h.conns))
	for _, c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	for _, c := range conns {
		d := c.dc
		switched := d != nil && d.switched.Load()
		switch {
		case switched != onDC:
		case onDC:
			if c.sendOnLabel(d.byLabel[labelStats], reqStatsJSON) == nil {
				h.stats.RTCStatsRequested.Add(1)
			}
		case d != nil && d.detached.Load():
			// No WebSocket left (and it has not switched: cannot happen).
		default:
			c.queue(outText(pingStatsJSON))
			h.stats.RTCStatsRequested.Add(1)
		}
	}
}

// ListRTCStats returns the latest report of every connection of
// channelID (every channel when empty) that has sent one, sorted by
// channel and connection.
func (h *Hub) ListRTCStats(channelID string) []RTCStats {
	h.mu.Lock()
	var conns []*Conn
	if channelID != "" {
		if ch := h.channels[channelID]; ch != nil {
			conns = append(conns, ch.members...)
		}
	} else {
		for _, c := range h.conns {
			conns = append(conns, c)
		}
	}
	h.mu.Unlock()
	out := []RTCStats{}
	for _, c := range conns {
		if s, ok := c.rtcStatsEntry(); ok {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b RTCStats) int {
		return strings.Compare(a.ChannelID+"\x00"+a.ConnectionID, b.ChannelID+"\x00"+b.ConnectionID)
	})
	return out
}

// RTCStats returns the latest report of connectionID in channelID:
// ErrChannelNotFound, ErrConnectionNotFound, or ErrRTCStatsNotYet while
// the connection has sent none.
func (h *Hub) RTCStats(channelID, connectionID string) (RTCStats, error) {
	h.mu.Lock()
	picked, err := h.selectLocked(channelID, Selector{ConnectionID: connectionID})
	h.mu.Unlock()
	if err != nil {
		return RTCStats{}, err
	}
	s, ok := picked[0].rtcStatsEntry()
	if !ok {
		return RTCStats{}, ErrRTCStatsNotYet
	}
	return s, nil
}

func (c *Conn) rtcStatsEntry() (RTCStats, bool) {
	r := c.rtcStats.Load()
	if r == nil {
		return RTCStats{}, false
	}
	return RTCStats{ChannelID: c.channelID, ConnectionID: c.id, Timestamp: r.at.UTC().Format("2006-01-02T15:04:05.000Z"), RTCStats: r.stats}, true
}
