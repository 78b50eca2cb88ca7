// Package sigclient is a small client of Sora's WebSocket signaling, used by
// Hayate's tests and load generator. It speaks the wire protocol only (no
// media): connect, read the offer, answer, answer pings, disconnect.
package sigclient

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/gobwas/ws"
)

// Closed is returned when the server closed the WebSocket: its close code and reason.
type Closed struct {
	Code   int
	Reason string
}

func (c *Closed) Error() string { return fmt.Sprintf("closed %d %q", c.Code, c.Reason) }

// Client is one signaling WebSocket.
type Client struct {
	nc net.Conn
	br *bufio.Reader
	wm sync.Mutex
	// AutoPong makes ReadMessage answer Sora pings with pong (default true).
	AutoPong bool
}

// Dial opens a WebSocket to url (ws://host:port/signaling).
func Dial(ctx context.Context, url string) (*Client, error) {
	return DialWith(ctx, url, nil)
}

// DialWith is Dial over connections made by netDial, for example
// in-memory pipes when a test needs more connections than it may have
// file descriptors. A nil netDial dials TCP.
func DialWith(ctx context.Context, url string, netDial func(ctx context.Context, network, addr string) (net.Conn, error)) (*Client, error) {
	nc, br, _, err := ws.Dialer{NetDial: netDial}.Dial(ctx, url)
	if err != nil {
		return nil, err
	}
	if br == nil {
		br = bufio.NewReader(nc)
	}
	return &Client{nc: nc, br: br, AutoPong: true}, nil
}

// Conn is the underlying connection (for tests that misbehave on purpose).
func (c *Client) Conn() net.Conn { return c.nc }

// SendJSON sends v as one text message.
func (c *Client) SendJSON(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return c.SendFrame(ws.OpText, b)
}

// SendFrame sends one masked frame, as a client must (RFC 6455 §5.3).
func (c *Client) SendFrame(op ws.OpCode, payload []byte) error {
	c.wm.Lock()
	defer c.wm.Unlock()
	f := ws.NewFrame(op, true, append([]byte(nil), payload...))
	f = ws.MaskFrameInPlace(f)
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return ws.WriteFrame(c.nc, f)
}

// ReadMessage returns the next text message, answering Sora pings when
// AutoPong is set. A close frame from the server returns *Closed (after
// answering it); the deadline bounds the wait.
func (c *Client) ReadMessage(deadline time.Time) ([]byte, error) {
	c.nc.SetReadDeadline(deadline)
	var msg []byte
	for {
		h, err := ws.ReadHeader(c.br)
		if err != nil {
			return nil, err
		}
		p := make([]byte, h.Length)
		if _, err := io.ReadFull(c.br, p); err != nil {
			return nil, err
		}
		if h.Masked {
			ws.Cipher(p, h.Mask, 0)
		}
		switch h.OpCode {
		case ws.OpClose:
			code, reason := ws.ParseCloseFrameData(p)
			_ = c.SendFrame(ws.OpClose, ws.NewCloseFrameBody(code, ""))
			return nil, &Closed{Code: int(code), Reason: reason}
		case ws.OpPing:
			_ = c.SendFrame(ws.OpPong, p)
			continue
		case ws.OpPong:
			continue
		}
		msg = append(msg, p...)
		if !h.Fin {
			continue
		}
		if c.AutoPong && messageType(msg) == "ping" {
			_ = c.SendJSON(map[string]string{"type": "pong"})
			msg = nil
			continue
		}
		return msg, nil
	}
}

func messageType(msg []byte) string {
	var m struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(msg, &m)
	return m.Type
}

// Offer is the part of Sora's offer message tests look at.
type Offer struct {
	Type         string            `json:"type"`
	SDP          string            `json:"sdp"`
	ChannelID    string            `json:"channel_id"`
	SessionID    string            `json:"session_id"`
	ClientID     string            `json:"client_id"`
	BundleID     string            `json:"bundle_id"`
	ConnectionID string            `json:"connection_id"`
	Mid          map[string]string `json:"mid"`
	Metadata     json.RawMessage   `json:"metadata"`
	Config       json.RawMessage   `json:"config"`
	Location     string            `json:"location"` // redirect only
	Raw          json.RawMessage   `json:"-"`
}

// Connect sends connect and waits for the offer (or a redirect). A refusal
// returns *Closed with the server's code and reason. Notify and push
// messages before the offer are skipped.
func (c *Client) Connect(connect any, deadline time.Time) (*Offer, error) {
	if err := c.SendJSON(connect); err != nil {
		return nil, err
	}
	return c.AwaitOffer(deadline)
}

// AwaitOffer reads until the offer or a redirect arrives.
func (c *Client) AwaitOffer(deadline time.Time) (*Offer, error) {
	for {
		msg, err := c.ReadMessage(deadline)
		if err != nil {
			return nil, err
		}
		var o Offer
		if err := json.Unmarshal(msg, &o); err != nil {
			return nil, fmt.Errorf("%w: %s", ErrNotOffer, msg)
		}
		switch o.Type {
		case "offer", "redirect":
			o.Raw = msg
			return &o, nil
		case "notify", "push":
			continue
		default:
			return nil, fmt.Errorf("%w: %s", ErrNotOffer, msg)
		}
	}
}

// Disconnect sends Sora's disconnect and waits for the server's close.
func (c *Client) Disconnect(deadline time.Time) (*Closed, error) {
	if err := c.SendJSON(map[string]string{"type": "disconnect", "reason": "NO-ERROR"}); err != nil {
		return nil, err
	}
	return c.AwaitClose(deadline)
}

// AwaitClose reads (discarding messages) until the server closes.
func (c *Client) AwaitClose(deadline time.Time) (*Closed, error) {
	for {
		_, err := c.ReadMessage(deadline)
		var cl *Closed
		if errors.As(err, &cl) {
			return cl, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// Close drops the TCP connection.
func (c *Client) Close() error { return c.nc.Close() }
