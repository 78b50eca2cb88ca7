// Package twcc reads and writes transport-wide congestion control feedback
// (draft-holmer-rmcat-transport-wide-cc-extensions-01, the RTCP transport
// feedback of the `transport-cc` rtcp-fb that Chromium and pion send): a
// receiver reports, for a range of transport-wide sequence numbers, which
// packets arrived and when.
//
// Reports walks a feedback packet (Parse with a callback); Recorder keeps
// arrivals on the receive side and Build writes the feedback for them.
// None allocates.
package twcc

import (
	"encoding/binary"
)

// FMT is the RTPFB format of transport feedback (draft §3.1).
const FMT = 15

// Status symbols (draft §3.1.1).
const (
	notReceived = 0
	smallDelta  = 1
	largeDelta  = 2
)

// DeltaUnit is the resolution of receive deltas in microseconds.
const DeltaUnit = 250

// refUnit is the resolution of the reference time in microseconds.
const refUnit = 64000

// Header is the fixed part of a feedback's FCI.
type Header struct {
	BaseSeq     uint16
	StatusCount uint16
	// Reference is the reference time in microseconds (24 bits of 64 ms).
	Reference int64
	FbCount   uint8
}

// Parse reads the FCI of a transport feedback (the bytes after the two
// SSRCs) and calls fn for each packet it reports, in sequence order, with
// its arrival time in microseconds of the receiver's clock (received
// packets only). It returns the header. It is Reports' walk with a
// callback.
func Parse(fci []byte, fn func(seq uint16, received bool, at int64)) (Header, error) {
	var r Reports
	if err := r.Reset(fci); err != nil {
		return r.Header, err
	}
	for sts := r.Next(); len(sts) > 0; sts = r.Next() {
		for _, st := range sts {
			fn(st.Seq, st.Received, st.At)
		}
	}
	return r.Header, r.Err()
}

// Reports walks the packets a transport feedback reports, in sequence
// order, without a callback: Reset, then Next until it returns nothing,
// then Err. Next decodes a chunk's statuses at a time, so that the
// caller's loop over them is its own code, not a call per packet. The
// zero value reports nothing.
type Reports struct {
	Header
	chunks, deltas []byte
	ci             int    // the next chunk's offset in chunks
	d              int    // the next delta's offset in deltas
	left           int    // statuses not decoded yet
	run            int    // statuses left in the current run length chunk
	runSym         uint8  // their symbol
	seq            uint16 // the next status's sequence number
	at             int64  // the last arrival
	err            error
	buf            [14]Status // what Next returns
}

// Status is what a feedback reports of one packet.
type Status struct {
	// At is its arrival time in microseconds of the receiver's clock, if
	// it was received.
	At       int64
	Seq      uint16
	Received bool
}

// Reset starts a walk of the FCI of a transport feedback (the bytes after
// the two SSRCs) and reads its header (r.Header). It fails, reporting
// nothing, when the packet chunks are truncated or malformed; a truncated
// delta or a reserved symbol ends the walk later, at its packet (Err).
func (r *Reports) Reset(fci []byte) error {
	r.Header, r.chunks, r.deltas = Header{}, nil, nil
	r.ci, r.d, r.left, r.run, r.err = 0, 0, 0, 0, nil
	if len(fci) < 8 {
		r.err = ErrShort
		return r.err
	}
	h := &r.Header
	h.BaseSeq = binary.BigEndian.Uint16(fci[0:2])
	h.StatusCount = binary.BigEndian.Uint16(fci[2:4])
	h.Reference = int64(uint32(fci[4])<<16|uint32(fci[5])<<8|uint32(fci[6])) * refUnit
	h.FbCount = fci[7]
	n := int(h.StatusCount)
	// The chunks first, to find where the deltas begin.
	chunks := fci[8:]
	i, seen := 0, 0
	for seen < n {
		if i+2 > len(chunks) {
			r.err = ErrShort
			return r.err
		}
		c := binary.BigEndian.Uint16(chunks[i:])
		i += 2
		k, err := chunkLen(c)
		if err != nil {
			r.err = err
			return err
		}
		seen += k
	}
	r.chunks, r.deltas = chunks[:i], chunks[i:]
	r.left, r.seq, r.at = n, h.BaseSeq, h.Reference
	return nil
}

// Next decodes the next packet chunk's statuses (at most len(r.buf) of a
// long run), in sequence order; the slice holds them until the next call.
// It returns none at the end of the walk. A truncated delta or a reserved
// symbol ends the walk there (Err), after the statuses before it.
func (r *Reports) Next() []Status {
	for r.left > 0 {
		var syms [len(r.buf)]uint8
		k := 0
		if r.run > 0 {
			k = min(r.run, len(syms))
			r.run -= k
			for j := range k {
				syms[j] = r.runSym
			}
		} else {
			// Reset saw chunks enough for every status.
			c := binary.BigEndian.Uint16(r.chunks[r.ci:])
			r.ci += 2
			k, _ = chunkLen(c)
			if c&0x8000 == 0 { // run length chunk
				r.run, r.runSym = k, uint8(symbol(c, 0))
				continue
			}
			for j := range k {
				syms[j] = uint8(symbol(c, j))
			}
		}
		k = min(k, r.left)
		r.left -= k
		at, d, seq, deltas := r.at, r.d, r.seq, r.deltas
		n := 0
		var err error
		for _, sym := range syms[:k] {
			switch sym {
			case smallDelta:
				if d >= len(deltas) {
					err = ErrShort
				} else {
					at += int64(deltas[d]) * DeltaUnit
					d++
				}
			case largeDelta:
				if d+2 > len(deltas) {
					err = ErrShort
				} else {
					at += int64(int16(binary.BigEndian.Uint16(deltas[d:]))) * DeltaUnit
					d += 2
				}
			case notReceived:
			default:
				err = ErrBadChunk
			}
			if err != nil {
				r.err, r.left, r.run = err, 0, 0
				break
			}
			r.buf[n] = Status{At: at, Seq: seq, Received: sym != notReceived}
			n++
			seq++
		}
		r.at, r.d, r.seq = at, d, seq
		if n > 0 {
			return r.buf[:n]
		}
	}
	return nil
}

// Err is what ended the walk early, if anything.
func (r *Reports) Err() error { return r.err }

// chunkLen is the number of statuses a packet chunk carries.
func chunkLen(c uint16) (int, error) {
	switch {
	case c&0x8000 == 0: // run length chunk
		if c>>13&3 == 3 {
			return 0, ErrBadChunk
		}
		return int(c & 0x1fff), nil
	case c&0x4000 == 0: // status vector, 14 one-bit symbols
		return 14, nil
	default: // status vector, 7 two-bit symbols
		return 7, nil
	}
}

// symbol is the j-th status of chunk c.
func symbol(c uint16, j int) int {
	switch {
	case c&0x8000 == 0:
		return int(c >> 13 & 3)
	case c&0x4000 == 0:
		return int(c >> (13 - j) & 1)
	default:
		return int(c >> (12 - 2*j) & 3)
	}
}

// Recorder keeps the arrival times of the packets of one transport by
// transport-wide sequence number, until Build reports them. It holds the
// last ringSize sequence numbers; an arrival older than what was reported
// is dropped.
type Recorder struct {
	at      [ringSize]int64 // arrival µs + 1; 0: not received
	base    uint16          // first sequence number not reported yet
	end     uint16          // one past the newest recorded
	floor   uint16          // first sequence number after the last feedback
	started bool
	built   bool
	fbCount uint8
}

const ringSize = 1024

// maxPerFeedback bounds the packets one feedback reports, so that it fits
// in a datagram with room for SRTCP.
const maxPerFeedback = 400

// Record notes that packet seq arrived at at (microseconds, any epoch, but
// one clock).
func (r *Recorder) Record(seq uint16, at int64) {
	if !r.started {
		r.started, r.base, r.end = true, seq, seq+1
	}
	switch ahead := seq - r.base; {
	case ahead >= 1<<15:
		// Before the oldest unreported packet: reordered. Too late if
		// already reported on or too old to fit.
		if r.built && seq-r.floor >= 1<<15 || int(r.end-seq) > ringSize {
			return
		}
		r.base = seq
	case int(ahead) >= ringSize:
		// A jump: forget what would not fit (it is reported lost by the
		// sender's own accounting).
		for r.base != seq-ringSize+1 {
			r.at[r.base%ringSize] = 0
			r.base++
		}
	}
	r.at[seq%ringSize] = at + 1
	if uint16(seq-r.end) < 1<<15 {
		r.end = seq + 1
	}
}

// Pending reports whether Build has something to write.
func (r *Recorder) Pending() bool { return r.started && r.base != r.end }

// Build appends a transport feedback RTCP packet (RTPFB, FMT 15) for the
// packets recorded since the last Build to dst and forgets them. It
// returns dst unchanged when there is nothing to report.
func (r *Recorder) Build(dst []byte, sender, media uint32) []byte {
	if !r.Pending() {
		return dst
	}
	// The first reported packet must have arrived (its arrival is the
	// reference): skip leading losses, which the sender sees as lost.
	for r.base != r.end && r.at[r.base%ringSize] == 0 {
		r.base++
	}
	if r.base == r.end {
		return dst
	}
	count := int(r.end - r.base)
	if count > maxPerFeedback {
		count = maxPerFeedback
	}
	first := r.at[r.base%ringSize] - 1
	ref := first / refUnit
	if first < 0 {
		ref = (first - refUnit + 1) / refUnit
	}
	start := len(dst)
	dst = append(dst, 0x80|FMT, 205, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(dst[start+4:], sender)
	binary.BigEndian.PutUint32(dst[start+8:], media)
	hdr := len(dst)
	dst = append(dst, 0, 0, 0, 0, byte(ref>>16), byte(ref>>8), byte(ref), r.fbCount)
	binary.BigEndian.PutUint16(dst[hdr:], r.base)
	// Symbols and deltas: the deltas are computed first so that a gap too
	// long for a 16-bit delta ends the feedback before it.
	var deltas [2 * maxPerFeedback]byte
	nd := 0
	prev := ref * refUnit
	var syms [maxPerFeedback]byte
	n := 0
fill:
	for ; n < count; n++ {
		a := r.at[(r.base+uint16(n))%ringSize]
		if a == 0 {
			syms[n] = notReceived
			continue
		}
		d := (a - 1 - prev) / DeltaUnit
		switch {
		case d >= 0 && d <= 255:
			syms[n] = smallDelta
			deltas[nd] = byte(d)
			nd++
		case d >= -1<<15 && d < 1<<15:
			syms[n] = largeDelta
			binary.BigEndian.PutUint16(deltas[nd:], uint16(int16(d)))
			nd += 2
		default:
			break fill
		}
		prev += d * DeltaUnit
	}
	binary.BigEndian.PutUint16(dst[hdr+2:], uint16(n))
	// Two-bit status vector chunks, seven symbols each.
	for i := 0; i < n; i += 7 {
		c := uint16(0xc000)
		for j := 0; j < 7 && i+j < n; j++ {
			c |= uint16(syms[i+j]) << (12 - 2*j)
		}
		dst = binary.BigEndian.AppendUint16(dst, c)
	}
	dst = append(dst, deltas[:nd]...)
	// RTCP padding (RFC 3550 §6.4.1): zeros, the last byte their count.
	if pad := (4 - (len(dst)-start)%4) % 4; pad > 0 {
		for range pad - 1 {
			dst = append(dst, 0)
		}
		dst = append(dst, byte(pad))
		dst[start] |= 0x20
	}
	binary.BigEndian.PutUint16(dst[start+2:], uint16((len(dst)-start)/4-1))
	for k := 0; k < n; k++ {
		r.at[(r.base+uint16(k))%ringSize] = 0
	}
	r.base += uint16(n)
	r.floor, r.built = r.base, true
	r.fbCount++
	return dst
}
