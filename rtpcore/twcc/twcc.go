// Package twcc reads and writes transport-wide congestion control feedback
// (draft-holmer-rmcat-transport-wide-cc-extensions-01, the RTCP transport
// feedback of the `transport-cc` rtcp-fb that Chromium and pion send): a
// receiver reports, for a range of transport-wide sequence numbers, which
// packets arrived and when.
//
// Parse walks a feedback packet with a callback; Recorder keeps arrivals on
// the receive side and Build writes the feedback for them. Neither
// allocates.
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
// packets only). It returns the header.
func Parse(fci []byte, fn func(seq uint16, received bool, at int64)) (Header, error) {
	var h Header
	if len(fci) < 8 {
		return h, ErrShort
	}
	h.BaseSeq = binary.BigEndian.Uint16(fci[0:2])
	h.StatusCount = binary.BigEndian.Uint16(fci[2:4])
	h.Reference = int64(uint32(fci[4])<<16|uint32(fci[5])<<8|uint32(fci[6])) * refUnit
	h.FbCount = fci[7]
	n := int(h.StatusCount)
	// First pass: the chunks, to find where the deltas begin.
	chunks := fci[8:]
	i, seen := 0, 0
	for seen < n {
		if i+2 > len(chunks) {
			return h, ErrShort
		}
		c := binary.BigEndian.Uint16(chunks[i:])
		i += 2
		k, err := chunkLen(c)
		if err != nil {
			return h, err
		}
		seen += k
	}
	deltas := chunks[i:]
	// Second pass: statuses with their deltas.
	at, d, seq := h.Reference, 0, h.BaseSeq
	for ci, left := 0, n; left > 0; ci += 2 {
		c := binary.BigEndian.Uint16(chunks[ci:])
		k, _ := chunkLen(c)
		for j := 0; j < k && left > 0; j++ {
			sym := symbol(c, j)
			switch sym {
			case smallDelta:
				if d+1 > len(deltas) {
					return h, ErrShort
				}
				at += int64(deltas[d]) * DeltaUnit
				d++
			case largeDelta:
				if d+2 > len(deltas) {
					return h, ErrShort
				}
				at += int64(int16(binary.BigEndian.Uint16(deltas[d:]))) * DeltaUnit
				d += 2
			case notReceived:
			default:
				return h, ErrBadChunk
			}
			fn(seq, sym != notReceived, at)
			seq++
			left--
		}
	}
	return h, nil
}

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
