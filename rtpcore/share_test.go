package rtpcore

import "testing"

// TestFairShare: a viewer's estimate is split by max-min fairness among
// the simulcast tracks it receives. Tracks capped low (a spotlight's
// unfocused publishers at r0) take only what their layer needs and leave
// the rest to the others; tracks that all want more share evenly.
func TestFairShare(t *testing.T) {
	const now = int64(10_000_000_000)
	track := func(cap int32, rates ...int64) *downTrack {
		pt := &pubTrack{simulcast: true}
		for i, r := range rates {
			ly := &layer{pt: pt, index: i}
			ly.bitrate.Store(r)
			ly.lastAt.Store(now)
			pt.layers = append(pt.layers, ly)
		}
		d := &downTrack{pt: pt}
		d.maxLayer.Store(cap)
		return d
	}
	rates := []int64{100_000, 300_000, 600_000}
	focused := track(2, rates...)
	downs := []*downTrack{track(0, rates...), focused, track(0, rates...)}
	share := fairShare(downs, 1_000_000, len(downs), now)
	if need := focused.need(now); share < need {
		t.Errorf("share %d: the focused track's r2 (needs %d) does not fit beside two tracks capped at r0", share, need)
	}
	// Not enough for the focused track's r2: it gets what the two r0
	// tracks leave.
	if share, want := fairShare(downs, 700_000, len(downs), now), 700_000-2*downs[0].need(now); share != want {
		t.Errorf("share %d, want %d (what the two r0 tracks leave)", share, want)
	}

	even := []*downTrack{track(2, rates...), track(2, rates...), track(2, rates...)}
	if share := fairShare(even, 900_000, len(even), now); share != 300_000 {
		t.Errorf("three tracks that all want more: share %d, want 300000", share)
	}
	if share := fairShare(downs, 10_000_000, len(downs), now); share != 10_000_000 {
		t.Errorf("an estimate above every need: share %d, want all of it", share)
	}
}
