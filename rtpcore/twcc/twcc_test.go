package twcc

import (
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/pion/rtcp"
)

type report struct {
	seq      uint16
	received bool
	at       int64
}

func parseAll(t *testing.T, pkt []byte) (Header, []report) {
	t.Helper()
	var out []report
	h, err := Parse(pkt[12:], func(seq uint16, received bool, at int64) { out = append(out, report{seq, received, at}) })
	if err != nil {
		t.Fatal(err)
	}
	return h, out
}

// TestBuildParse: what Build writes, pion/rtcp reads the same way as
// Parse: losses, reordered arrivals (negative deltas), a gap needing a
// large delta, sequence wrap.
func TestBuildParse(t *testing.T) {
	var r Recorder
	base := uint16(65530)
	arrivals := map[uint16]int64{}
	at := int64(10_000_000)
	for i := range 40 {
		seq := base + uint16(i)
		switch {
		case i%9 == 4: // lost
			continue
		case i == 20:
			at += 300_000 // 300 ms gap: a large delta
		case i == 30:
			at -= 2_000 // arrived before its predecessor
		default:
			at += 1_250
		}
		arrivals[seq] = at
	}
	// Record in a shuffled order: arrival order is not sequence order.
	for i := 39; i >= 0; i -= 2 {
		if a, ok := arrivals[base+uint16(i)]; ok {
			r.Record(base+uint16(i), a)
		}
	}
	for i := 38; i >= 0; i -= 2 {
		if a, ok := arrivals[base+uint16(i)]; ok {
			r.Record(base+uint16(i), a)
		}
	}
	pkt := r.Build(nil, 1, 2)
	if len(pkt)%4 != 0 || r.Pending() {
		t.Fatalf("length %d, pending %v", len(pkt), r.Pending())
	}
	h, got := parseAll(t, pkt)
	if h.BaseSeq != base || len(got) != 40 {
		t.Fatalf("base %d, %d reports", h.BaseSeq, len(got))
	}
	first := arrivals[base]
	for _, g := range got {
		a, ok := arrivals[g.seq]
		if g.received != ok {
			t.Fatalf("seq %d received %v, want %v", g.seq, g.received, ok)
		}
		// Arrivals are exact to the 250 µs unit, relative to the first.
		if ok && (g.at-got[0].at)-(a-first) > DeltaUnit || (a-first)-(g.at-got[0].at) > DeltaUnit {
			t.Fatalf("seq %d at %d, want %d (relative)", g.seq, g.at-got[0].at, a-first)
		}
	}
	// pion/rtcp agrees on the statuses and the deltas.
	pk, err := rtcp.Unmarshal(pkt)
	if err != nil {
		t.Fatal(err)
	}
	cc, ok := pk[0].(*rtcp.TransportLayerCC)
	if !ok || cc.BaseSequenceNumber != base || cc.PacketStatusCount != 40 || cc.MediaSSRC != 2 {
		t.Fatalf("pion reads %+v", pk[0])
	}
	received := 0
	for _, g := range got {
		if g.received {
			received++
		}
	}
	if len(cc.RecvDeltas) != received {
		t.Fatalf("pion reads %d deltas, want %d", len(cc.RecvDeltas), received)
	}
	// A second Build has nothing to say; later packets start a new one.
	if b := r.Build(nil, 1, 2); len(b) != 0 {
		t.Fatalf("empty build wrote %d bytes", len(b))
	}
	r.Record(base+40, at+5000)
	h2, got2 := parseAll(t, r.Build(nil, 1, 2))
	if h2.BaseSeq != base+40 || h2.FbCount != 1 || len(got2) != 1 || !got2[0].received {
		t.Fatalf("second feedback %+v %v", h2, got2)
	}
}

// TestParsePionChunks: feedback written by pion/rtcp with run-length and
// one-bit vector chunks parses.
func TestParsePionChunks(t *testing.T) {
	cc := &rtcp.TransportLayerCC{
		SenderSSRC: 1, MediaSSRC: 2, BaseSequenceNumber: 100, PacketStatusCount: 20, ReferenceTime: 5, FbPktCount: 3,
		PacketChunks: []rtcp.PacketStatusChunk{
			&rtcp.RunLengthChunk{PacketStatusSymbol: rtcp.TypeTCCPacketReceivedSmallDelta, RunLength: 4},
			&rtcp.RunLengthChunk{PacketStatusSymbol: rtcp.TypeTCCPacketNotReceived, RunLength: 2},
			&rtcp.StatusVectorChunk{SymbolSize: rtcp.TypeTCCSymbolSizeOneBit, SymbolList: []uint16{1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}},
		},
		RecvDeltas: []*rtcp.RecvDelta{
			{Type: rtcp.TypeTCCPacketReceivedSmallDelta, Delta: 250}, {Type: rtcp.TypeTCCPacketReceivedSmallDelta, Delta: 500},
			{Type: rtcp.TypeTCCPacketReceivedSmallDelta, Delta: 0}, {Type: rtcp.TypeTCCPacketReceivedSmallDelta, Delta: 1000},
			{Type: rtcp.TypeTCCPacketReceivedSmallDelta, Delta: 250}, {Type: rtcp.TypeTCCPacketReceivedSmallDelta, Delta: 250},
			{Type: rtcp.TypeTCCPacketReceivedSmallDelta, Delta: 250}, {Type: rtcp.TypeTCCPacketReceivedSmallDelta, Delta: 63750},
		},
	}
	pkt, err := cc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	h, got := parseAll(t, pkt)
	if h.Reference != 5*64000 || h.FbCount != 3 || len(got) != 20 {
		t.Fatalf("%+v, %d reports", h, len(got))
	}
	want := []bool{true, true, true, true, false, false, true, false, true, true}
	for i, w := range want {
		if got[i].received != w || got[i].seq != 100+uint16(i) {
			t.Fatalf("report %d: %+v", i, got[i])
		}
	}
	if got[19].at != 5*64000+250+500+0+1000+250+250+250+63750 {
		t.Fatalf("last arrival %d", got[19].at)
	}
}

func TestParseErrors(t *testing.T) {
	if _, err := Parse([]byte{0, 1, 0, 2}, func(uint16, bool, int64) {}); !errors.Is(err, ErrShort) {
		t.Fatalf("short header: %v", err)
	}
	// Two packets announced, a run of two small deltas, no delta bytes.
	if _, err := Parse([]byte{0, 1, 0, 2, 0, 0, 0, 0, 0x20, 0x02}, func(uint16, bool, int64) {}); !errors.Is(err, ErrShort) {
		t.Fatalf("missing deltas: %v", err)
	}
	// A run-length chunk of the reserved symbol.
	if _, err := Parse([]byte{0, 1, 0, 2, 0, 0, 0, 0, 0x60, 0x02}, func(uint16, bool, int64) {}); !errors.Is(err, ErrBadChunk) {
		t.Fatalf("reserved symbol: %v", err)
	}
}

func TestBuildAllocs(t *testing.T) {
	var r Recorder
	buf := make([]byte, 0, 1500)
	seq := uint16(0)
	at := int64(0)
	if a := testing.AllocsPerRun(100, func() {
		for range 20 {
			seq++
			at += 1000
			r.Record(seq, at)
		}
		buf = r.Build(buf[:0], 1, 2)
		_, _ = Parse(buf[12:], func(uint16, bool, int64) {})
	}); a != 0 {
		t.Fatalf("%v allocations", a)
	}
}

// FuzzParse: no input panics, and the callback sees at most the announced
// number of packets.
func FuzzParse(f *testing.F) {
	var r Recorder
	for i := range 30 {
		if i%5 != 2 {
			r.Record(uint16(i), int64(i)*3000)
		}
	}
	f.Add(r.Build(nil, 1, 2)[12:])
	f.Add([]byte{0, 1, 0, 2, 0, 0, 0, 0, 0x20, 0x02, 1, 2})
	f.Add([]byte{0, 1, 0xff, 0xff, 0, 0, 0, 0, 0x1f, 0xff})
	f.Fuzz(func(t *testing.T, fci []byte) {
		n := 0
		h, err := Parse(fci, func(uint16, bool, int64) { n++ })
		if err == nil && n != int(h.StatusCount) {
			t.Fatalf("%d reports for a count of %d", n, h.StatusCount)
		}
	})
}

// TestReportsPionRandom: feedback that pion/rtcp writes from random
// statuses, in every kind of chunk (runs long and short, zero-length ones
// included, one-bit and two-bit vectors, the last one padded), walks back
// to those statuses and their arrival times, a chunk's worth per Next.
func TestReportsPionRandom(t *testing.T) {
	rnd := rand.New(rand.NewPCG(21, 22))
	var r Reports
	for run := range 300 {
		var syms []uint16
		var chunks []rtcp.PacketStatusChunk
		for len(syms) < 1+run*7 {
			switch rnd.IntN(4) {
			case 0: // a run, long now and then, empty rarely
				sym, n := uint16(rnd.IntN(3)), 1+rnd.IntN(20)
				switch rnd.IntN(10) {
				case 0:
					n = 100 + rnd.IntN(1000)
				case 1:
					n = 0
				}
				chunks = append(chunks, &rtcp.RunLengthChunk{PacketStatusSymbol: sym, RunLength: uint16(n)})
				for range n {
					syms = append(syms, sym)
				}
			case 1:
				list := make([]uint16, 14)
				for i := range list {
					list[i] = uint16(rnd.IntN(2))
				}
				chunks = append(chunks, &rtcp.StatusVectorChunk{SymbolSize: rtcp.TypeTCCSymbolSizeOneBit, SymbolList: list})
				syms = append(syms, list...)
			default:
				list := make([]uint16, 7)
				for i := range list {
					list[i] = uint16(rnd.IntN(3))
				}
				chunks = append(chunks, &rtcp.StatusVectorChunk{SymbolSize: rtcp.TypeTCCSymbolSizeTwoBit, SymbolList: list})
				syms = append(syms, list...)
			}
		}
		// The count ends inside the last chunk: what follows is padding.
		count := len(syms) - rnd.IntN(3)
		if count < 1 {
			count = len(syms)
		}
		base, ref := uint16(rnd.IntN(1<<16)), uint32(rnd.IntN(1<<24))
		cc := &rtcp.TransportLayerCC{SenderSSRC: 1, MediaSSRC: 2, BaseSequenceNumber: base, PacketStatusCount: uint16(count),
			ReferenceTime: ref, FbPktCount: uint8(run), PacketChunks: chunks}
		var want []report
		at := int64(ref) * 64000
		for i, s := range syms {
			var d int64
			switch s {
			case 1:
				d = rnd.Int64N(256) * DeltaUnit
			case 2:
				d = (rnd.Int64N(1<<16) - 1<<15) * DeltaUnit
			}
			if s != 0 {
				// pion writes a delta for every received status the
				// chunks hold, padding included.
				cc.RecvDeltas = append(cc.RecvDeltas, &rtcp.RecvDelta{Type: s, Delta: d})
			}
			at += d
			if i < count {
				want = append(want, report{base + uint16(i), s != 0, at})
			}
		}
		pkt, err := cc.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Reset(pkt[12:]); err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		var got []report
		for sts := r.Next(); len(sts) > 0; sts = r.Next() {
			if len(sts) > len(r.buf) {
				t.Fatalf("%d statuses at once", len(sts))
			}
			for _, st := range sts {
				got = append(got, report{st.Seq, st.Received, st.At})
			}
		}
		if r.Err() != nil || r.Header.BaseSeq != base || r.Header.FbCount != uint8(run) || len(got) != len(want) {
			t.Fatalf("run %d: %v, header %+v, %d reports, want %d", run, r.Err(), r.Header, len(got), len(want))
		}
		for i := range want {
			if got[i].seq != want[i].seq || got[i].received != want[i].received || want[i].received && got[i].at != want[i].at {
				t.Fatalf("run %d, status %d: %+v, want %+v", run, i, got[i], want[i])
			}
		}
	}
}

// TestReportsStopAtTruncatedDelta: the statuses before a missing delta are
// reported, then the walk ends with ErrShort; a reserved two-bit symbol
// ends it with ErrBadChunk the same way.
func TestReportsStopAtTruncatedDelta(t *testing.T) {
	// Base 7, five statuses: a two-bit vector (small, small, small, not
	// received, small), deltas for the first three only.
	fci := []byte{0, 7, 0, 5, 0, 0, 1, 0, 0xd5, 0x10, 4, 8, 12}
	for _, c := range []struct {
		chunk byte
		err   error
		n     int
	}{{0x10, ErrShort, 4}, {0xd0, ErrBadChunk, 3}} {
		fci[9] = c.chunk // the fourth symbol: 0 (not received) or 3 (reserved)
		var seqs []uint16
		h, err := Parse(fci, func(seq uint16, received bool, at int64) { seqs = append(seqs, seq) })
		if !errors.Is(err, c.err) || len(seqs) != c.n || h.BaseSeq != 7 || seqs[0] != 7 || seqs[len(seqs)-1] != 7+uint16(c.n)-1 {
			t.Fatalf("chunk %#x: %v, reported %v", c.chunk, err, seqs)
		}
	}
}
