package signal

import (
	"bufio"
	"errors"
	"io"
	"net"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// peerClosed is returned by msgReader.next when the client sent a close frame.
type peerClosed struct {
	code   ws.StatusCode
	reason string
}

func (p *peerClosed) Error() string { return "peer closed the WebSocket" }

// msgReader reads a client's messages (RFC 6455 §5) from br, each at most
// max bytes.
type msgReader struct {
	br  *bufio.Reader
	max int
	// unread is the payload length of the frame the last error left
	// unread (drain skips it).
	unread int64
}

// next returns the next complete text message. Fragmented messages are
// reassembled up to max bytes. Control frames are handled here: a ping is
// passed to onPing, a pong is ignored, a close returns *peerClosed. A
// binary message, an oversized message, an unmasked or malformed frame and
// invalid UTF-8 return the matching *CloseError, without reading more
// than the frame header of the offender.
func (r *msgReader) next(onPing func([]byte)) ([]byte, error) {
	var msg []byte
	started := false
	r.unread = 0
	for {
		h, err := ws.ReadHeader(r.br)
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, err
			}
			var ne interface{ Timeout() bool }
			if errors.As(err, &ne) {
				return nil, err
			}
			return nil, ErrInvalidFrame
		}
		// From here on an error leaves this frame's payload unread.
		r.unread = h.Length
		// RFC 6455 §5.1: a server must close on an unmasked client frame.
		if !h.Masked {
			return nil, ErrUnmaskedFrame
		}
		// No extension is negotiated, so RSV bits must be zero (§5.2).
		if h.Rsv != 0 {
			return nil, ErrInvalidFrame
		}
		if h.OpCode.IsControl() {
			// §5.5: control frames are at most 125 bytes and never fragmented.
			if h.Length > 125 || !h.Fin {
				return nil, ErrInvalidFrame
			}
			payload := make([]byte, h.Length)
			if _, err := io.ReadFull(r.br, payload); err != nil {
				return nil, err
			}
			r.unread = 0
			ws.Cipher(payload, h.Mask, 0)
			switch h.OpCode {
			case ws.OpClose:
				code, reason := ws.ParseCloseFrameData(payload)
				return nil, &peerClosed{code: code, reason: reason}
			case ws.OpPing:
				onPing(payload)
			case ws.OpPong:
			default:
				return nil, ErrInvalidFrame
			}
			continue
		}
		switch h.OpCode {
		case ws.OpContinuation:
			if !started {
				return nil, ErrInvalidFrame
			}
		case ws.OpText:
			if started {
				return nil, ErrInvalidFrame
			}
			started = true
		case ws.OpBinary:
			return nil, ErrBinaryFrame
		default:
			return nil, ErrInvalidFrame
		}
		if h.Length > int64(r.max-len(msg)) {
			return nil, ErrMessageTooLarge
		}
		n := len(msg)
		msg = append(msg, make([]byte, h.Length)...)
		if _, err := io.ReadFull(r.br, msg[n:]); err != nil {
			return nil, err
		}
		r.unread = 0
		ws.Cipher(msg[n:], h.Mask, 0)
		if h.Fin {
			if !utf8.Valid(msg) {
				return nil, ErrInvalidUTF8
			}
			return msg, nil
		}
	}
}

// drain reads and discards what the client still sends after Hayate's
// close frame: the rest of a frame next refused, then whole frames, until
// the client's own close frame, the end of the stream, an unreadable
// frame, a read error (the caller's deadline) or limit bytes. Closing a
// TCP socket with unread bytes makes the kernel reset the connection, and
// a client reset before it has read Hayate's close frame sees only 1006;
// draining first lets every refusal's code and reason reach the client.
func (r *msgReader) drain(limit int64) {
	discard := func(n int64) bool {
		if n > limit {
			return false
		}
		m, err := io.CopyN(io.Discard, r.br, n)
		limit -= m
		return err == nil
	}
	skip := r.unread
	r.unread = 0
	if !discard(skip) {
		return
	}
	for {
		h, err := ws.ReadHeader(r.br)
		if err != nil || !discard(h.Length) || h.OpCode == ws.OpClose {
			return
		}
	}
}

// writeFrame writes one unmasked server frame: header and payload in one
// writev, so a connection keeps no write buffer.
func writeFrame(w io.Writer, op ws.OpCode, payload []byte) error {
	var hdr [ws.MaxHeaderSize]byte
	h := ws.Header{Fin: true, OpCode: op, Length: int64(len(payload))}
	// WriteHeaderBuffer encodes into hdr; the copy to Discard is a no-op.
	if err := ws.WriteHeaderBuffer(io.Discard, h, hdr[:]); err != nil {
		return err
	}
	bufs := net.Buffers{hdr[:ws.HeaderSize(h)], payload}
	_, err := bufs.WriteTo(w)
	return err
}

// closePayload builds a close frame body; the reason is cut to the 123 bytes
// RFC 6455 §5.5 allows, at a UTF-8 boundary.
func closePayload(code ws.StatusCode, reason string) []byte {
	return ws.NewCloseFrameBody(code, clipReason(reason))
}

func clipReason(reason string) string {
	const maxReason = 123
	if len(reason) <= maxReason {
		return reason
	}
	cut := maxReason
	for cut > 0 && !utf8.RuneStart(reason[cut]) {
		cut--
	}
	return reason[:cut]
}
