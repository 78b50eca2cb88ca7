// Package zlibmsg compresses and decompresses single messages in the zlib
// format (RFC 1950), as Sora's DataChannels do for a label declared with
// compress: true (the browser's CompressionStream("deflate")). Input to
// Inflate is untrusted: the output is bounded, and a bomb costs at most
// the bound. Codecs are pooled, since each holds hundreds of KiB.
package zlibmsg

import (
	"bytes"
	"compress/zlib"
	"io"
	"sync"
)

var (
	readers sync.Pool // zlib readers (io.ReadCloser + zlib.Resetter)
	writers = sync.Pool{New: func() any { return zlib.NewWriter(io.Discard) }}
)

// Inflate appends the decompressed src to dst. It fails with ErrTooLarge
// when the output would exceed limit bytes and with ErrCorrupt when src is
// not one complete zlib stream (header, data and Adler-32 checksum).
func Inflate(dst, src []byte, limit int) ([]byte, error) {
	in := bytes.NewReader(src)
	var zr io.ReadCloser
	if v := readers.Get(); v != nil {
		zr = v.(io.ReadCloser)
		if err := zr.(zlib.Resetter).Reset(in, nil); err != nil {
			readers.Put(zr)
			return dst, ErrCorrupt
		}
	} else {
		r, err := zlib.NewReader(in)
		if err != nil {
			return dst, ErrCorrupt
		}
		zr = r
	}
	defer readers.Put(zr)
	start := len(dst)
	buf := bytes.NewBuffer(dst)
	n, err := buf.ReadFrom(io.LimitReader(zr, int64(limit)+1))
	out := buf.Bytes()
	switch {
	case n > int64(limit):
		return out[:start], ErrTooLarge
	case err != nil:
		return out[:start], ErrCorrupt
	}
	// LimitReader stops at EOF of the zlib reader, which has checked the
	// checksum; a stream cut short is an io.ErrUnexpectedEOF above.
	return out, nil
}

// Deflate appends the zlib compression of src to dst.
func Deflate(dst, src []byte) []byte {
	buf := bytes.NewBuffer(dst)
	zw := writers.Get().(*zlib.Writer)
	zw.Reset(buf)
	_, _ = zw.Write(src) // writes to a bytes.Buffer do not fail
	_ = zw.Close()
	zw.Reset(io.Discard)
	writers.Put(zw)
	return buf.Bytes()
}
