package signal

import (
	"encoding/json"
	"maps"
	"slices"
	"time"

	"github.com/hayate-sfu/hayate/media"
	"github.com/hayate-sfu/hayate/signal/jsep"
	"github.com/hayate-sfu/hayate/webhook"
)

// Spotlight (https://sora-doc.shiguredo.jp/SPOTLIGHT): in a channel of
// many publishers, each viewer receives the few publishers in focus at
// the focus rid and every other one at the unfocus rid, so that a meeting
// of N costs far fewer than N² full streams. It runs on simulcast: a
// spotlight connection is offered simulcast whether or not it asked.
//
// Focus follows voice: a spotlight publisher's audio section is offered
// the audio level header extension (RFC 6464), the media path counts the
// packets that carry speech (media.VoiceTransport), and every
// spotlightTick the channel's focus is the spotlight_number publishers
// that spoke most recently (a tick in which at least half of the packets
// with a level were speech counts as speaking). Publishers that never
// spoke rank by when they joined, so the first ones are in focus until
// someone speaks. Each change is told to every connection with
// signaling_notify on as spotlight.focused / spotlight.unfocused.
//
// Choices where Sora's document is silent or was not available to us:
// spotlight_number defaults to 1 (1 to 8 accepted, else
// 4400 INVALID-SPOTLIGHT-NUMBER); the focus rid defaults to r1 and the
// unfocus rid to r0 (none, r0, r1 or r2 accepted, else
// 4400 INVALID-SPOTLIGHT-RID); the channel's spotlight_number is that of
// its first spotlight connection; every publisher's audio is forwarded to
// everyone, focused or not (audio is cheap; only video is capped); a
// viewer's own RequestRtpStream / RequestSimulcastRid cap for a publisher
// wins over the spotlight's.

const (
	// spotlightTick is how often a channel's focus is chosen again.
	spotlightTick = 300 * time.Millisecond
	// defaultSpotlightNumber and maxSpotlightNumber bound spotlight_number.
	defaultSpotlightNumber = 1
	maxSpotlightNumber     = 8
)

// spotlightConn is what a connection asked of spotlight.
type spotlightConn struct {
	on             bool
	number         int
	focus, unfocus int // media layers
}

// spotlight is a channel's focus state, guarded by the hub's mu.
type spotlight struct {
	number int
	// spoke is when each publisher last spoke (ns; unfocused by the API:
	// -1, after those that never spoke); focused is the current focus;
	// fixed are the publishers FocusSpotlightFixed keeps in focus.
	spoke   map[string]int64
	focused map[string]bool
	fixed   map[string]bool
}

func newSpotlight(number int) *spotlight {
	return &spotlight{number: number, spoke: map[string]int64{}, focused: map[string]bool{}, fixed: map[string]bool{}}
}

// applySpotlight takes spotlight, spotlight_number, spotlight_focus_rid and
// spotlight_unfocus_rid from connect.
func (c *Conn) applySpotlight(cm *connectMessage) *CloseError {
	if cm.Spotlight == nil || !*cm.Spotlight {
		return nil
	}
	return c.setSpotlight(spotlightConn{on: true, number: defaultSpotlightNumber, focus: 1, unfocus: 0},
		cm.SpotlightNumber, cm.SpotlightFocusRid, cm.SpotlightUnfocusRid)
}

// applySpotlightPayouts applies the auth webhook's spotlight payouts
// (https://sora-doc.shiguredo.jp/AUTH_WEBHOOK, sora-server-sdk-ts
// AuthWebhookAcceptResponse; payout > connect): spotlight: false turns a
// spotlight connect into a plain one (simulcast as connect asked),
// spotlight: true makes any connect a spotlight one, and spotlight_number
// and the rids replace connect's. spotlight_encodings replaces the
// offered encodings of a spotlight publisher as simulcast_encodings does.
// Without spotlight (asked or paid out) the other spotlight payouts have
// nothing to apply to and are ignored.
func (c *Conn) applySpotlightPayouts(cm *connectMessage, d webhook.Decision) *CloseError {
	s := c.spot
	if d.Spotlight != nil {
		if !*d.Spotlight {
			c.spot = spotlightConn{}
			c.simulcast = cm.Simulcast != nil && *cm.Simulcast
			return nil
		}
		if !s.on {
			s = spotlightConn{on: true, number: defaultSpotlightNumber, focus: 1, unfocus: 0}
		}
	}
	if !s.on {
		return nil
	}
	var focus, unfocus string
	if d.SpotlightFocusRid != nil {
		focus = *d.SpotlightFocusRid
	}
	if d.SpotlightUnfocusRid != nil {
		unfocus = *d.SpotlightUnfocusRid
	}
	if e := c.setSpotlight(s, d.SpotlightNumber, focus, unfocus); e != nil {
		return e
	}
	if enc := nonNull(d.SpotlightEncodings); enc != nil {
		var list []map[string]any
		if json.Unmarshal(enc, &list) != nil || len(list) == 0 {
			return ErrInvalidSimulcastEncodings
		}
		c.encodings = enc
	}
	return nil
}

// setSpotlight makes the connection a spotlight one from s, with number
// and the rids ("" keeps s's) replacing s's.
func (c *Conn) setSpotlight(s spotlightConn, number *int, focusRid, unfocusRid string) *CloseError {
	if number != nil {
		if n := *number; n < 1 || n > maxSpotlightNumber {
			return ErrInvalidSpotlightNumber
		}
		s.number = *number
	}
	for _, f := range []struct {
		rid string
		to  *int
	}{{focusRid, &s.focus}, {unfocusRid, &s.unfocus}} {
		if f.rid == "" {
			continue
		}
		if f.rid == "none" {
			*f.to = media.LayerNone
			continue
		}
		i := slices.Index(jsep.SimulcastRIDs, f.rid)
		if i < 0 {
			return ErrInvalidSpotlightRid
		}
		*f.to = i
	}
	c.spot = s
	c.simulcast = true
	return nil
}

// spotlightNotify is Sora's notify spotlight.focused / spotlight.unfocused
// (docs/spec/sora-protocol.md §1.9).
type spotlightNotify struct {
	Type         string  `json:"type"`
	EventType    string  `json:"event_type"`
	ClientID     *string `json:"client_id"`
	ConnectionID string  `json:"connection_id"`
	Audio        bool    `json:"audio"`
	Video        bool    `json:"video"`
	Fixed        bool    `json:"fixed"`
}

// spotlightHook is Sora's spotlight.focused / spotlight.unfocused event
// webhook (sora-server-sdk-ts EventWebhookSpotlightFocusedRequest; fixed
// only when focused). It goes on the publisher's event queue, so it comes
// between its connection.created and connection.destroyed.
type spotlightHook struct {
	hookHeader
	LogWritten      bool   `json:"log_written"`
	ChannelID       string `json:"channel_id"`
	ClientID        string `json:"client_id"`
	BundleID        string `json:"bundle_id"`
	ConnectionID    string `json:"connection_id"`
	SpotlightNumber int    `json:"spotlight_number"`
	Fixed           *bool  `json:"fixed,omitempty"`
	Audio           bool   `json:"audio"`
	Video           bool   `json:"video"`
}

func (h *Hub) spotlightPayload(typ string, p *Conn, sp *spotlight) spotlightHook {
	hk := spotlightHook{hookHeader: h.header(typ), ChannelID: p.channelID, ClientID: p.clientID, BundleID: p.bundleID,
		ConnectionID: p.id, SpotlightNumber: sp.number, Audio: p.audio, Video: p.video}
	if typ == "spotlight.focused" {
		fixed := sp.fixed[p.id]
		hk.Fixed = &fixed
	}
	return hk
}

// spotlightLoop chooses every spotlight channel's focus each tick.
func (h *Hub) spotlightLoop() {
	t := time.NewTicker(spotlightTick)
	defer t.Stop()
	for {
		select {
		case <-h.ctx.Done():
			return
		case now := <-t.C:
			h.mu.Lock()
			for _, ch := range h.channels {
				if ch.spot != nil {
					h.refocusLocked(ch, now.UnixNano())
				}
			}
			h.mu.Unlock()
		}
	}
}

// refocusLocked reads the channel's voices, chooses its focus, caps every
// spotlight viewer's stream of every publisher accordingly and tells the
// changes.
func (h *Hub) refocusLocked(ch *channel, now int64) {
	sp := ch.spot
	var pubs []*Conn
	for _, p := range ch.members {
		if !p.role.Sends() || p.tr == nil {
			continue
		}
		pubs = append(pubs, p)
		if speaking(p) {
			sp.spoke[p.id] = now
		}
	}
	gone := func(id string) bool { return !slices.ContainsFunc(pubs, func(p *Conn) bool { return p.id == id }) }
	maps.DeleteFunc(sp.spoke, func(id string, _ int64) bool { return gone(id) })
	maps.DeleteFunc(sp.fixed, func(id string, _ bool) bool { return gone(id) })
	// Fixed publishers first, then the most recent speaker; members are
	// in join order, which the stable sort keeps among equals (those that
	// never spoke).
	slices.SortStableFunc(pubs, func(a, b *Conn) int {
		if fa, fb := sp.fixed[a.id], sp.fixed[b.id]; fa != fb {
			if fa {
				return -1
			}
			return 1
		}
		sa, sb := sp.spoke[a.id], sp.spoke[b.id]
		switch {
		case sa > sb:
			return -1
		case sa < sb:
			return 1
		}
		return 0
	})
	focused := make(map[string]bool, sp.number)
	for _, p := range pubs[:min(sp.number, len(pubs))] {
		focused[p.id] = true
	}
	for _, p := range pubs {
		switch {
		case focused[p.id] && !sp.focused[p.id]:
			h.stats.SpotlightFocused.Add(1)
			h.hooks.Event.Send(p.id, h.spotlightPayload("spotlight.focused", p, sp))
		case !focused[p.id] && sp.focused[p.id]:
			h.hooks.Event.Send(p.id, h.spotlightPayload("spotlight.unfocused", p, sp))
		}
	}
	sp.focused = focused
	for _, c := range ch.members {
		tellFocusLocked(c, pubs, focused, sp.fixed)
	}
	for _, c := range ch.members {
		if !c.spot.on {
			continue
		}
		for _, p := range pubs {
			if p == c {
				continue
			}
			rids, ok := c.spotRids[p.id]
			if !ok {
				rids, ok = c.spotRids[""]
			}
			if !ok {
				rids = [2]int{c.spot.focus, c.spot.unfocus}
			}
			want := rids[1]
			if focused[p.id] {
				want = rids[0]
			}
			c.ridMu.Lock()
			had, ok := c.spotBySender[p.id]
			if c.spotBySender == nil {
				c.spotBySender = map[string]int{}
			}
			c.spotBySender[p.id] = want
			c.ridMu.Unlock()
			if !ok || had != want {
				applyCapsLocked(c, p)
			}
		}
	}
}

// speaking takes p's voice counts since the last tick: at least half of
// the packets that carried a level were speech.
func speaking(p *Conn) bool {
	vt, ok := p.tr.(media.VoiceTransport)
	if !ok {
		return false
	}
	for _, tr := range p.tracks {
		if tr.Kind != media.Audio {
			continue
		}
		if voiced, heard := vt.TakeVoice(tr.SSRC); heard > 0 && 2*voiced >= heard {
			return true
		}
	}
	return false
}

// tellFocusLocked tells c (if it takes notifies) which publishers came
// into focus or left it since it was last told: a connection that joins
// learns the focus as it stands.
func tellFocusLocked(c *Conn, pubs []*Conn, focused, fixed map[string]bool) {
	if !c.notify {
		return
	}
	if c.spotTold == nil {
		c.spotTold = map[string]bool{}
	}
	for _, p := range pubs {
		if focused[p.id] == c.spotTold[p.id] {
			continue
		}
		ev := "spotlight.unfocused"
		if focused[p.id] {
			ev = "spotlight.focused"
		}
		m := spotlightNotify{Type: "notify", EventType: ev, ConnectionID: p.id, Audio: p.audio, Video: p.video, Fixed: fixed[p.id]}
		if p.clientID != "" {
			m.ClientID = &p.clientID
		}
		if b, err := json.Marshal(m); err == nil {
			c.signal(labelNotify, b)
		}
		c.spotTold[p.id] = focused[p.id]
	}
	for id := range c.spotTold {
		if !slices.ContainsFunc(pubs, func(p *Conn) bool { return p.id == id }) {
			delete(c.spotTold, id) // gone: its connection.destroyed says so
		}
	}
}

// SpotlightOp is what the spotlight API does to one publisher's focus
// (https://sora-doc.shiguredo.jp/API_SPOTLIGHT).
type SpotlightOp int

const (
	// SpotlightFocus (FocusSpotlight) brings the publisher into focus
	// now, as if it had just spoken: the next to speak may take its place.
	SpotlightFocus SpotlightOp = iota
	// SpotlightFocusFixed (FocusSpotlightFixed) keeps it in focus, ahead
	// of every speaker, until SpotlightUnfocus.
	SpotlightFocusFixed
	// SpotlightUnfocus (UnfocusSpotlight) takes it out of focus and ends a
	// fixed focus: it ranks after every other publisher until it speaks
	// again.
	SpotlightUnfocus
)

// spotlightLocked finds a spotlight channel and, when id is not empty, one
// of its connections.
func (h *Hub) spotlightLocked(channelID, id string) (*channel, *Conn, error) {
	ch := h.channels[channelID]
	if ch == nil {
		return nil, nil, ErrChannelNotFound
	}
	if ch.spot == nil {
		return nil, nil, ErrNotSpotlight
	}
	if id == "" {
		return ch, nil, nil
	}
	c := h.conns[id]
	if c == nil || c.ch != ch {
		return nil, nil, ErrConnectionNotFound
	}
	return ch, c, nil
}

// Spotlight applies a spotlight API operation to publisher connectionID
// of the channel; the focus is chosen again at once.
func (h *Hub) Spotlight(channelID, connectionID string, op SpotlightOp) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	ch, c, err := h.spotlightLocked(channelID, connectionID)
	if err != nil {
		return err
	}
	if !c.role.Sends() {
		return ErrConnectionNotFound // not a publisher: nothing to focus
	}
	now := time.Now().UnixNano()
	sp := ch.spot
	switch op {
	case SpotlightFocus:
		// A nanosecond ahead of whoever speaks in this instant.
		sp.spoke[c.id] = now + 1
	case SpotlightFocusFixed:
		sp.fixed[c.id] = true
	case SpotlightUnfocus:
		delete(sp.fixed, c.id)
		sp.spoke[c.id] = -1
	}
	h.refocusLocked(ch, now)
	return nil
}

// ChangeSpotlightNumber sets how many publishers a spotlight channel has
// in focus (1 to 8, else ErrInvalidSpotlightNumber); the focus is
// chosen again at once.
func (h *Hub) ChangeSpotlightNumber(channelID string, number int) error {
	if number < 1 || number > maxSpotlightNumber {
		return ErrInvalidSpotlightNumber
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	ch, _, err := h.spotlightLocked(channelID, "")
	if err != nil {
		return err
	}
	ch.spot.number = number
	h.refocusLocked(ch, time.Now().UnixNano())
	return nil
}

// RequestSpotlightRid sets the focus and unfocus rids spotlight viewer
// receiverID receives senderID's video at (every publisher's when senderID
// is empty); reset returns them to the viewer's own (Sora:
// RequestSpotlightRid, ResetSpotlightRid). A rid is none, r0, r1 or r2.
func (h *Hub) RequestSpotlightRid(channelID, receiverID, senderID, focus, unfocus string, reset bool) error {
	return h.requestSpotlightRids(channelID, []string{receiverID}, senderID, focus, unfocus, reset)
}

// BatchRequestSpotlightRid is RequestSpotlightRid for several viewers
// (Sora: BatchRequestSpotlightRid): every one of them, or none when one
// is not a spotlight viewer of the channel (the error names the first
// such).
func (h *Hub) BatchRequestSpotlightRid(channelID string, receiverIDs []string, senderID, focus, unfocus string) error {
	return h.requestSpotlightRids(channelID, receiverIDs, senderID, focus, unfocus, false)
}

func (h *Hub) requestSpotlightRids(channelID string, receiverIDs []string, senderID, focus, unfocus string, reset bool) error {
	var rids [2]int
	if !reset {
		for i, rid := range []string{focus, unfocus} {
			l, ok := ridLayer(rid)
			if !ok || l == media.LayerMax {
				return ErrInvalidRid
			}
			rids[i] = l
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	ch, _, err := h.spotlightLocked(channelID, "")
	if err != nil {
		return err
	}
	viewers := make([]*Conn, 0, len(receiverIDs))
	for _, id := range receiverIDs {
		_, c, err := h.spotlightLocked(channelID, id)
		if err != nil {
			return err
		}
		if !c.spot.on {
			return ErrNotSpotlight
		}
		viewers = append(viewers, c)
	}
	if senderID != "" {
		if p := h.conns[senderID]; p == nil || p.ch != ch {
			return ErrConnectionNotFound
		}
	}
	for _, c := range viewers {
		switch {
		case reset && senderID == "":
			c.spotRids = nil
		case reset:
			delete(c.spotRids, senderID)
		default:
			if c.spotRids == nil {
				c.spotRids = map[string][2]int{}
			}
			c.spotRids[senderID] = rids
		}
	}
	h.refocusLocked(ch, time.Now().UnixNano())
	return nil
}
