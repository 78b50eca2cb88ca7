package signal

import (
	"testing"

	"github.com/hayate-sfu/hayate/media"
)

func TestSimulcastEncodings(t *testing.T) {
	enc := simulcastEncodings("VP8", 3150)
	if len(enc) != 3 || enc[0].RID != "r0" || enc[2].ScaleResolutionDownBy != 1 || enc[0].ScaleResolutionDownBy != 4 {
		t.Fatalf("%+v", enc)
	}
	if enc[0].MaxBitrate != 150_000 || enc[1].MaxBitrate != 500_000 || enc[2].MaxBitrate != 2_500_000 || enc[0].ScalabilityMode != "" {
		t.Fatalf("shares %+v", enc)
	}
	if enc := simulcastEncodings("AV1", 0); enc[1].MaxBitrate != 0 || enc[1].ScalabilityMode != "L1T3" {
		t.Fatalf("AV1 without a bit rate %+v", enc)
	}
}

func TestRidLayer(t *testing.T) {
	for rid, want := range map[string]int{"": media.LayerMax, "none": media.LayerNone, "r0": 0, "r1": 1, "r2": 2, "auto": media.LayerMax} {
		if got, ok := ridLayer(rid); !ok || got != want {
			t.Errorf("ridLayer(%q) = %d %v", rid, got, ok)
		}
	}
	if _, ok := ridLayer("r3"); ok {
		t.Error("r3 accepted")
	}
	if layerRID(media.LayerMax) != "r2" || layerRID(-1) != "none" || layerRID(1) != "r1" {
		t.Error("layerRID")
	}
}
