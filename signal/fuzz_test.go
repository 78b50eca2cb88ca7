package signal

import (
	"bufio"
	"bytes"
	"errors"
	"testing"

	"github.com/gobwas/ws"
)

// frame builds a masked client frame.
func frame(op ws.OpCode, fin bool, p []byte) []byte {
	var b bytes.Buffer
	ws.WriteFrame(&b, ws.MaskFrameInPlace(ws.NewFrame(op, fin, append([]byte(nil), p...))))
	return b.Bytes()
}

func TestReadMessageFragments(t *testing.T) {
	var in bytes.Buffer
	in.Write(frame(ws.OpText, false, []byte(`{"type":`)))
	in.Write(frame(ws.OpPing, true, []byte("hi")))
	in.Write(frame(ws.OpContinuation, true, []byte(`"pong"}`)))
	var pinged []byte
	msg, err := (&msgReader{br: bufio.NewReader(&in), max: 1024}).next(func(p []byte) { pinged = p })
	if err != nil || string(msg) != `{"type":"pong"}` || string(pinged) != "hi" {
		t.Fatalf("%q %v ping %q", msg, err, pinged)
	}
	// The limit counts the whole message, not one fragment.
	in.Reset()
	in.Write(frame(ws.OpText, false, bytes.Repeat([]byte("a"), 600)))
	in.Write(frame(ws.OpContinuation, true, bytes.Repeat([]byte("a"), 600)))
	if _, err := (&msgReader{br: bufio.NewReader(&in), max: 1024}).next(func([]byte) {}); !errors.Is(err, ErrMessageTooLarge) {
		t.Fatalf("fragmented oversize: %v", err)
	}
	in.Reset()
	in.Write(frame(ws.OpContinuation, true, []byte("x")))
	if _, err := (&msgReader{br: bufio.NewReader(&in), max: 1024}).next(func([]byte) {}); !errors.Is(err, ErrInvalidFrame) {
		t.Fatalf("continuation first: %v", err)
	}
	in.Reset()
	in.Write(frame(ws.OpClose, true, ws.NewCloseFrameBody(4000, "bye")))
	var pc *peerClosed
	if _, err := (&msgReader{br: bufio.NewReader(&in), max: 1024}).next(func([]byte) {}); !errors.As(err, &pc) || pc.code != 4000 || pc.reason != "bye" {
		t.Fatalf("close: %v", err)
	}
}

func TestClipReason(t *testing.T) {
	long := bytes.Repeat([]byte("é"), 100) // 200 bytes
	got := clipReason(string(long))
	if len(got) > 123 || len(got)%2 != 0 {
		t.Fatalf("clipped to %d bytes, not at a rune boundary", len(got))
	}
}

func FuzzReadMessage(f *testing.F) {
	f.Add(frame(ws.OpText, true, []byte(`{"type":"connect","role":"sendrecv","channel_id":"c"}`)))
	f.Add(append(frame(ws.OpText, false, []byte(`{"ty`)), frame(ws.OpContinuation, true, []byte(`pe":"x"}`))...))
	f.Add(frame(ws.OpBinary, true, []byte{1, 2, 3}))
	f.Add(frame(ws.OpClose, true, ws.NewCloseFrameBody(1000, "")))
	f.Add([]byte{0x81, 0x05, 'h', 'e', 'l', 'l', 'o'})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &msgReader{br: bufio.NewReader(bytes.NewReader(data)), max: 4096}
		for range 8 {
			msg, err := r.next(func([]byte) {})
			if err != nil {
				return
			}
			if len(msg) > 4096 {
				t.Fatalf("message of %d bytes over the limit", len(msg))
			}
		}
	})
}

func FuzzParseConnect(f *testing.F) {
	f.Add([]byte(`{"type":"connect","role":"sendrecv","channel_id":"c","audio":{"codec_type":"OPUS"},"video":false}`))
	f.Add([]byte(`{"type":"connect","role":"recvonly","channel_id":"","metadata":{"a":[1,2]}}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"type":"connect","channel_id":7}`))
	f.Fuzz(func(t *testing.T, msg []byte) {
		if _, cerr := messageType(msg); cerr != nil {
			if cerr.Code != CodeBadRequest {
				t.Fatalf("messageType close %d", cerr.Code)
			}
			return
		}
		c, cerr := parseConnect(msg)
		if cerr != nil {
			if cerr.Code != CodeBadRequest || cerr.Reason == "" || len(cerr.Reason) > 123 {
				t.Fatalf("bad close %+v", cerr)
			}
			return
		}
		if c.ChannelID == nil || *c.ChannelID == "" || len(*c.ChannelID) > 255 || c.Role == nil {
			t.Fatalf("accepted invalid connect %s", msg)
		}
		parseMediaSpec(c.Audio, ErrInvalidAudio)
		parseMediaSpec(c.Video, ErrInvalidVideo)
	})
}
