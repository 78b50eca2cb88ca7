package rtpcore

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/srtp/v3"

	"github.com/hayate-sfu/hayate/internal/cert"
	"github.com/hayate-sfu/hayate/rtpcore/chanconn"
)

// DTLS over the receive loops: the loop hands DTLS datagrams (first byte 20
// to 63, RFC 7983) of a transport to pion/dtls/v3 through dtlsAdapter, a
// net.PacketConn fed by a channel. Hayate offers a=setup:actpass; browsers
// answer active and Hayate is the DTLS server, clients that answer passive
// (pion towards an ICE-lite offerer) get Hayate as DTLS client.

// deliverDTLS hands one DTLS datagram from an ICE-checked address to the
// transport, starting its handshake on the first.
func (t *Transport) deliverDTLS(s *shard, from netip.AddrPort, b []byte) {
	if t.dtlsDone.Load() {
		s.stats.DropDTLSAfterHandshake.Add(1)
		return
	}
	t.dtlsPeer.Store(&from)
	t.io.Store(&s.io)
	t.dtlsOnce.Do(func() { go t.handshake(from, false) })
	select {
	case t.dtlsIn <- append([]byte(nil), b...):
	default:
		s.stats.DropDTLSQueueFull.Add(1)
	}
}

// startDTLSClient opens the handshake towards a peer that answered
// a=setup:passive, once ICE has given an address.
func (t *Transport) startDTLSClient() {
	to, ok := t.remote()
	if !ok {
		return
	}
	t.dtlsOnce.Do(func() { go t.handshake(to, true) })
}

// handshake runs the DTLS handshake (server, or client when asClient) and
// installs the SRTP contexts.
func (t *Transport) handshake(from netip.AddrPort, asClient bool) {
	ctx, cancel := t.handshakeContext(0)
	defer cancel()
	ad := chanconn.New(t.dtlsIn, t.dtlsStop, t.e.addr, t.remote, func(p []byte, to netip.AddrPort) error {
		io := t.io.Load()
		if io == nil {
			return net.ErrClosed
		}
		t.dtlsCountOut.Add(1)
		return (*io).WriteTo(p, to)
	})
	opts := []dtls.Option{
		dtls.WithCertificates(t.e.cfg.Certificate),
		// The server's order wins (RFC 5764 §4.1.1): AES-GCM costs a fifth
		// of AES-CM with HMAC-SHA1 per packet (docs/spec/media-core.md §4.1).
		dtls.WithSRTPProtectionProfiles(dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80),
		dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret),
		// Certificates are self-signed; the check is the fingerprint from
		// the answer (RFC 8122 §5), done below.
		dtls.WithInsecureSkipVerify(true),
		dtls.WithVerifyPeerCertificate(func(raw [][]byte, _ [][]*x509.Certificate) error {
			return t.verifyFingerprint(ctx, raw)
		}),
	}
	var conn *dtls.Conn
	var err error
	if asClient {
		copts := make([]dtls.ClientOption, len(opts))
		for i, o := range opts {
			copts[i] = o
		}
		conn, err = dtls.ClientWithOptions(ad, net.UDPAddrFromAddrPort(from), copts...)
	} else {
		sopts := make([]dtls.ServerOption, 0, len(opts)+1)
		for _, o := range opts {
			sopts = append(sopts, o)
		}
		sopts = append(sopts, dtls.WithClientAuth(dtls.RequireAnyClientCert))
		conn, err = dtls.ServerWithOptions(ad, net.UDPAddrFromAddrPort(from), sopts...)
	}
	if err == nil {
		t.connMu.Lock()
		if t.isClosed() {
			err = ErrClosed
		} else {
			t.dtlsConn = conn
		}
		t.connMu.Unlock()
	}
	if err == nil {
		err = conn.HandshakeContext(ctx)
	}
	if err == nil {
		err = t.installKeys(conn, asClient)
	}
	if err != nil {
		if t.isClosed() && !t.certRejected.Load() {
			return // our own close ended the handshake
		}
		// A rejected certificate counts even when the client, told so by
		// the alert, hung up before this goroutine got here.
		t.e.stats.DTLSFailures.Add(1)
		t.e.cfg.Log.Info("DTLS handshake failed", "connection_id", t.id, "err", err)
		if errors.Is(err, context.DeadlineExceeded) {
			t.fail("DTLS-HANDSHAKE-TIMEOUT")
		} else {
			t.fail("DTLS-FAILED")
		}
		return
	}
	t.e.stats.DTLSHandshakes.Add(1)
	if !t.state.CompareAndSwap(stStarted, stConnected) {
		return // closed meanwhile
	}
	if t.data != nil {
		go t.startData(conn, asClient)
	} else if asClient {
		// The server (the peer) finished before it sent its last flight,
		// which completed ours: nothing of DTLS is needed any more.
		t.releaseDTLS()
	}
	t.lastRecv.Store(time.Now().UnixNano())
	// This transport can now receive its subscriptions: each needs a key frame.
	for _, d := range *t.downs.Load() {
		d.keyFrameLayer().wantKey.Store(true)
	}
	if t.ev != nil {
		t.ev.Connected()
	}
}

// handshakeContext ends a handshake (DTLS, SCTP) when the transport
// closes, and after limit if limit is positive. The DTLS handshake has no
// limit of its own: the janitor fails one that takes longer than
// FailedTimeout in the node's listening time (liveness.go), so a node stall
// does not fail handshakes in flight.
func (t *Transport) handshakeContext(limit time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(t.e.ctx)
	if limit > 0 {
		ctx, cancel = context.WithTimeout(t.e.ctx, limit)
	}
	go func() {
		select {
		case <-t.closed:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// releaseDTLS ends pion's DTLS goroutines (its record reader, handshake
// state machine and context watcher, and the 8 KiB read buffer the reader
// holds) once the peer has provably finished its handshake: as DTLS client
// at once; as DTLS server on the peer's first authenticated SRTP or SRTCP
// packet, which it can only send after receiving our last flight. Until
// then pion stays to answer retransmissions. The reader ends on
// net.ErrClosed from the adapter, which pion takes as the end of the
// transport without sending any alert; SRTP keys are already exported.
// Idle connections are the reason: about 30 KiB each. Close then sends no
// close_notify; the peer learns of the end from signaling and ICE consent.
//
// A transport with DataChannels keeps DTLS: SCTP runs over it (data.go).
func (t *Transport) releaseDTLS() {
	if t.data != nil || t.dtlsDone.Swap(true) {
		return
	}
	t.dtlsStopOnce.Do(func() { close(t.dtlsStop) })
	t.connMu.Lock()
	t.dtlsConn = nil
	t.connMu.Unlock()
	t.e.stats.DTLSReleased.Add(1)
}

// verifyFingerprint compares the client's certificate with the answer's
// a=fingerprint, waiting for the answer if the handshake came first.
func (t *Transport) verifyFingerprint(ctx context.Context, raw [][]byte) error {
	select {
	case <-t.started:
	case <-ctx.Done():
		return ctx.Err()
	}
	if len(raw) == 0 || !strings.EqualFold(cert.Fingerprint(raw[0]), t.remoteFP) {
		t.certRejected.Store(true)
		return errFingerprint
	}
	return nil
}

// installKeys exports the SRTP keys from DTLS (RFC 5764 §4.2) and creates
// the contexts: replay protection on decrypt (pion's default is none).
func (t *Transport) installKeys(conn *dtls.Conn, asClient bool) error {
	state, ok := conn.ConnectionState()
	if !ok {
		return errNoDTLSState
	}
	p, ok := conn.SelectedSRTPProtectionProfile()
	if !ok {
		return errNoSRTPProfile
	}
	var profile srtp.ProtectionProfile
	switch p {
	case dtls.SRTP_AEAD_AES_128_GCM:
		profile = srtp.ProtectionProfileAeadAes128Gcm
	case dtls.SRTP_AES128_CM_HMAC_SHA1_80:
		profile = srtp.ProtectionProfileAes128CmHmacSha1_80
	default:
		return fmt.Errorf("rtpcore: unexpected SRTP profile %v", p)
	}
	cfg := srtp.Config{Profile: profile}
	if err := cfg.ExtractSessionKeysFromDTLS(&state, asClient); err != nil {
		return err
	}
	enc, err := srtp.CreateContext(cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt, profile)
	if err != nil {
		return err
	}
	// libsrtp's default window is 128; video bursts reorder more than 64.
	dec, err := srtp.CreateContext(cfg.Keys.RemoteMasterKey, cfg.Keys.RemoteMasterSalt, profile,
		srtp.SRTPReplayProtection(128), srtp.SRTCPReplayProtection(128))
	if err != nil {
		return err
	}
	t.rmu.Lock()
	t.dec = dec
	t.rmu.Unlock()
	t.smu.Lock()
	t.enc = enc
	t.smu.Unlock()
	t.profile.Store(uint32(profile))
	t.ready.Store(true)
	return nil
}

// Profile returns the negotiated SRTP protection profile (0 before DTLS).
func (t *Transport) Profile() srtp.ProtectionProfile { return srtp.ProtectionProfile(t.profile.Load()) }
