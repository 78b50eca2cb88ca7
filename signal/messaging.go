package signal

import (
	"errors"

	"github.com/hayate-sfu/hayate/internal/zlibmsg"
	"github.com/hayate-sfu/hayate/media"
)

// Real-time messaging (https://sora-doc.shiguredo.jp/MESSAGING): a message
// a client sends on a `#` label goes to every other connection of its
// channel that declared the same label with a direction that receives
// (sendrecv or recvonly) and has the channel open, except connections with
// the sender's bundle_id. A client whose direction does not send
// (recvonly) is not relayed. Compression is per connection and label: a
// message is inflated once if its sender compresses, and compressed again
// (once per message) for receivers that asked for it; with Sora's
// sender_connection_id header the receiver gets the sender's 26-byte
// connection_id before the message, inside the compression.
//
// The receivers of each label are a copy-on-write index per channel,
// rebuilt under the hub's lock when a label opens or closes or a member
// leaves, and read with one atomic load per message.

// relayIndex lists, per messaging label, the connections sent to on it.
type relayIndex map[string][]*Conn

// relayChanged rebuilds the relay index of c's channel after one of c's
// messaging labels opened or closed.
func (h *Hub) relayChanged(c *Conn) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c.ch != nil && !c.left {
		h.rebuildRelayLocked(c.ch)
	}
}

// rebuildRelayLocked recomputes the channel's relay index.
func (h *Hub) rebuildRelayLocked(ch *channel) {
	idx := relayIndex{}
	for _, m := range ch.members {
		if m.dc == nil || m.left {
			continue
		}
		for _, l := range m.dc.labels {
			if l.messaging() && l.receives() && l.open.Load() {
				idx[l.label] = append(idx[l.label], m)
			}
		}
	}
	ch.relay.Store(&idx)
}

// Variants of a relayed message: with the sender's connection_id in
// front, compressed.
const (
	withSenderID = 1 << iota
	compressed
)

// relay sends a message c sent on its messaging label l to the label's
// receivers in the channel.
func (c *Conn) relay(l *dcLabel, msg []byte, binary bool) {
	h := c.hub
	if !l.sends() {
		h.stats.DataDropDirection.Add(1)
		return
	}
	h.stats.DataMessagesIn.Add(1)
	idx := c.ch.relay.Load()
	if idx == nil {
		return
	}
	plain := msg
	if l.compress {
		out, err := zlibmsg.Inflate(nil, msg, h.set.DataChannelMaxMessageSize)
		if err != nil {
			h.stats.DataDropInflate.Add(1)
			return
		}
		plain = out
	}
	var variants [4][]byte
	var built [4]bool
	for _, r := range (*idx)[l.label] {
		if r == c || r.bundleID == c.bundleID {
			continue
		}
		rl := r.dc.byLabel[l.label]
		dt, ok := r.tr.(media.DataTransport)
		if rl == nil || !ok {
			continue
		}
		v := 0
		if rl.senderID {
			v |= withSenderID
		}
		if rl.compress {
			v |= compressed
		}
		if !built[v] {
			variants[v] = c.variant(v, msg, plain, l.compress)
			built[v] = true
		}
		err := dt.SendData(l.label, variants[v], binary || rl.compress)
		switch {
		case err == nil:
			h.stats.DataRelayed.Add(1)
		case errors.Is(err, media.ErrDataQueueFull):
			h.stats.DataQueueFull.Add(1)
			r.requestClose(ErrDataChannelQueueFull)
		case errors.Is(err, media.ErrDataTooLarge):
			h.stats.DataDropTooLarge.Add(1)
		}
	}
}

// variant builds the form v of a message: raw is what the sender sent,
// plain its inflated text.
func (c *Conn) variant(v int, raw, plain []byte, senderCompressed bool) []byte {
	if v == compressed && senderCompressed {
		return raw // already in the receiver's form
	}
	out := plain
	if v&withSenderID != 0 {
		out = append(append(make([]byte, 0, len(c.id)+len(plain)), c.id...), plain...)
	}
	if v&compressed != 0 {
		out = zlibmsg.Deflate(nil, out)
	}
	return out
}
