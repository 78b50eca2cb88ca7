package icetcp

import (
	"bufio"
	"encoding/binary"
	"io"
)

// RFC 4571 framing: on a TCP connection each datagram (STUN, DTLS, SRTP)
// is preceded by its length in two bytes, network order. RFC 6544 §3 uses
// it for ICE-TCP.

// MaxFrame is the largest datagram accepted in a frame: the media core's
// buffer size. Browsers send datagrams of MTU size.
const MaxFrame = 2048

// readFrame reads one frame's datagram into buf (at least MaxFrame long)
// and returns its length. A frame longer than MaxFrame is ErrFrameTooLarge;
// an empty frame is returned as 0 (the caller skips it).
func readFrame(r *bufio.Reader, buf []byte) (int, error) {
	var hdr [2]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, err
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	if n > MaxFrame {
		return 0, ErrFrameTooLarge
	}
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	return n, nil
}

// appendFrame appends p as one frame to dst.
func appendFrame(dst, p []byte) []byte {
	return append(binary.BigEndian.AppendUint16(dst, uint16(len(p))), p...)
}
