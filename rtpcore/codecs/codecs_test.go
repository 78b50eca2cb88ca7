package codecs

import (
	"testing"
)

func TestParse(t *testing.T) {
	for _, c := range []struct {
		name  string
		codec Codec
		p     []byte
		want  Descriptor
	}{
		// VP8: X, S, PID 0; I with a 15-bit picture ID, L with TL0PICIDX,
		// T; then the payload header with P = 0 (key frame).
		{"vp8 key", VP8, []byte{0x90, 0xe0, 0x81, 0x23, 0x45, 0x40, 0x10, 0x02, 0x9d, 0x01, 0x2a},
			Descriptor{Parsed: true, KeyStart: true, FrameStart: true, PicIDOff: 2, PicIDBits: 15, PicID: 0x0123, TL0Off: 4, TL0: 0x45}},
		{"vp8 delta", VP8, []byte{0x90, 0x80, 0x81, 0x24, 0x11},
			Descriptor{Parsed: true, FrameStart: true, PicIDOff: 2, PicIDBits: 15, PicID: 0x0124}},
		{"vp8 continuation", VP8, []byte{0x80, 0x80, 0x81, 0x24, 0x00},
			Descriptor{Parsed: true, PicIDOff: 2, PicIDBits: 15, PicID: 0x0124}},
		{"vp8 7-bit picture id", VP8, []byte{0x90, 0x80, 0x05, 0x00},
			Descriptor{Parsed: true, KeyStart: true, FrameStart: true, PicIDOff: 2, PicIDBits: 7, PicID: 5}},
		{"vp8 no extension", VP8, []byte{0x10, 0x00}, Descriptor{Parsed: true, KeyStart: true, FrameStart: true}},
		{"vp8 truncated picture id", VP8, []byte{0x90, 0x80, 0x81}, Descriptor{}},
		{"vp8 empty", VP8, nil, Descriptor{}},
		// VP9: I (15-bit picture ID), L (non-flexible: TL0PICIDX), B; no P.
		{"vp9 key", VP9, []byte{0xa8, 0x80, 0x07, 0x00, 0x09, 0x00},
			Descriptor{Parsed: true, KeyStart: true, FrameStart: true, PicIDOff: 1, PicIDBits: 15, PicID: 7, TL0Off: 4, TL0: 9}},
		{"vp9 delta", VP9, []byte{0xe8, 0x80, 0x08, 0x00, 0x09, 0x00},
			Descriptor{Parsed: true, FrameStart: true, PicIDOff: 1, PicIDBits: 15, PicID: 8, TL0Off: 4, TL0: 9}},
		{"vp9 upper spatial layer", VP9, []byte{0xa8, 0x80, 0x07, 0x02, 0x09},
			Descriptor{Parsed: true, FrameStart: true, PicIDOff: 1, PicIDBits: 15, PicID: 7, TL0Off: 4, TL0: 9}},
		{"vp9 truncated", VP9, []byte{0xa8, 0x80}, Descriptor{}},
		// H.264: SPS alone, STAP-A with SPS and PPS, FU-A start of an IDR,
		// FU-A middle, a non-IDR slice.
		{"h264 sps", H264, []byte{0x67, 0x42}, Descriptor{Parsed: true, KeyStart: true, FrameStart: true}},
		{"h264 stap-a", H264, []byte{0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x02, 0x68, 0xce}, Descriptor{Parsed: true, KeyStart: true, FrameStart: true}},
		{"h264 fu-a idr start", H264, []byte{0x7c, 0x85, 0x88}, Descriptor{Parsed: true, KeyStart: true, FrameStart: true}},
		{"h264 fu-a idr middle", H264, []byte{0x7c, 0x05, 0x88}, Descriptor{Parsed: true, FrameStart: true}},
		{"h264 slice", H264, []byte{0x41, 0x9a}, Descriptor{Parsed: true, FrameStart: true}},
		{"h264 stap-a overrun", H264, []byte{0x78, 0x00, 0x09, 0x67}, Descriptor{}},
		// H.265: VPS, FU start of an IDR_W_RADL (19), TRAIL_R (1).
		{"h265 vps", H265, []byte{0x40, 0x01, 0x0c}, Descriptor{Parsed: true, KeyStart: true, FrameStart: true}},
		{"h265 fu idr", H265, []byte{0x62, 0x01, 0x93, 0xaf}, Descriptor{Parsed: true, KeyStart: true, FrameStart: true}},
		{"h265 trail", H265, []byte{0x02, 0x01, 0xaf}, Descriptor{Parsed: true, FrameStart: true}},
		// AV1: N set; W = 1 with a sequence header OBU; a delta frame.
		{"av1 new sequence", AV1, []byte{0x18, 0x0a, 0x0b}, Descriptor{Parsed: true, KeyStart: true, FrameStart: true}},
		{"av1 sequence header", AV1, []byte{0x10, 0x0a, 0x0b}, Descriptor{Parsed: true, KeyStart: true, FrameStart: true}},
		{"av1 sequence header with length", AV1, []byte{0x20, 0x02, 0x0a, 0x0b, 0x32}, Descriptor{Parsed: true, KeyStart: true, FrameStart: true}},
		{"av1 frame", AV1, []byte{0x10, 0x32, 0x00}, Descriptor{Parsed: true, FrameStart: true}},
		{"av1 continuation", AV1, []byte{0x90, 0x0a}, Descriptor{Parsed: true, FrameStart: true}},
	} {
		if got := Parse(c.codec, c.p); got != c.want {
			t.Errorf("%s: got %+v\nwant %+v", c.name, got, c.want)
		}
	}
}

func TestRewritePictureID(t *testing.T) {
	p := []byte{0x90, 0xe0, 0x81, 0x23, 0x45, 0x40, 0x10}
	d := Parse(VP8, p)
	RewritePictureID(p, &d, 0x7ffe+3, 7) // wraps modulo 2^15
	got := Parse(VP8, p)
	if got.PicID != 1 || got.TL0 != 7 || !got.KeyStart {
		t.Fatalf("rewritten %+v", got)
	}
	p = []byte{0x90, 0x80, 0x05, 0x00}
	d = Parse(VP8, p)
	RewritePictureID(p, &d, 130, 0)
	if got := Parse(VP8, p); got.PicID != 2 || got.PicIDBits != 7 {
		t.Fatalf("7-bit rewritten %+v", got)
	}
}

func TestByName(t *testing.T) {
	for name, want := range map[string]Codec{"VP8": VP8, "vp9": VP9, "H264": H264, "H265": H265, "AV1": AV1, "opus": Unknown} {
		if got := ByName(name); got != want {
			t.Errorf("ByName(%q) = %v", name, got)
		}
	}
}

// FuzzParse: any payload parses without panicking, offsets stay inside it,
// and rewriting at them keeps the descriptor readable.
func FuzzParse(f *testing.F) {
	for _, s := range [][]byte{{0x90, 0xe0, 0x81, 0x23, 0x45, 0x40, 0x10}, {0xa8, 0x80, 0x07, 0x00, 0x09}, {0x78, 0x00, 0x02, 0x67, 0x42},
		{0x62, 0x01, 0x93}, {0x20, 0x02, 0x0a, 0x0b}, {0x7c, 0x85}} {
		f.Add(s, uint8(VP8))
	}
	f.Fuzz(func(t *testing.T, p []byte, c uint8) {
		codec := Codec(c % 6)
		d := Parse(codec, p)
		if !d.Parsed {
			return
		}
		width := 1
		if d.PicIDBits == 15 {
			width = 2
		}
		if d.PicIDOff > 0 && d.PicIDOff+width > len(p) || d.TL0Off > 0 && d.TL0Off >= len(p) {
			t.Fatalf("offsets %+v outside %d bytes", d, len(p))
		}
		q := append([]byte(nil), p...)
		RewritePictureID(q, &d, d.PicID+1, d.TL0+1)
		d2 := Parse(codec, q)
		if d2.KeyStart != d.KeyStart || d2.PicIDOff != d.PicIDOff || d.PicIDOff > 0 && d2.PicID != (d.PicID+1)&d.PicIDMask() {
			t.Fatalf("rewrite changed the descriptor: %+v -> %+v", d, d2)
		}
	})
}
