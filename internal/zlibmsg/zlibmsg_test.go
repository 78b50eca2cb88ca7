package zlibmsg

import (
	"bytes"
	"compress/zlib"
	"errors"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for _, s := range []string{"", "hello", strings.Repeat("sora hayate ", 1000)} {
		z := Deflate(nil, []byte(s))
		got, err := Inflate([]byte("prefix"), z, len(s))
		if err != nil || string(got) != "prefix"+s {
			t.Fatalf("%d bytes: %q %v", len(s), got[:min(len(got), 20)], err)
		}
	}
}

// TestStandardStream: a stream from another encoder (compress/zlib at
// best compression, like a browser's CompressionStream output) inflates.
func TestStandardStream(t *testing.T) {
	var b bytes.Buffer
	w, _ := zlib.NewWriterLevel(&b, zlib.BestCompression)
	w.Write([]byte(`{"type":"re-answer"}`))
	w.Close()
	got, err := Inflate(nil, b.Bytes(), 100)
	if err != nil || string(got) != `{"type":"re-answer"}` {
		t.Fatalf("%q %v", got, err)
	}
}

func TestBounds(t *testing.T) {
	bomb := Deflate(nil, make([]byte, 1<<20))
	if len(bomb) > 2000 {
		t.Fatalf("bomb is %d bytes", len(bomb))
	}
	if got, err := Inflate([]byte("x"), bomb, 4096); !errors.Is(err, ErrTooLarge) || string(got) != "x" {
		t.Errorf("1 MiB through a 4 KiB bound: %q %v", got, err)
	}
	z := Deflate(nil, []byte("hello world"))
	for name, in := range map[string][]byte{
		"empty":     nil,
		"not zlib":  []byte("hello"),
		"truncated": z[:len(z)-3],
		"bad sum":   append(append([]byte(nil), z[:len(z)-1]...), z[len(z)-1]^1),
	} {
		if _, err := Inflate(nil, in, 100); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// FuzzInflate: compressed messages come from clients. Inflate never
// panics nor exceeds its bound, and what it accepts re-compresses to the
// same text.
func FuzzInflate(f *testing.F) {
	f.Add(Deflate(nil, []byte(`{"type":"disconnect","reason":"NO-ERROR"}`)))
	f.Add(Deflate(nil, make([]byte, 5000)))
	f.Add([]byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})
	f.Add([]byte("not zlib"))
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := Inflate(nil, in, 1024)
		if err != nil {
			if len(out) != 0 {
				t.Fatal("output on error")
			}
			return
		}
		if len(out) > 1024 {
			t.Fatalf("%d bytes past a 1024 bound", len(out))
		}
		again, err := Inflate(nil, Deflate(nil, out), 1024)
		if err != nil || !bytes.Equal(again, out) {
			t.Fatalf("re-compression does not round-trip: %v", err)
		}
	})
}
