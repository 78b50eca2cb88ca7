//go:build linux

package rtpcore

import (
	"net/netip"
	"testing"

	"github.com/pion/srtp/v3"

	"github.com/hayate-sfu/hayate/media"
	"github.com/hayate-sfu/hayate/rtpcore/bwe"
)

// TestFixedLayers: a viewer whose estimate carries only the lowest layer
// is given that layer with adaptation on, and its cap's layer with
// adaptation off (simulcast_adaptation = false, Sora's behaviour).
func TestFixedLayers(t *testing.T) {
	for _, fixed := range []bool{false, true} {
		e := testEngine(t)
		e.cfg.FixedLayers = fixed
		p := srtp.ProtectionProfileAeadAes128Gcm
		pub := readyTransport(t, e, p, newKeys(t, p), newKeys(t, p), netip.MustParseAddrPort("127.0.0.1:9"))
		tr := media.Track{Kind: media.Video, SSRC: 0x1234, PayloadType: 96, ClockRate: 90000, Codec: "VP8", RIDs: []string{"r0", "r1", "r2"}}
		pub.Publish([]media.Track{tr})
		sub := readyTransport(t, e, p, newKeys(t, p), newKeys(t, p), netip.MustParseAddrPort("127.0.0.1:10"))
		cc := &congestion{twccID: 5, est: bwe.New(bwe.Config{Initial: 200_000})}
		cc.estimate.Store(200_000)
		sub.cc.Store(cc)
		sub.Subscribe(pub, []media.Track{tr})
		downs := *sub.downs.Load()
		if len(downs) != 1 {
			t.Fatalf("%d down tracks", len(downs))
		}
		d := downs[0]
		now := e.now()
		for i, rate := range []int64{150_000, 500_000, 2_500_000} {
			d.pt.layers[i].bitrate.Store(rate)
			d.pt.layers[i].lastAt.Store(now)
		}
		sub.chooseLayers(now)
		want := int32(0)
		if fixed {
			want = 2
		}
		if got := d.target.Load(); got != want {
			t.Errorf("fixed layers %v: a 200 kbit/s estimate gives layer %d, want %d", fixed, got, want)
		}
	}
}
