// Package codecs reads what a selective forwarder needs from the RTP
// payloads of the video codecs Hayate forwards: whether a packet starts a
// key frame (a simulcast switch waits for one), and where the VP8 and VP9
// payload descriptors keep the picture ID and TL0PICIDX, which a switch
// between simulcast streams rewrites so that the receiver sees one
// continuous stream.
//
// Parsing never allocates and never panics on any input: a payload too
// short for what its first bytes announce is reported as not parsed.
package codecs

// Codec is a video payload format.
type Codec uint8

// The payload formats.
const (
	Unknown Codec = iota
	VP8           // RFC 7741
	VP9           // RFC 9628
	H264          // RFC 6184
	H265          // RFC 7798
	AV1           // AOMedia "RTP Payload Format For AV1" v1.0
)

// ByName maps an rtpmap encoding name (case as in SDP) to its codec.
func ByName(name string) Codec {
	switch name {
	case "VP8", "vp8":
		return VP8
	case "VP9", "vp9":
		return VP9
	case "H264", "h264":
		return H264
	case "H265", "h265":
		return H265
	case "AV1", "av1", "AV1X":
		return AV1
	}
	return Unknown
}

func (c Codec) String() string {
	switch c {
	case VP8:
		return "VP8"
	case VP9:
		return "VP9"
	case H264:
		return "H264"
	case H265:
		return "H265"
	case AV1:
		return "AV1"
	}
	return "unknown"
}

// Descriptor is what Parse learns from one packet's payload.
type Descriptor struct {
	// Parsed is false when the payload is too short or malformed for its
	// format; nothing else is then set.
	Parsed bool
	// KeyStart: the packet is the first of a key frame, a point where a
	// decoder can start (or switch streams).
	KeyStart bool
	// FrameStart: the packet begins a frame (VP8 S bit with partition 0,
	// VP9 B bit); always true for the other formats, which do not say.
	FrameStart bool
	// PicIDOff is the offset in the payload of a VP8/VP9 picture ID (0:
	// none), PicIDBits its width (7 or 15) and PicID its value.
	PicIDOff  int
	PicIDBits int
	PicID     uint16
	// TL0Off is the offset of a TL0PICIDX (0: none) and TL0 its value.
	TL0Off int
	TL0    uint8
}

// Parse reads the payload of one RTP packet of codec c.
func Parse(c Codec, p []byte) Descriptor {
	var d Descriptor
	switch c {
	case VP8:
		d = parseVP8(p)
	case VP9:
		d = parseVP9(p)
	case H264:
		d = parseH264(p)
	case H265:
		d = parseH265(p)
	case AV1:
		d = parseAV1(p)
	}
	if !d.Parsed {
		return Descriptor{}
	}
	return d
}

// parseVP8 reads the payload descriptor (RFC 7741 §4.2) and, on the first
// packet of a frame, the P bit of the VP8 payload header (§4.3: 0 on a key
// frame).
func parseVP8(p []byte) Descriptor {
	var d Descriptor
	if len(p) < 1 {
		return d
	}
	i := 1
	x := p[0]&0x80 != 0
	start := p[0]&0x10 != 0 && p[0]&0x07 == 0 // S bit, partition index 0
	if x {
		if len(p) < 2 {
			return d
		}
		ext := p[1]
		i = 2
		if ext&0x80 != 0 { // I: picture ID
			var ok bool
			if i, ok = d.readPictureID(p, i); !ok {
				return d
			}
		}
		if ext&0x40 != 0 { // L: TL0PICIDX
			if len(p) < i+1 {
				return d
			}
			d.TL0Off, d.TL0 = i, p[i]
			i++
		}
		if ext&0x30 != 0 { // T or K: TID/Y/KEYIDX byte
			if len(p) < i+1 {
				return d
			}
			i++
		}
	}
	d.Parsed = true
	d.FrameStart = start
	if start && len(p) > i {
		d.KeyStart = p[i]&0x01 == 0
	}
	return d
}

// readPictureID reads the picture id at p[i] (VP8 and VP9 write it alike:
// M set, 15 bits; else 7) and returns the offset after it, or false when p
// ends inside it.
func (d *Descriptor) readPictureID(p []byte, i int) (int, bool) {
	if len(p) < i+1 {
		return i, false
	}
	d.PicIDOff = i
	if p[i]&0x80 != 0 { // M: 15 bits
		if len(p) < i+2 {
			return i, false
		}
		d.PicIDBits, d.PicID = 15, uint16(p[i]&0x7f)<<8|uint16(p[i+1])
		return i + 2, true
	}
	d.PicIDBits, d.PicID = 7, uint16(p[i]&0x7f)
	return i + 1, true
}

// parseVP9 reads the payload descriptor (RFC 9628 §4.2). A key frame's
// first packet has B (beginning of frame) set, P (inter-picture predicted)
// clear and, with layer indices, spatial layer 0.
func parseVP9(p []byte) Descriptor {
	var d Descriptor
	if len(p) < 1 {
		return d
	}
	b0 := p[0]
	hasI, hasP, hasL, flex, begin := b0&0x80 != 0, b0&0x40 != 0, b0&0x20 != 0, b0&0x10 != 0, b0&0x08 != 0
	i := 1
	if hasI {
		var ok bool
		if i, ok = d.readPictureID(p, i); !ok {
			return d
		}
	}
	sid := uint8(0)
	if hasL {
		if len(p) < i+1 {
			return d
		}
		sid = p[i] >> 1 & 0x07
		i++
		if !flex {
			if len(p) < i+1 {
				return d
			}
			d.TL0Off, d.TL0 = i, p[i]
		}
	}
	d.Parsed = true
	d.FrameStart = begin
	d.KeyStart = begin && !hasP && sid == 0
	return d
}

// H.264 NAL unit types (RFC 6184 §5.4, ITU-T H.264 Table 7-1).
const (
	h264IDR   = 5
	h264SPS   = 7
	h264STAPA = 24
	h264FUA   = 28
)

// parseH264 finds a key frame's start: a packet carrying a sequence
// parameter set (browsers send SPS and PPS before each IDR picture), alone
// or in a STAP-A, or the start of an IDR slice (single NAL unit or the
// first FU-A fragment).
func parseH264(p []byte) Descriptor {
	d := Descriptor{FrameStart: true}
	if len(p) < 1 {
		return d
	}
	switch t := p[0] & 0x1f; {
	case t == h264IDR || t == h264SPS:
		d.KeyStart = true
	case t >= 1 && t <= 23:
	case t == h264STAPA:
		for i := 1; i+2 < len(p); {
			size := int(p[i])<<8 | int(p[i+1])
			if size == 0 || i+2+size > len(p) {
				return d // malformed aggregation
			}
			if nt := p[i+2] & 0x1f; nt == h264SPS || nt == h264IDR {
				d.KeyStart = true
			}
			i += 2 + size
		}
	case t == h264FUA:
		if len(p) < 2 {
			return d
		}
		d.KeyStart = p[1]&0x80 != 0 && p[1]&0x1f == h264IDR
	default:
		return d // STAP-B, MTAP, FU-B: not sent by browsers
	}
	d.Parsed = true
	return d
}

// H.265 NAL unit types (RFC 7798 §4.4, ITU-T H.265 Table 7-1).
const (
	h265IRAPFirst = 16 // BLA_W_LP .. CRA_NUT (16-21) start a decodable stream
	h265IRAPLast  = 21
	h265VPS       = 32
	h265SPS       = 33
	h265AP        = 48
	h265FU        = 49
)

func h265KeyType(t uint8) bool {
	return t >= h265IRAPFirst && t <= h265IRAPLast || t == h265VPS || t == h265SPS
}

// parseH265 is parseH264 for H.265: a VPS or SPS, or the start of an IRAP
// picture, alone, in an aggregation packet or in the first fragment unit.
func parseH265(p []byte) Descriptor {
	d := Descriptor{FrameStart: true}
	if len(p) < 2 {
		return d
	}
	switch t := p[0] >> 1 & 0x3f; {
	case t == h265AP:
		for i := 2; i+2 < len(p); {
			size := int(p[i])<<8 | int(p[i+1])
			if size < 2 || i+2+size > len(p) {
				return d
			}
			if h265KeyType(p[i+2] >> 1 & 0x3f) {
				d.KeyStart = true
			}
			i += 2 + size
		}
	case t == h265FU:
		if len(p) < 3 {
			return d
		}
		d.KeyStart = p[2]&0x80 != 0 && h265KeyType(p[2]&0x3f)
	case t < h265AP:
		d.KeyStart = h265KeyType(t)
	default:
		return d // PACI and reserved types
	}
	d.Parsed = true
	return d
}

// AV1 OBU types (AV1 bitstream specification §6.2.2).
const av1OBUSequenceHeader = 1

// parseAV1 reads the aggregation header (RTP payload format for AV1 §4.4):
// N is set on the first packet of a coded video sequence, which starts with
// a key frame. Without N, a packet whose first element opens with a
// sequence header OBU counts as well.
func parseAV1(p []byte) Descriptor {
	d := Descriptor{FrameStart: true}
	if len(p) < 1 {
		return d
	}
	d.Parsed = true
	h := p[0]
	if h&0x08 != 0 { // N
		d.KeyStart = true
		return d
	}
	if h&0x80 != 0 { // Z: the first element continues an OBU
		return d
	}
	i := 1
	if h&0x30 != 0x10 { // unless W = 1, the first element has a LEB128 length
		for ; i < len(p) && i < 9 && p[i]&0x80 != 0; i++ {
		}
		i++
	}
	if i < len(p) {
		d.KeyStart = p[i]>>3&0x0f == av1OBUSequenceHeader
	}
	return d
}

// RewritePictureID writes picture ID id (modulo the field's width) and
// TL0PICIDX tl0 into a VP8 or VP9 payload at the places d found; fields
// the packet does not have are left alone.
func RewritePictureID(p []byte, d *Descriptor, id uint16, tl0 uint8) {
	if d.PicIDOff > 0 {
		if d.PicIDBits == 15 {
			p[d.PicIDOff] = 0x80 | byte(id>>8)&0x7f
			p[d.PicIDOff+1] = byte(id)
		} else {
			p[d.PicIDOff] = byte(id) & 0x7f
		}
	}
	if d.TL0Off > 0 {
		p[d.TL0Off] = tl0
	}
}

// PicIDMask is the largest picture ID a field of d's width holds.
func (d *Descriptor) PicIDMask() uint16 {
	if d.PicIDBits == 15 {
		return 0x7fff
	}
	return 0x7f
}
