package rtpcore

import (
	"fmt"
	"testing"

	"github.com/hayate-sfu/hayate/media"
	"github.com/hayate-sfu/hayate/rtpcore/codecs"
)

// TestConcernsAgreesWithAdmit: the lock-free check that turns away a
// simulcast packet before the subscriber's lock (concerns) never turns
// away one that admit would forward or act on. For every layer being
// forwarded (or none), target, cap, packet layer and key-frame start:
// when concerns says no, admit also refuses the packet, leaves the
// forwarding state and the current layer as they were, and asks no layer
// for a key frame.
func TestConcernsAgreesWithAdmit(t *testing.T) {
	const now = int64(10_000_000_000)
	tr := media.Track{Kind: media.Video, SSRC: 0x1234, ClockRate: 90000, Codec: "VP8", RIDs: []string{"r0", "r1", "r2"}}
	turnedAway := 0
	for cur := int8(-1); cur <= 2; cur++ {
		for _, target := range []int32{media.LayerNone, 0, 1, 2} {
			for _, maxLayer := range []int32{media.LayerNone, 0, 1, 2, media.LayerMax} {
				for l := int8(0); l <= 2; l++ {
					for _, key := range []bool{false, true} {
						name := fmt.Sprintf("cur=%d/target=%d/cap=%d/layer=%d/key=%v", cur, target, maxLayer, l, key)
						pt := &pubTrack{Track: tr, simulcast: true}
						for i, rid := range tr.RIDs {
							ly := &layer{pt: pt, index: i, rid: rid}
							ly.lastAt.Store(now)
							pt.layers = append(pt.layers, ly)
						}
						d := newDownTrack(pt, nil, tr)
						d.target.Store(target)
						d.maxLayer.Store(maxLayer)
						if cur >= 0 {
							d.f.cur, d.f.sent, d.f.lastSeq, d.f.lastTS, d.f.lastAt = cur, true, 100, 9000, now-1_000_000
							d.current.Store(int32(cur))
						}
						if d.concerns(l) {
							continue
						}
						turnedAway++
						before := d.f
						p := &pendingPacket{pt: pt, layer: l, seq: 500, ts: 70000,
							desc: codecs.Descriptor{Parsed: true, KeyStart: key, FrameStart: key}}
						if _, ok := d.admit(p, now); ok {
							t.Errorf("%s: turned away, but admit forwards it", name)
						}
						if d.f != before {
							t.Errorf("%s: turned away, but admit changed the forwarding state", name)
						}
						if got := d.current.Load(); got != int32(cur) {
							t.Errorf("%s: turned away, but admit moved the current layer to %d", name, got)
						}
						for i, ly := range pt.layers {
							if ly.wantKey.Load() {
								t.Errorf("%s: turned away, but admit asked layer %d for a key frame", name, i)
							}
						}
					}
				}
			}
		}
	}
	if turnedAway == 0 {
		t.Fatal("concerns turned nothing away")
	}
}
