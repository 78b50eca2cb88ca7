package packetcache

import (
	"bytes"
	"testing"
)

func TestStoreLoad(t *testing.T) {
	c := New(100) // rounds to 128
	for s := 0; s < 300; s++ {
		seq := uint16(65500) + uint16(s) // wraps
		c.Store(seq, []byte{byte(s), byte(s >> 8), 7})
	}
	start := uint16(65500)
	newest := start + 299
	for back := 0; back < 128; back++ {
		seq := newest - uint16(back)
		p, ok := c.Load(seq, nil)
		s := 299 - back
		if !ok || !bytes.Equal(p, []byte{byte(s), byte(s >> 8), 7}) {
			t.Fatalf("seq %d (%d back): %v %v", seq, back, p, ok)
		}
	}
	if _, ok := c.Load(newest-128, nil); ok {
		t.Fatal("packet older than the ring loaded")
	}
	if _, ok := c.Load(newest+1, nil); ok {
		t.Fatal("future packet loaded")
	}
	if _, ok := New(8).Load(0, nil); ok {
		t.Fatal("empty cache loaded")
	}
	c.Store(1, make([]byte, SlotSize+1))
	if _, ok := c.Load(1, nil); ok {
		t.Fatal("oversized packet kept")
	}
}

func BenchmarkStoreLoad(b *testing.B) {
	c := New(512)
	pkt := make([]byte, 1200)
	dst := make([]byte, 0, SlotSize)
	b.SetBytes(1200)
	b.ReportAllocs()
	var seq uint16
	for b.Loop() {
		c.Store(seq, pkt)
		if _, ok := c.Load(seq-10, dst[:0]); !ok && seq > 10 {
			b.Fatal("miss")
		}
		seq++
	}
}
