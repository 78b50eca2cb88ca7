// Package loadpeer is a WebRTC client on Hayate's own stack, for load
// generation and tests: Sora signaling (sigclient), the controlling side of
// ICE (RFC 8445 §7.2: Binding requests with USE-CANDIDATE and periodic
// consent checks, RFC 7675), a DTLS client (pion/dtls/v3) and SRTP
// (pion/srtp/v3). It publishes raw RTP and hands received RTP to a callback;
// it does not encode or decode media.
package loadpeer

import (
	"context"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/sdp/v3"
	"github.com/pion/srtp/v3"
	"github.com/pion/stun/v4"

	"github.com/hayate-sfu/hayate/internal/cert"
	"github.com/hayate-sfu/hayate/internal/ids"
	"github.com/hayate-sfu/hayate/internal/sigclient"
	"github.com/hayate-sfu/hayate/rtpcore/chanconn"
)

// Options configure a peer.
type Options struct {
	// URL is the signaling URL (ws://host:port/signaling).
	URL string
	// Connect is the connect message (type, role, channel_id, ...).
	Connect map[string]any
	// SSRCs are the SSRCs the peer publishes, by kind ("audio", "video");
	// missing kinds get random ones.
	SSRCs map[string]uint32
	// Profiles are the SRTP profiles offered in DTLS, in order; default
	// AES-GCM then AES-CM.
	Profiles []dtls.SRTPProtectionProfile
	// Certificate is the DTLS certificate; default a fresh one.
	Certificate *cert.Certificate
	// OnRTP receives every decrypted RTP packet (the slice is reused after
	// the call returns). It runs on the peer's reader goroutine.
	OnRTP func(pkt []byte)
	// OnRTCP receives every decrypted RTCP compound packet.
	OnRTCP func(pkt []byte)
	// ConsentInterval is the period of ICE consent checks (default 2 s).
	ConsentInterval time.Duration
	// Timeout bounds signaling, ICE and DTLS (default 10 s).
	Timeout time.Duration
	// AcceptDuplicates turns off SRTP replay protection on receive, so a
	// test can see a packet arrive twice (a NACK for a packet that was not
	// really lost).
	AcceptDuplicates bool
	// Detach stops the peer's own reader once SRTP is up: the caller then
	// reads the socket itself (Conn, DecryptRTP), for example with recvmmsg
	// across many peers. STUN consent answers are then not read (they need
	// not be).
	Detach bool
	// AnswerFingerprint, if set, is put in the answer instead of the
	// certificate's real fingerprint (to test that the server checks it).
	AnswerFingerprint string
	// DataChannels runs SCTP over DTLS once it is up and accepts the
	// channels the server opens (data.go); OnData receives their messages
	// (msg is valid during the call, on the channel's reader goroutine).
	DataChannels bool
	OnData       func(label string, msg []byte, binary bool)
	// Simulcast answers a video section that asks for simulcast by
	// sending r0, r1 and r2 (the caller sends RTP with the rid extension,
	// id RIDExtension).
	Simulcast bool
	// Feedback accepts the offered header extensions, transport-cc,
	// goog-remb and RTX, and sends transport feedback for what arrives
	// (feedback.go).
	Feedback bool
	// Transport is how the peer reaches the server's media: TransportUDP
	// (the default), TransportTURNUDP or TransportTURNTCP (an allocation on
	// the server's TURN, with the offer's credentials) or TransportTCP
	// (ICE-TCP to the offer's passive candidate).
	Transport string
}

// Peer is one connected client.
type Peer struct {
	opt   Options
	Sig   *sigclient.Client
	Offer *sigclient.Offer
	// Server is the server's ICE host candidate.
	Server netip.AddrPort
	conn   *net.UDPConn // the UDP socket with TransportUDP, else nil
	link   link
	local  netip.AddrPort

	serverUfrag, serverPwd, serverFP string
	ufrag, pwd                       string
	tieBreaker                       uint64
	// SSRCs published, by kind.
	SSRCs map[string]uint32

	dtlsIn   chan []byte
	stunResp chan []byte
	dconn    *dtls.Conn
	encMu    sync.Mutex
	enc      *srtp.Context
	dec      *srtp.Context
	ready    atomic.Bool
	detach   atomic.Bool

	// Counters of the reader.
	RTPReceived, RTCPReceived, DecryptErrors atomic.Uint64

	detached chan struct{}
	closed   chan struct{}
	once     sync.Once
	wg       sync.WaitGroup
	sigMu    sync.Mutex
	sigClose *sigclient.Closed
	sigDone  chan struct{}
	reoffers []string
	data     *dataState
	fb       feedbackState
}

// Dial connects a peer: signaling, answer, ICE, DTLS, SRTP. It returns when
// SRTP keys are in place.
func Dial(ctx context.Context, opt Options) (*Peer, error) {
	if opt.Timeout == 0 {
		opt.Timeout = 10 * time.Second
	}
	if opt.ConsentInterval == 0 {
		opt.ConsentInterval = 2 * time.Second
	}
	if len(opt.Profiles) == 0 {
		opt.Profiles = []dtls.SRTPProtectionProfile{dtls.SRTP_AEAD_AES_128_GCM, dtls.SRTP_AES128_CM_HMAC_SHA1_80}
	}
	if opt.Certificate == nil {
		c, err := cert.Generate()
		if err != nil {
			return nil, err
		}
		opt.Certificate = c
	}
	ctx, cancel := context.WithTimeout(ctx, opt.Timeout)
	defer cancel()
	p := &Peer{
		opt: opt, ufrag: ids.ICE(8), pwd: ids.ICE(24), tieBreaker: rand.Uint64(), SSRCs: map[string]uint32{},
		dtlsIn: make(chan []byte, 64), stunResp: make(chan []byte, 8), closed: make(chan struct{}), sigDone: make(chan struct{}),
		detached: make(chan struct{}),
	}
	for k, v := range opt.SSRCs {
		p.SSRCs[k] = v
	}
	for _, k := range []string{"audio", "video"} {
		if p.SSRCs[k] == 0 {
			p.SSRCs[k] = rand.Uint32() | 1
		}
	}
	var err error
	if p.Sig, err = sigclient.Dial(ctx, opt.URL); err != nil {
		return nil, err
	}
	fail := func(err error) (*Peer, error) { p.Close(); return nil, err }
	deadline, _ := ctx.Deadline()
	if p.Offer, err = p.Sig.Connect(opt.Connect, deadline); err != nil {
		return fail(err)
	}
	if p.Offer.Type != "offer" {
		return fail(fmt.Errorf("loadpeer: got %s, not an offer", p.Offer.Type))
	}
	// From here on the server has admitted the connection.
	fail = func(err error) (*Peer, error) {
		p.Close()
		return nil, &AdmittedError{ConnectionID: p.Offer.ConnectionID, Err: err}
	}
	if err := p.readOffer(p.Offer.SDP); err != nil {
		return fail(err)
	}
	if err := p.dialLink(); err != nil {
		return fail(err)
	}
	p.local = p.link.local()
	answer, err := sigclient.Answer(p.Offer.SDP, p.answerParams())
	if err != nil {
		return fail(err)
	}
	if err := p.Sig.SendJSON(map[string]string{"type": "answer", "sdp": answer}); err != nil {
		return fail(err)
	}
	p.wg.Add(2)
	go p.readLoop()
	go p.signalLoop()
	if err := p.check(ctx, true); err != nil {
		return fail(err)
	}
	if err := p.handshake(ctx); err != nil {
		// A server that refuses the handshake also closes the WebSocket:
		// wait for that close (within the timeout), as a client would
		// see it, and report both.
		select {
		case <-p.sigDone:
		case <-ctx.Done():
		}
		p.sigMu.Lock()
		closed := p.sigClose
		p.sigMu.Unlock()
		p.Close()
		return nil, &AdmittedError{ConnectionID: p.Offer.ConnectionID, Err: err, Closed: closed}
	}
	if opt.DataChannels {
		if err := p.startData(ctx); err != nil {
			return fail(err)
		}
	}
	p.wg.Add(1)
	go p.consentLoop()
	if opt.Detach {
		p.detach.Store(true)
		p.link.setReadDeadline(time.Now())
		<-p.detached
		p.link.setReadDeadline(time.Time{})
	}
	return p, nil
}

// dialLink opens the way to the server's media that Options.Transport asks for.
func (p *Peer) dialLink() error {
	switch p.opt.Transport {
	case "", TransportUDP:
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
		if err != nil {
			return err
		}
		// Room for a few seconds of media while the client is not
		// scheduled (a loaded machine): loss on loopback is then the
		// server's, not ours.
		_ = c.SetReadBuffer(4 << 20)
		_ = c.SetWriteBuffer(4 << 20)
		p.conn = c
		p.link = &udpLink{conn: c, server: p.Server}
	case TransportTURNUDP, TransportTURNTCP:
		l, err := dialTURN(p.Offer.Config, strings.TrimPrefix(p.opt.Transport, "turn-"), p.Server)
		if err != nil {
			return err
		}
		p.link = l
	case TransportTCP:
		server, ok := tcpCandidate(p.Offer.SDP)
		if !ok {
			return errors.New("loadpeer: the offer has no passive TCP candidate")
		}
		l, err := dialTCP(server)
		if err != nil {
			return err
		}
		p.link = l
	default:
		return fmt.Errorf("loadpeer: unknown transport %q", p.opt.Transport)
	}
	return nil
}

// AdmittedError is a Dial that failed after the server admitted the
// connection (sent its offer): in ICE, DTLS or the answer.
type AdmittedError struct {
	ConnectionID string
	Err          error
	// Closed is the server's close of the WebSocket after a failed DTLS
	// handshake, if it came within the timeout.
	Closed *sigclient.Closed
}

func (e *AdmittedError) Error() string {
	msg := "loadpeer: connection " + e.ConnectionID + " admitted, then: " + e.Err.Error()
	if e.Closed != nil {
		msg += fmt.Sprintf("; signaling closed %d %s", e.Closed.Code, e.Closed.Reason)
	}
	return msg
}

func (e *AdmittedError) Unwrap() error { return e.Err }

func (p *Peer) answerParams() sigclient.AnswerParams {
	fp := p.opt.Certificate.Fingerprint
	if p.opt.AnswerFingerprint != "" {
		fp = p.opt.AnswerFingerprint
	}
	return sigclient.AnswerParams{Ufrag: p.ufrag, Pwd: p.pwd, Fingerprint: fp, SSRCs: p.SSRCs, CNAME: p.ufrag,
		Simulcast: p.opt.Simulcast, Feedback: p.opt.Feedback}
}

// readOffer takes the server's ICE credentials, fingerprint and candidate.
func (p *Peer) readOffer(text string) error {
	var s sdp.SessionDescription
	if err := s.UnmarshalString(text); err != nil {
		return err
	}
	if len(s.MediaDescriptions) == 0 {
		return errors.New("loadpeer: offer without sections")
	}
	md := s.MediaDescriptions[0]
	// Media-level attributes win; offers may put them at session level.
	attr := func(k string) string {
		if v, ok := md.Attribute(k); ok {
			return v
		}
		v, _ := s.Attribute(k)
		return v
	}
	p.serverUfrag = attr("ice-ufrag")
	p.serverPwd = attr("ice-pwd")
	fp := attr("fingerprint")
	p.serverFP = strings.TrimPrefix(fp, "sha-256 ")
	c, _ := md.Attribute("candidate")
	f := strings.Fields(c)
	if len(f) < 6 {
		return fmt.Errorf("loadpeer: bad candidate %q", c)
	}
	ap, err := netip.ParseAddrPort(net.JoinHostPort(f[4], f[5]))
	if err != nil {
		return err
	}
	p.Server = ap
	return nil
}

// Local is the peer's address: its UDP socket's, its relayed address on
// TURN, or its TCP connection's.
func (p *Peer) Local() netip.AddrPort { return p.local }

// ServerCredentials are the server's ICE ufrag and password from the offer.
func (p *Peer) ServerCredentials() (string, string) { return p.serverUfrag, p.serverPwd }

// BindingRequest builds a Binding request to the server as the controlling
// agent (RFC 8445 §7.2.2), authenticated with pwd.
func (p *Peer) BindingRequest(pwd string, nominate bool) []byte {
	setters := []stun.Setter{stun.BindingRequest, stun.TransactionID,
		stun.NewUsername(p.serverUfrag + ":" + p.ufrag),
		attr{stun.AttrPriority, []byte{0x6e, 0x7f, 0x1e, 0xff}},
		attr{stun.AttrICEControlling, u64(p.tieBreaker)}}
	if nominate {
		setters = append(setters, attr{stun.AttrUseCandidate, nil})
	}
	setters = append(setters, stun.NewShortTermIntegrity(pwd), stun.Fingerprint)
	m, err := stun.Build(setters...)
	if err != nil {
		panic(err)
	}
	return m.Raw
}

type attr struct {
	t stun.AttrType
	v []byte
}

func (a attr) AddTo(m *stun.Message) error { m.Add(a.t, a.v); return nil }

func u64(v uint64) []byte {
	b := make([]byte, 8)
	for i := range 8 {
		b[i] = byte(v >> (56 - 8*i))
	}
	return b
}

// check runs one ICE check until the server answers.
func (p *Peer) check(ctx context.Context, nominate bool) error {
	req := p.BindingRequest(p.serverPwd, nominate)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		if err := p.link.send(req); err != nil {
			return err
		}
		select {
		case resp := <-p.stunResp:
			m := &stun.Message{Raw: resp}
			if m.Decode() == nil && m.Type == stun.BindingSuccess && stun.NewShortTermIntegrity(p.serverPwd).Check(m) == nil {
				return nil
			}
		case <-t.C:
		case <-ctx.Done():
			return ErrICE
		case <-p.closed:
			return ErrClosed
		}
	}
}

func (p *Peer) consentLoop() {
	defer p.wg.Done()
	t := time.NewTicker(p.opt.ConsentInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			_ = p.link.send(p.BindingRequest(p.serverPwd, false))
			// An empty receiver report, as RTCP is sent even without media
			// (RFC 3550 §6.2); it also tells the server our DTLS is done.
			if p.ready.Load() {
				rr := []byte{0x80, 201, 0, 1, 0, 0, 0, 0}
				binary.BigEndian.PutUint32(rr[4:], p.SSRCs["audio"])
				_ = p.SendRTCP(rr)
			}
		case <-p.closed:
			return
		}
	}
}

// handshake runs DTLS as client and installs the SRTP contexts.
func (p *Peer) handshake(ctx context.Context) error {
	a := chanconn.New(p.dtlsIn, p.closed, p.local, func() (netip.AddrPort, bool) { return p.Server, true },
		func(b []byte, _ netip.AddrPort) error { return p.link.send(b) })
	c, err := dtls.ClientWithOptions(a, net.UDPAddrFromAddrPort(p.Server),
		dtls.WithCertificates(p.opt.Certificate.TLS),
		dtls.WithSRTPProtectionProfiles(p.opt.Profiles...),
		dtls.WithExtendedMasterSecret(dtls.RequireExtendedMasterSecret),
		dtls.WithInsecureSkipVerify(true),
		dtls.WithVerifyPeerCertificate(func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 || !strings.EqualFold(cert.Fingerprint(raw[0]), p.serverFP) {
				return errors.New("loadpeer: server certificate does not match the offer")
			}
			return nil
		}))
	if err != nil {
		return err
	}
	p.dconn = c
	if err := c.HandshakeContext(ctx); err != nil {
		return err
	}
	state, _ := c.ConnectionState()
	prof, _ := c.SelectedSRTPProtectionProfile()
	profile := srtp.ProtectionProfileAeadAes128Gcm
	if prof == dtls.SRTP_AES128_CM_HMAC_SHA1_80 {
		profile = srtp.ProtectionProfileAes128CmHmacSha1_80
	}
	cfg := srtp.Config{Profile: profile}
	if err := cfg.ExtractSessionKeysFromDTLS(&state, true); err != nil {
		return err
	}
	if p.enc, err = srtp.CreateContext(cfg.Keys.LocalMasterKey, cfg.Keys.LocalMasterSalt, profile); err != nil {
		return err
	}
	replay := []srtp.ContextOption{srtp.SRTPReplayProtection(512), srtp.SRTCPReplayProtection(512)}
	if p.opt.AcceptDuplicates {
		replay = nil
	}
	if p.dec, err = srtp.CreateContext(cfg.Keys.RemoteMasterKey, cfg.Keys.RemoteMasterSalt, profile, replay...); err != nil {
		return err
	}
	p.ready.Store(true)
	return nil
}

// Profile is the negotiated SRTP profile.
func (p *Peer) Profile() (dtls.SRTPProtectionProfile, bool) {
	if p.dconn == nil {
		return 0, false
	}
	return p.dconn.SelectedSRTPProtectionProfile()
}

// readLoop demultiplexes the peer's socket (RFC 7983).
func (p *Peer) readLoop() {
	defer p.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, err := p.link.recv(buf)
		if p.detach.Load() {
			close(p.detached)
			return
		}
		if err != nil {
			return
		}
		if n == 0 {
			continue
		}
		b := buf[:n]
		switch c := b[0]; {
		case c < 4:
			select {
			case p.stunResp <- append([]byte(nil), b...):
			default:
			}
		case c >= 20 && c <= 63:
			select {
			case p.dtlsIn <- append([]byte(nil), b...):
			default:
			}
		case c >= 128 && c <= 191 && p.ready.Load():
			if n >= 2 && b[1] >= 192 && b[1] <= 223 {
				out, err := p.dec.DecryptRTCP(b[:0], b, nil)
				if err != nil {
					p.DecryptErrors.Add(1)
					continue
				}
				p.RTCPReceived.Add(1)
				if p.opt.OnRTCP != nil {
					p.opt.OnRTCP(out)
				}
				continue
			}
			out, err := p.dec.DecryptRTP(b[:0], b, nil)
			if err != nil {
				p.DecryptErrors.Add(1)
				continue
			}
			p.RTPReceived.Add(1)
			if p.opt.Feedback {
				p.NoteArrival(out, time.Now())
			}
			if p.opt.OnRTP != nil {
				p.opt.OnRTP(out)
			}
		}
	}
}

// signalLoop answers re-offers (with the same parameters) and records the
// server's close.
func (p *Peer) signalLoop() {
	defer p.wg.Done()
	defer close(p.sigDone)
	for {
		msg, err := p.Sig.ReadMessage(time.Now().Add(24 * time.Hour))
		if err != nil {
			var cl *sigclient.Closed
			if errors.As(err, &cl) {
				p.sigMu.Lock()
				p.sigClose = cl
				p.sigMu.Unlock()
			}
			return
		}
		var m struct {
			Type string `json:"type"`
			SDP  string `json:"sdp"`
		}
		if json.Unmarshal(msg, &m) != nil || m.Type != "re-offer" {
			continue
		}
		p.sigMu.Lock()
		p.reoffers = append(p.reoffers, m.SDP)
		p.sigMu.Unlock()
		ans, err := sigclient.Answer(m.SDP, p.answerParams())
		if err == nil {
			_ = p.Sig.SendJSON(map[string]string{"type": "re-answer", "sdp": ans})
		}
	}
}

// ReOffers returns the SDPs of the re-offers received so far.
func (p *Peer) ReOffers() []string {
	p.sigMu.Lock()
	defer p.sigMu.Unlock()
	return append([]string(nil), p.reoffers...)
}

// StopMedia closes the peer's way to the media (its UDP socket, TURN
// allocation or TCP connection) and keeps signaling open, as a client
// whose network vanished would.
func (p *Peer) StopMedia() {
	if p.link != nil {
		p.link.close()
	}
}

// SignalingClosed waits until the server closed the WebSocket and returns
// its close frame (nil if the connection just dropped).
func (p *Peer) SignalingClosed(timeout time.Duration) (*sigclient.Closed, bool) {
	select {
	case <-p.sigDone:
	case <-time.After(timeout):
		return nil, false
	}
	p.sigMu.Lock()
	defer p.sigMu.Unlock()
	return p.sigClose, true
}

// DecryptRTP opens an SRTP packet from the server into dst. With Detach,
// the caller's reader is the only user of the decrypt context.
func (p *Peer) DecryptRTP(dst, pkt []byte) ([]byte, error) { return p.dec.DecryptRTP(dst, pkt, nil) }

// EncryptRTP protects an RTP packet (a full marshalled packet) into dst.
func (p *Peer) EncryptRTP(dst, pkt []byte) ([]byte, error) {
	p.encMu.Lock()
	defer p.encMu.Unlock()
	return p.enc.EncryptRTP(dst, pkt, nil)
}

// EncryptRTCP protects an RTCP compound packet into dst.
func (p *Peer) EncryptRTCP(dst, pkt []byte) ([]byte, error) {
	p.encMu.Lock()
	defer p.encMu.Unlock()
	return p.enc.EncryptRTCP(dst, pkt, nil)
}

// SendRTP encrypts and sends one RTP packet to the server.
func (p *Peer) SendRTP(pkt []byte) error {
	out, err := p.EncryptRTP(make([]byte, 0, len(pkt)+32), pkt)
	if err != nil {
		return err
	}
	return p.WriteRaw(out)
}

// SendRTCP encrypts and sends one RTCP compound packet to the server.
func (p *Peer) SendRTCP(pkt []byte) error {
	out, err := p.EncryptRTCP(make([]byte, 0, len(pkt)+32), pkt)
	if err != nil {
		return err
	}
	return p.WriteRaw(out)
}

// WriteRaw sends bytes to the server as they are.
func (p *Peer) WriteRaw(b []byte) error { return p.link.send(b) }

// Recv reads the next datagram from the server, whatever the transport:
// for the caller of a detached peer.
func (p *Peer) Recv(buf []byte) (int, error) { return p.link.recv(buf) }

// Conn is the peer's UDP socket with TransportUDP, else nil (for batch
// senders, and the reader of a detached peer).
func (p *Peer) Conn() *net.UDPConn { return p.conn }

// Disconnect sends Sora's disconnect and waits for the server's close.
func (p *Peer) Disconnect(timeout time.Duration) (*sigclient.Closed, error) {
	if err := p.Sig.SendJSON(map[string]string{"type": "disconnect", "reason": "NO-ERROR"}); err != nil {
		return nil, err
	}
	cl, ok := p.SignalingClosed(timeout)
	if !ok {
		return nil, errors.New("loadpeer: no close after disconnect")
	}
	return cl, nil
}

// Close drops everything without saying goodbye.
func (p *Peer) Close() {
	p.once.Do(func() {
		close(p.closed)
		if p.data != nil {
			p.data.assoc.Close() // closes the DTLS connection too
		}
		if p.dconn != nil {
			p.dconn.Close()
		}
		if p.link != nil {
			p.link.close()
		}
		if p.Sig != nil {
			p.Sig.Close()
		}
	})
	p.wg.Wait()
}
