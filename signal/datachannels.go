package signal

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hayate-sfu/hayate/internal/zlibmsg"
	"github.com/hayate-sfu/hayate/media"
	"github.com/hayate-sfu/hayate/signal/jsep"
)

// DataChannel signaling (https://sora-doc.shiguredo.jp/DATA_CHANNEL_SIGNALING)
// and the channels it rides on.
//
// A connect with data_channel_signaling: true (or the server's default, or
// the auth webhook's payout) gets an m=application section in its offer and
// the offer's data_channels list. Once SCTP is up the node opens signaling,
// notify, push and stats (and rpc with data_channel_rpc), then every `#`
// label the client declared (messaging.go). When the client has
// acknowledged them all the node sends `switched` on the WebSocket; from
// then on re-offers go on `signaling`, notifies on `notify`, and the client
// answers, trickles and disconnects on `signaling`. With
// ignore_disconnect_websocket the client then closes its WebSocket and the
// connection lives on (it is "detached"): it ends when the client sends
// disconnect, its transport dies, or the node closes it, which it tells the
// client with {"type":"close","code","reason"} on `signaling`
// (data_channel_signaling_close_message).
//
// What the sora-js-sdk expects is in docs/spec/sora-js-sdk-client.md §8: every
// label it receives must be described in the offer's data_channels, a
// label with compress: true carries zlib (CompressionStream("deflate")) in
// both directions, otherwise JSON text.

// The labels Sora's SDKs know (sora-js-sdk src/constants.ts).
const (
	labelSignaling = "signaling"
	labelNotify    = "notify"
	labelPush      = "push"
	labelStats     = "stats"
	labelRPC       = "rpc"
)

// Limits on a connect's data_channels.
const (
	maxDataChannels   = 32
	maxLabelBytes     = 255
	maxDCEPReliabilty = 65535
)

// dcLabel is one DataChannel of a connection: a fixed signaling label or
// a messaging label, as declared and as it is now.
type dcLabel struct {
	label     string
	direction string // messaging: the client's view (sendrecv, sendonly, recvonly)
	compress  bool
	// Channel options (RFC 8831 §6.4).
	unordered         bool
	maxPacketLifeTime *uint32
	maxRetransmits    *uint32
	protocol          string
	// header is the client's header list, echoed in the offer; senderID
	// means messages to this connection start with the sender's
	// connection_id (Sora's sender_connection_id header).
	header   json.RawMessage
	senderID bool
	open     atomic.Bool
}

// messaging reports whether the label is an application's (`#`).
func (l *dcLabel) messaging() bool { return strings.HasPrefix(l.label, "#") }

// sends and receives give a messaging label's direction from the client's
// side: it may send, it is sent to.
func (l *dcLabel) sends() bool    { return l.direction == "sendrecv" || l.direction == "sendonly" }
func (l *dcLabel) receives() bool { return l.direction == "sendrecv" || l.direction == "recvonly" }

// dcConn is a connection's DataChannel state; nil on a connection without
// DataChannel signaling.
type dcConn struct {
	ignoreWS bool
	labels   []*dcLabel // in the order the channels are opened
	byLabel  map[string]*dcLabel
	// connectRaw is the data_channels of connect, for the auth webhook.
	connectRaw json.RawMessage

	opened   atomic.Int32
	switched atomic.Bool
	// detached: the WebSocket closed after switched with
	// ignore_disconnect_websocket; ended is closed when such a connection
	// is to be torn down.
	detached atomic.Bool
	ended    chan struct{}
	endOnce  sync.Once

	// limit is the messages-per-second bucket of what the client sends.
	limitMu      sync.Mutex
	tokens       float64
	tokensAtNano int64
}

// dataChannelSpec is one entry of data_channels (connect or auth payout).
type dataChannelSpec struct {
	Label             *string         `json:"label"`
	Direction         *string         `json:"direction"`
	Compress          *bool           `json:"compress"`
	Ordered           *bool           `json:"ordered"`
	MaxPacketLifeTime *int64          `json:"max_packet_life_time"`
	MaxRetransmits    *int64          `json:"max_retransmits"`
	Protocol          *string         `json:"protocol"`
	Header            json.RawMessage `json:"header"`
}

// parseDataChannels checks a data_channels list and returns the
// connection's channels: the fixed signaling labels first (their compress
// may be set by an entry of the same label), then the messaging labels in
// the order given.
func parseDataChannels(raw json.RawMessage, rpc bool) ([]*dcLabel, error) {
	fixed := []string{labelSignaling, labelNotify, labelPush, labelStats}
	if rpc {
		fixed = append(fixed, labelRPC)
	}
	labels := make([]*dcLabel, 0, len(fixed))
	byLabel := map[string]*dcLabel{}
	for _, name := range fixed {
		dir := "sendrecv"
		if name == labelNotify || name == labelPush {
			dir = "sendonly" // the server sends, the client listens
		}
		l := &dcLabel{label: name, direction: dir}
		labels = append(labels, l)
		byLabel[name] = l
	}
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return labels, nil
	}
	var specs []dataChannelSpec
	if raw[0] != '[' || json.Unmarshal(raw, &specs) != nil || len(specs) > maxDataChannels {
		return nil, errBadDataChannels
	}
	seen := map[string]bool{}
	for _, s := range specs {
		if s.Label == nil || *s.Label == "" || len(*s.Label) > maxLabelBytes || seen[*s.Label] {
			return nil, errBadDataChannels
		}
		seen[*s.Label] = true
		if l := byLabel[*s.Label]; l != nil {
			// A fixed label: only compress applies.
			l.compress = s.Compress != nil && *s.Compress
			continue
		}
		if !strings.HasPrefix(*s.Label, "#") {
			return nil, errBadDataChannels // neither a signaling nor a messaging label
		}
		l, err := messagingLabel(s)
		if err != nil {
			return nil, err
		}
		labels = append(labels, l)
	}
	return labels, nil
}

// messagingLabel checks and converts one `#` entry.
func messagingLabel(s dataChannelSpec) (*dcLabel, error) {
	l := &dcLabel{label: *s.Label}
	if s.Direction == nil {
		return nil, errBadDataChannels
	}
	switch *s.Direction {
	case "sendrecv", "sendonly", "recvonly":
		l.direction = *s.Direction
	default:
		return nil, errBadDataChannels
	}
	l.compress = s.Compress != nil && *s.Compress
	l.unordered = s.Ordered != nil && !*s.Ordered
	// RFC 8831 §6.4 and the W3C API: a lifetime or a retransmit count, not both.
	if s.MaxPacketLifeTime != nil && s.MaxRetransmits != nil {
		return nil, errBadDataChannels
	}
	for _, p := range []struct {
		in  *int64
		out **uint32
	}{{s.MaxPacketLifeTime, &l.maxPacketLifeTime}, {s.MaxRetransmits, &l.maxRetransmits}} {
		if p.in == nil {
			continue
		}
		if *p.in < 0 || *p.in > maxDCEPReliabilty {
			return nil, errBadDataChannels
		}
		v := uint32(*p.in)
		*p.out = &v
	}
	if s.Protocol != nil {
		if len(*s.Protocol) > maxLabelBytes {
			return nil, errBadDataChannels
		}
		l.protocol = *s.Protocol
	}
	if h := bytes.TrimSpace(s.Header); len(h) > 0 && !bytes.Equal(h, []byte("null")) {
		var hs []struct {
			Type *string `json:"type"`
		}
		if json.Unmarshal(h, &hs) != nil {
			return nil, errBadDataChannels
		}
		for _, e := range hs {
			if e.Type == nil || *e.Type != "sender_connection_id" {
				return nil, errBadDataChannels
			}
			l.senderID = true
		}
		l.header = append(json.RawMessage(nil), h...)
	}
	return l, nil
}

// newDCConn builds the DataChannel state of a connection whose DataChannel
// signaling is on.
func newDCConn(labels []*dcLabel, ignoreWS bool, connectRaw json.RawMessage) *dcConn {
	d := &dcConn{ignoreWS: ignoreWS, labels: labels, byLabel: map[string]*dcLabel{}, ended: make(chan struct{}), connectRaw: connectRaw}
	for _, l := range labels {
		d.byLabel[l.label] = l
	}
	return d
}

// applyDataChannels takes the DataChannel fields of connect (with the
// node's defaults for what it leaves out).
func (c *Conn) applyDataChannels(cm *connectMessage) *CloseError {
	set := c.hub.set
	on, ignoreWS := set.DataChannelSignaling, set.IgnoreDisconnectWebSocket
	if cm.DataChannelSignaling != nil {
		on = *cm.DataChannelSignaling
	}
	if cm.IgnoreDisconnectWebsocket != nil {
		ignoreWS = *cm.IgnoreDisconnectWebsocket
	}
	labels, err := parseDataChannels(cm.DataChannels, set.DataChannelRPC)
	if err != nil {
		return ErrInvalidDataChannels
	}
	c.dc = nil
	if on {
		c.dc = newDCConn(labels, ignoreWS, nonNull(cm.DataChannels))
	}
	return nil
}

// applyDataChannelPayouts applies the auth webhook's data_channel_signaling,
// ignore_disconnect_websocket and data_channels (payout > connect).
func (c *Conn) applyDataChannelPayouts(on, ignoreWS *bool, raw json.RawMessage) *CloseError {
	if on == nil && ignoreWS == nil && len(nonNull(raw)) == 0 {
		return nil
	}
	var connectRaw json.RawMessage
	labels := []*dcLabel(nil)
	keepWS := c.hub.set.IgnoreDisconnectWebSocket
	if c.dc != nil {
		labels, keepWS, connectRaw = c.dc.labels, c.dc.ignoreWS, c.dc.connectRaw
	}
	if len(nonNull(raw)) > 0 {
		l, err := parseDataChannels(raw, c.hub.set.DataChannelRPC)
		if err != nil {
			return ErrAuthBadResponse
		}
		labels = l
	} else if labels == nil {
		labels, _ = parseDataChannels(nil, c.hub.set.DataChannelRPC)
	}
	enabled := c.dc != nil
	if on != nil {
		enabled = *on
	}
	if ignoreWS != nil {
		keepWS = *ignoreWS
	}
	c.dc = nil
	if enabled {
		c.dc = newDCConn(labels, keepWS, connectRaw)
	}
	return nil
}

// offerDataChannel is one entry of the offer's data_channels (what the SDK
// reads: label, direction, compress, header).
type offerDataChannel struct {
	Label     string          `json:"label"`
	Direction string          `json:"direction"`
	Compress  bool            `json:"compress"`
	Header    json.RawMessage `json:"header,omitempty"`
}

// addDataSection appends the m=application section to a first offer.
func (c *Conn) addDataSection(o *jsep.Offer) {
	if c.dc == nil {
		return
	}
	o.MaxMessageSize = c.hub.set.DataChannelMaxMessageSize
	o.Sections = append(o.Sections, jsep.Section{Mid: strconv.Itoa(len(o.Sections)), Kind: jsep.Application})
}

// fillOffer sets the offer's DataChannel fields.
func (d *dcConn) fillOffer(m *offerMessage, rpc []string) {
	if d == nil {
		return
	}
	m.DataChannelSignaling = true
	m.IgnoreDisconnectWebsocket = d.ignoreWS
	for _, l := range d.labels {
		m.DataChannels = append(m.DataChannels, offerDataChannel{Label: l.label, Direction: l.direction, Compress: l.compress, Header: l.header})
		if l.label == labelRPC {
			m.RPCMethods = rpc
		}
	}
}

// dataRemote is what the transport needs to open the channels, if the
// answer accepted the m=application section of o.
func (c *Conn) dataRemote(o *jsep.Offer, a *jsep.Answer) *media.DataRemote {
	if c.dc == nil {
		return nil
	}
	for i, s := range o.Sections {
		if s.Kind != jsep.Application {
			continue
		}
		if a.Sections[i].Rejected {
			return nil
		}
		r := &media.DataRemote{MaxMessageSize: a.Sections[i].MaxMessageSize}
		for _, l := range c.dc.labels {
			r.Channels = append(r.Channels, media.DataChannel{
				Label: l.label, Protocol: l.protocol, Unordered: l.unordered,
				MaxPacketLifeTime: l.maxPacketLifeTime, MaxRetransmits: l.maxRetransmits,
				// The SDK only listens on notify and push.
				SendOnly: l.label == labelNotify || l.label == labelPush,
			})
		}
		return r
	}
	return nil
}

// DataOpen implements media.DataEvents: the client acknowledged a channel.
// A messaging label joins its channel's relay; once every channel is open
// the connection switches to DataChannel signaling.
func (c *Conn) DataOpen(label string) {
	d := c.dc
	l := d.byLabel[label]
	if l == nil || l.open.Swap(true) {
		return
	}
	if l.messaging() && l.receives() {
		c.hub.relayChanged(c)
	}
	if int(d.opened.Add(1)) == len(d.labels) {
		c.switchToDataChannels()
	}
}

// switchToDataChannels sends `switched` on the WebSocket; from then on the
// server's messages go on DataChannels.
func (c *Conn) switchToDataChannels() {
	b, _ := json.Marshal(struct {
		Type                      string `json:"type"`
		IgnoreDisconnectWebsocket bool   `json:"ignore_disconnect_websocket"`
	}{"switched", c.dc.ignoreWS})
	c.queue(outText(b))
	c.dc.switched.Store(true)
	c.hub.stats.Switched.Add(1)
	c.hub.log.Debug("switched to DataChannel signaling", "connection_id", c.id, "ignore_disconnect_websocket", c.dc.ignoreWS)
}

// DataClosed implements media.DataEvents. The client closing `signaling`
// (or losing the association, which closes them all) ends the connection;
// a messaging label leaves its relay.
func (c *Conn) DataClosed(label string) {
	d := c.dc
	l := d.byLabel[label]
	if l == nil || !l.open.Swap(false) {
		return
	}
	if l.messaging() {
		c.hub.relayChanged(c)
	}
	if label == labelSignaling {
		c.requestClose(ErrDataChannelClosed)
	}
}

// DataMessage implements media.DataEvents: one message from the client.
func (c *Conn) DataMessage(label string, msg []byte, binary bool) {
	d := c.dc
	l := d.byLabel[label]
	if l == nil {
		return
	}
	if !d.allow(time.Now().UnixNano(), c.hub.set.DataChannelMessagesPerSecond) {
		c.hub.stats.DataDropRateLimited.Add(1)
		return
	}
	if l.messaging() {
		c.relay(l, msg, binary)
		return
	}
	text, ok := c.decode(l, msg)
	if !ok {
		return
	}
	switch label {
	case labelSignaling:
		if c.closeRequested() != nil {
			return
		}
		if e := c.handle(text); e != nil {
			if e.Code == CodeBadRequest {
				c.hub.stats.SignalingErrors.Add(1)
				c.hub.log.Info("signaling error on the DataChannel", "connection_id", c.id, "channel_id", c.channelID, "reason", e.Reason)
			}
			c.requestClose(e)
		}
	case labelRPC:
		c.answerRPC(text)
	case labelStats:
		c.takeDataStats(text)
	default:
		// Anything a client sends on notify or push: nothing to do.
		c.hub.stats.IgnoredMessages.Add(1)
	}
}

// decode turns a message of a signaling label into text: inflated when the
// label is compressed, bounded by the message size limit.
func (c *Conn) decode(l *dcLabel, msg []byte) ([]byte, bool) {
	if !l.compress {
		return msg, true
	}
	out, err := zlibmsg.Inflate(nil, msg, c.hub.set.DataChannelMaxMessageSize)
	if err != nil {
		c.hub.stats.DataDropInflate.Add(1)
		return nil, false
	}
	return out, true
}

// allow takes a token from the connection's bucket: rate messages a second,
// with a burst of one second's worth (0: no limit).
func (d *dcConn) allow(now int64, rate int) bool {
	if rate <= 0 {
		return true
	}
	d.limitMu.Lock()
	defer d.limitMu.Unlock()
	if d.tokensAtNano == 0 {
		d.tokens = float64(rate)
	} else {
		d.tokens = min(float64(rate), d.tokens+float64(now-d.tokensAtNano)*float64(rate)/1e9)
	}
	d.tokensAtNano = now
	if d.tokens < 1 {
		return false
	}
	d.tokens--
	return true
}

// signal sends a server message to the client: on the DataChannel label
// once the connection has switched, else on the WebSocket.
func (c *Conn) signal(label string, b []byte) {
	if d := c.dc; d != nil && d.switched.Load() {
		if c.sendOnLabel(d.byLabel[label], b) == nil {
			return
		}
	}
	c.queue(outText(b))
}

// sendOnLabel sends JSON text on a signaling label, compressed if the label
// is. A client too slow to take it is closed.
func (c *Conn) sendOnLabel(l *dcLabel, text []byte) error {
	dt, ok := c.tr.(media.DataTransport)
	if l == nil || !ok {
		return media.ErrDataNotOpen
	}
	msg, binary := text, false
	if l.compress {
		msg, binary = zlibmsg.Deflate(nil, text), true
	}
	err := dt.SendData(l.label, msg, binary)
	if errors.Is(err, media.ErrDataQueueFull) {
		c.hub.stats.DataQueueFull.Add(1)
		c.requestClose(ErrDataChannelQueueFull)
	}
	return err
}

// detach is called when the WebSocket of a connection ends: a connection
// that switched with ignore_disconnect_websocket lives on. It reports
// whether it does. Under closeMu, so that a close requested meanwhile
// either wins (no detach) or sees the connection detached.
func (c *Conn) detach() bool {
	d := c.dc
	if d == nil || !d.ignoreWS || !d.switched.Load() {
		return false
	}
	c.closeMu.Lock()
	defer c.closeMu.Unlock()
	if c.closeErr != nil {
		return false
	}
	d.detached.Store(true)
	c.finishWrites()
	c.hub.stats.Detached.Add(1)
	c.hub.log.Debug("WebSocket closed, connection lives on DataChannels", "connection_id", c.id)
	return true
}

// liveOnDataChannels runs a detached connection until it is closed and
// returns the close reason.
func (c *Conn) liveOnDataChannels() string {
	c.nc.Close()
	<-c.dc.ended
	if e := c.closeRequested(); e != nil {
		return e.Reason
	}
	return ""
}

// closeDetached ends a detached connection: with the close message on
// `signaling` when the node closes it (not for the client's own
// disconnect), then the teardown.
func (c *Conn) closeDetached(e *CloseError) {
	d := c.dc
	go func() {
		if c.hub.set.DataChannelCloseMessage && e != ErrTypeDisconnect && e.Code != 0 && e != ErrDataChannelClosed {
			b, _ := json.Marshal(struct {
				Type   string `json:"type"`
				Code   int    `json:"code"`
				Reason string `json:"reason"`
			}{"close", int(e.Code), e.Reason})
			if c.sendOnLabel(d.byLabel[labelSignaling], b) == nil {
				if f, ok := c.tr.(interface{ FlushData(time.Duration) }); ok {
					f.FlushData(time.Second)
				}
			}
		}
		d.endOnce.Do(func() { close(d.ended) })
	}()
}

// rpcMethods are the RPC methods Hayate serves, as the offer's
// rpc_methods lists them (Sora's names, https://sora-doc.shiguredo.jp/RPC).
var rpcMethods = []string{rpcRequestSimulcastRid, rpcRequestSpotlightRid, rpcResetSpotlightRid,
	rpcPutSignalingNotifyMetadata, rpcPutSignalingNotifyMetadataItem}

const (
	rpcRequestSimulcastRid            = "2025.2.0/RequestSimulcastRid"
	rpcRequestSpotlightRid            = "2025.2.0/RequestSpotlightRid"
	rpcResetSpotlightRid              = "2025.2.0/ResetSpotlightRid"
	rpcPutSignalingNotifyMetadata     = "2025.2.0/PutSignalingNotifyMetadata"
	rpcPutSignalingNotifyMetadataItem = "2025.2.0/PutSignalingNotifyMetadataItem"
)

// rpcAliases are the extension's methods under their API target names,
// the form Sora's RPC page used before the {version}/{name} one (and
// Shiguredo's own tests of Sora still send); not listed in rpc_methods.
var rpcAliases = map[string]string{
	"Sora_20201124.PutSignalingNotifyMetadata":     rpcPutSignalingNotifyMetadata,
	"Sora_20201124.PutSignalingNotifyMetadataItem": rpcPutSignalingNotifyMetadataItem,
}

// rpcAllowed are the methods c may call: the auth webhook's rpc_methods
// payout, of those Hayate serves, or every one without it.
func (c *Conn) rpcAllowed() []string {
	if c.rpcPayout {
		return c.rpcMethods
	}
	return rpcMethods
}

// applyRPCPayout reads the auth webhook's rpc_methods (Sora's RPC page: the
// methods the connection may call), an array of method names; null asks
// for nothing. Names Hayate does not serve are left out.
func (c *Conn) applyRPCPayout(raw json.RawMessage) *CloseError {
	if raw = nonNull(raw); raw == nil {
		return nil
	}
	var names []string
	if json.Unmarshal(raw, &names) != nil {
		return ErrAuthBadResponse
	}
	c.rpcPayout, c.rpcMethods = true, []string{}
	for _, m := range rpcMethods {
		if slices.Contains(names, m) {
			c.rpcMethods = append(c.rpcMethods, m)
		}
	}
	return nil
}

// rpcError is a JSON-RPC 2.0 error object.
type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

var (
	rpcParseError     = &rpcError{-32700, "Parse error"}
	rpcInvalidRequest = &rpcError{-32600, "Invalid Request"}
	rpcNoMethod       = &rpcError{-32601, "Method not found"}
	rpcInvalidParams  = &rpcError{-32602, "Invalid params"}
)

// answerRPC answers a JSON-RPC 2.0 request on `rpc` (Sora's RPC over
// DataChannels, https://sora-doc.shiguredo.jp/RPC): the methods of
// rpcMethods act for the calling connection as the API targets of the
// same names do; another method gets -32601 Method not found, bad params
// -32602, invalid JSON -32700, an invalid request -32600; a notification
// (no id) is carried out but never answered.
func (c *Conn) answerRPC(text []byte) {
	var req struct {
		JSONRPC string          `json:"jsonrpc"`
		Method  *string         `json:"method"`
		Params  json.RawMessage `json:"params"`
		ID      json.RawMessage `json:"id"`
	}
	resp := struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Result  any             `json:"result,omitempty"`
		Error   *rpcError       `json:"error,omitempty"`
	}{JSONRPC: "2.0", ID: json.RawMessage("null")}
	switch {
	case json.Unmarshal(text, &req) != nil:
		resp.Error = rpcParseError
	case req.JSONRPC != "2.0" || req.Method == nil:
		resp.Error = rpcInvalidRequest
		if len(req.ID) > 0 {
			resp.ID = req.ID
		}
	default:
		resp.Result, resp.Error = c.rpcCall(*req.Method, req.Params)
		if len(req.ID) == 0 {
			return // a notification is never answered
		}
		resp.ID = req.ID
	}
	c.hub.stats.RPCAnswered.Add(1)
	b, _ := json.Marshal(resp)
	_ = c.sendOnLabel(c.dc.byLabel[labelRPC], b)
}

// rpcCall carries out one RPC method for c.
func (c *Conn) rpcCall(method string, raw json.RawMessage) (any, *rpcError) {
	var p struct {
		Rid                 string          `json:"rid"`
		SenderConnectionID  string          `json:"sender_connection_id"`
		SendConnectionID    string          `json:"send_connection_id"`
		SpotlightFocusRid   string          `json:"spotlight_focus_rid"`
		SpotlightUnfocusRid string          `json:"spotlight_unfocus_rid"`
		Metadata            json.RawMessage `json:"metadata"`
		Key                 string          `json:"key"`
		Value               json.RawMessage `json:"value"`
		Push                bool            `json:"push"`
	}
	if m, ok := rpcAliases[method]; ok {
		method = m
	}
	if !slices.Contains(c.rpcAllowed(), method) {
		return nil, rpcNoMethod
	}
	if len(raw) > 0 && json.Unmarshal(raw, &p) != nil {
		return nil, rpcInvalidParams
	}
	type spotResult struct {
		ChannelID           string `json:"channel_id"`
		RecvConnectionID    string `json:"recv_connection_id"`
		SpotlightFocusRid   string `json:"spotlight_focus_rid,omitempty"`
		SpotlightUnfocusRid string `json:"spotlight_unfocus_rid,omitempty"`
	}
	var (
		err    error
		result any
	)
	switch method {
	case rpcRequestSimulcastRid:
		if p.Rid == "" {
			return nil, rpcInvalidParams
		}
		err = c.hub.RequestRid(c.channelID, c.id, p.SenderConnectionID, p.Rid, false)
		result = struct {
			ChannelID            string `json:"channel_id"`
			ReceiverConnectionID string `json:"receiver_connection_id"`
			Rid                  string `json:"rid"`
			SenderConnectionID   string `json:"sender_connection_id,omitempty"`
		}{c.channelID, c.id, p.Rid, p.SenderConnectionID}
	case rpcRequestSpotlightRid:
		if p.SpotlightFocusRid == "" || p.SpotlightUnfocusRid == "" {
			return nil, rpcInvalidParams
		}
		err = c.hub.RequestSpotlightRid(c.channelID, c.id, p.SendConnectionID, p.SpotlightFocusRid, p.SpotlightUnfocusRid, false)
		result = spotResult{c.channelID, c.id, p.SpotlightFocusRid, p.SpotlightUnfocusRid}
	case rpcResetSpotlightRid:
		err = c.hub.RequestSpotlightRid(c.channelID, c.id, p.SendConnectionID, "", "", true)
		result = spotResult{ChannelID: c.channelID, RecvConnectionID: c.id}
	case rpcPutSignalingNotifyMetadata, rpcPutSignalingNotifyMetadataItem:
		u := MetadataUpdate{Metadata: p.Metadata, Push: p.Push}
		if method == rpcPutSignalingNotifyMetadataItem {
			if p.Key == "" || len(p.Value) == 0 {
				return nil, rpcInvalidParams
			}
			u = MetadataUpdate{Key: p.Key, Value: p.Value, Push: p.Push}
		}
		// The result is the connection's metadata after the change (the
		// Result type of both methods in Sora's Swift SDK).
		result, err = c.hub.UpdateNotifyMetadata(c.channelID, c.id, u)
	}
	if err != nil {
		// A bad rid, a sender not in the channel, a connection or channel
		// without spotlight: all are the params' fault.
		return nil, rpcInvalidParams
	}
	return result, nil
}
