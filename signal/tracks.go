package signal

import (
	"encoding/json"
	"math/rand/v2"
	"strconv"

	"github.com/hayate-sfu/hayate/media"
	"github.com/hayate-sfu/hayate/signal/jsep"
)

// Tracks and offers. Every function here runs with hub.mu held: a
// connection's offer, its subscriptions and the channel's membership change
// together.
//
// A connection's offer lists its own media first (one recvonly section per
// kind for sending roles, named in `mid`), then one sendonly section per
// track of every other publisher of its channel that it may receive. When a
// publisher joins or leaves, the receivers' offers change and a re-offer is
// sent; one re-offer is in flight per connection and later changes are
// coalesced into the next. A subscriber is fed a track only once it has
// answered an offer announcing it, so it never receives an SSRC it does not
// know.

// kindOf maps an SDP kind to a media kind.
func kindOf(k jsep.Kind) media.Kind {
	if k == jsep.Video {
		return media.Video
	}
	return media.Audio
}

// publishedTracks reads the tracks a client sends from its answer: the
// SSRC of each of its own sections it answered sendonly or sendrecv.
func publishedTracks(offer *jsep.Offer, a *jsep.Answer) []media.Track {
	var out []media.Track
	for i, sec := range a.Sections {
		o := offer.Sections[i]
		if o.Source != nil || o.Direction != jsep.RecvOnly || sec.Rejected {
			continue
		}
		if sec.Direction != jsep.SendOnly && sec.Direction != jsep.SendRecv {
			continue
		}
		tr := media.Track{Kind: kindOf(o.Kind), PayloadType: o.Codec.PayloadType, ClockRate: o.Codec.ClockRate, Codec: o.Codec.Name}
		if len(sec.RIDs) > 1 && o.Kind == jsep.Video {
			// The streams name themselves by rid; subscribers get one
			// stream under an SSRC of Hayate's.
			tr.RIDs, tr.SSRC = sec.RIDs, rand.Uint32()|1
		} else if len(sec.SSRCs) > 0 {
			tr.SSRC = sec.SSRCs[0]
		} else {
			continue
		}
		out = append(out, tr)
	}
	return out
}

// receives reports whether m should be offered the track tr of pub.
func receives(m, pub *Conn, tr media.Track) bool {
	if m == pub || !m.role.Receives() || m.bundleID == pub.bundleID {
		return false
	}
	if tr.Kind == media.Audio && !m.audio || tr.Kind == media.Video && !m.video {
		return false
	}
	return m.caps.Supports(pub.codecOf(tr.Kind))
}

func (c *Conn) codecOf(k media.Kind) jsep.Codec {
	if k == media.Video {
		return c.videoCodec
	}
	return c.audioCodec
}

// addTrackLocked puts pub's track in m's offer: in a free inactive section
// of its kind if there is one (sections are recycled, never removed), else
// in a new one.
func addTrackLocked(m, pub *Conn, tr media.Track) {
	kind := jsep.Audio
	if tr.Kind == media.Video {
		kind = jsep.Video
	}
	src := &jsep.Source{SSRC: tr.SSRC, CNAME: pub.id, StreamID: pub.id, TrackID: pub.id + "-" + string(kind)}
	extras, rtx := subscriberExtras(m, tr)
	src.RTXSSRC = rtx
	for i := range m.offer.Sections {
		s := &m.offer.Sections[i]
		if s.Source != nil && s.Source.SSRC == tr.SSRC && s.Source.StreamID == pub.id {
			return // already offered
		}
	}
	for i := range m.offer.Sections {
		s := &m.offer.Sections[i]
		if s.Kind == kind && s.Direction == jsep.Inactive && s.Source == nil {
			s.Direction, s.Codec, s.Source, s.Extras = jsep.SendOnly, pub.codecOf(tr.Kind), src, extras
			return
		}
	}
	m.offer.Sections = append(m.offer.Sections, jsep.Section{
		Mid: strconv.Itoa(len(m.offer.Sections)), Kind: kind, Direction: jsep.SendOnly, Codec: pub.codecOf(tr.Kind), Source: src,
		Extras: extras,
	})
}

// removeTracksLocked turns the sections carrying pub's tracks in m's offer
// inactive and reports whether any changed.
func removeTracksLocked(m, pub *Conn) bool {
	changed := false
	for i := range m.offer.Sections {
		s := &m.offer.Sections[i]
		if s.Source != nil && s.Source.StreamID == pub.id {
			s.Direction, s.Source, s.Extras = jsep.Inactive, nil, jsep.Extras{}
			changed = true
		}
	}
	return changed
}

// publishLocked announces c's tracks (from its answer) to the receivers of
// its channel.
func (h *Hub) publishLocked(c *Conn, tracks []media.Track) {
	c.tracks = tracks
	c.tr.Publish(tracks)
	for _, m := range c.ch.members {
		changed := false
		for _, tr := range tracks {
			if receives(m, c, tr) {
				addTrackLocked(m, c, tr)
				changed = true
			}
		}
		if changed {
			h.reofferLocked(m)
		}
	}
}

// unpublishLocked takes c's tracks out of its channel.
func (h *Hub) unpublishLocked(c *Conn) {
	if len(c.tracks) == 0 {
		return
	}
	for _, m := range c.ch.members {
		if m == c {
			continue
		}
		m.tr.Unsubscribe(c.tr)
		if removeTracksLocked(m, c) {
			h.reofferLocked(m)
		}
	}
}

// offerExistingLocked adds the tracks of the channel's publishers to a
// joining connection's first offer.
func offerExistingLocked(c *Conn) {
	for _, p := range c.ch.members {
		for _, tr := range p.tracks {
			if receives(c, p, tr) {
				addTrackLocked(c, p, tr)
			}
		}
	}
}

// reofferLocked sends c a re-offer of its current offer, or marks one due
// if another is in flight or the first answer has not come yet.
func (h *Hub) reofferLocked(c *Conn) {
	if c.sent != nil || !c.answered {
		c.reofferDue = true
		return
	}
	c.reofferDue = false
	c.offer.Version++
	c.sent = c.offer.Clone()
	b, err := json.Marshal(reOfferMessage{Type: "re-offer", SDP: c.sent.Marshal()})
	if err != nil {
		return
	}
	h.stats.ReOffers.Add(1)
	c.signal(labelSignaling, b)
}

// answeredLocked applies an accepted answer to offer o: c is now fed every
// track o announces, and a due re-offer goes out.
func (h *Hub) answeredLocked(c *Conn, o *jsep.Offer, a *jsep.Answer) {
	for i, s := range o.Sections {
		if s.Source == nil {
			continue
		}
		if p := h.conns[s.Source.StreamID]; p != nil && p.tr != nil {
			tr := media.Track{Kind: kindOf(s.Kind), SSRC: s.Source.SSRC}
			if i < len(a.Sections) && a.Sections[i].RTX && s.Source.RTXSSRC != 0 {
				tr.RTXSSRC, tr.RTXPayloadType = s.Source.RTXSSRC, jsep.RTXPayloadType(s.Codec)
			}
			c.tr.Subscribe(p.tr, []media.Track{tr})
			applyCapsLocked(c, p)
		}
	}
	if c.reofferDue {
		h.reofferLocked(c)
	}
}
