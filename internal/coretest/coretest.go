// Package coretest has what tests of the media core's neighbours (ICE-TCP,
// TURN) share: a media core on loopback and ICE checks to its transports.
package coretest

import (
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v4"

	"github.com/hayate-sfu/hayate/internal/cert"
	"github.com/hayate-sfu/hayate/media"
	"github.com/hayate-sfu/hayate/rtpcore"
)

// Engine is a media core on a free loopback port (one socket, epoll),
// closed when the test ends.
func Engine(tb testing.TB) *rtpcore.Engine {
	tb.Helper()
	c, err := cert.Generate()
	if err != nil {
		tb.Fatal(err)
	}
	e, err := rtpcore.New(rtpcore.Config{Addr: netip.MustParseAddrPort("127.0.0.1:0"), Sockets: 1, Backend: rtpcore.BackendEpoll,
		Certificate: c.TLS, Fingerprint: c.Fingerprint, FailedTimeout: time.Minute, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { e.Close() })
	return e
}

// Check is a nominating ICE check (Binding request) to tr from a
// controlling peer whose ufrag is "peer" (RFC 8445 §7.2.2).
func Check(tb testing.TB, tr media.Transport) []byte {
	tb.Helper()
	ufrag, pwd := tr.LocalCredentials()
	m, err := stun.Build(stun.BindingRequest, stun.TransactionID, stun.NewUsername(ufrag+":peer"),
		Attr{stun.AttrPriority, []byte{1, 2, 3, 4}}, Attr{stun.AttrUseCandidate, nil},
		stun.NewShortTermIntegrity(pwd), stun.Fingerprint)
	if err != nil {
		tb.Fatal(err)
	}
	return m.Raw
}

// Attr is a raw STUN attribute.
type Attr struct {
	Type  stun.AttrType
	Value []byte
}

// AddTo implements stun.Setter.
func (a Attr) AddTo(m *stun.Message) error { m.Add(a.Type, a.Value); return nil }
