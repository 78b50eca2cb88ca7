// Command baseline is the comparison point of Hayate's load benchmarks: a
// small SFU built the way most Go users would build one with pion/webrtc/v4
// (one PeerConnection per client, a shared TrackLocalStaticRTP per published
// track and a ReadRTP -> WriteRTP loop feeding it), speaking the subset of
// Sora's WebSocket signaling that the load clients use.
//
// Model: a channel has publishers (role sendonly or sendrecv), who get an
// offer with one recvonly audio (Opus/111) and one recvonly video (VP8/96)
// section, and subscribers (role recvonly), who get an offer with every track
// the channel has when they connect; a subscriber that arrives before any
// track waits for one (up to 10 s). There is no renegotiation. The server is
// always the offerer and runs ICE-lite, so clients are controlling.
//
//	baseline --signaling_port=0 --ipv4_address=127.0.0.1
//
// prints "baseline ready signaling=<ip>:<port>" on stderr once listening and
// exits on SIGTERM or SIGINT.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/pion/ice/v4"
	"github.com/pion/rtcp"
	"github.com/pion/webrtc/v4"
)

const (
	// trackWait bounds how long a subscriber's offer waits for a first track.
	trackWait = 10 * time.Second
	// connectWait bounds the wait for the connect message.
	connectWait = 10 * time.Second
	// closeWait bounds the wait for the client's close frame after ours.
	closeWait = 2 * time.Second
)

func main() {
	port := flag.Int("signaling_port", 3000, "TCP port of the signaling WebSocket (0: any free port)")
	addr := flag.String("ipv4_address", "127.0.0.1", "IPv4 address for signaling and the only ICE host candidate")
	flag.Parse()
	ip := net.ParseIP(*addr).To4()
	if ip == nil {
		log.Fatalf("baseline: --ipv4_address=%q is not an IPv4 address", *addr)
	}

	ln, err := net.Listen("tcp4", net.JoinHostPort(ip.String(), strconv.Itoa(*port)))
	if err != nil {
		log.Fatalf("baseline: %v", err)
	}
	s, err := newServer(ip)
	if err != nil {
		log.Fatalf("baseline: %v", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/signaling", s.serveWS)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- hs.Serve(ln) }()
	fmt.Fprintf(os.Stderr, "baseline ready signaling=%s\n", ln.Addr())

	select {
	case <-ctx.Done():
	case err := <-served:
		log.Printf("baseline: serve: %v", err)
	}
	_ = hs.Close()
	if !s.shutdown(10 * time.Second) {
		log.Printf("baseline: sessions still open after shutdown timeout")
	}
}

// server holds the pion API shared by all PeerConnections and the channels.
type server struct {
	api  *webrtc.API
	done chan struct{} // closed on shutdown

	mu       sync.Mutex
	closing  bool
	channels map[string]*channel
	sessions map[*session]struct{}
	wg       sync.WaitGroup
}

func newServer(ip net.IP) (*server, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2,
			SDPFmtpLine: "minptime=10;useinbandfec=1",
		},
		PayloadType: 111,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{
			MimeType: webrtc.MimeTypeVP8, ClockRate: 90000,
			RTCPFeedback: []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}, {Type: "ccm", Parameter: "fir"}},
		},
		PayloadType: 96,
	}, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, err
	}

	se := webrtc.SettingEngine{}
	se.SetLite(true)
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(a net.IP) bool { return a.Equal(ip) })
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	// pion puts a=fingerprint at session level by default; Sora (and the
	// load clients, which read the first m-section) put it in each section.
	se.SetSDPMediaLevelFingerprints(true)

	// Without WithInterceptorRegistry, NewAPI registers pion's default
	// interceptors (webrtc.RegisterDefaultInterceptors: NACK, RTCP reports,
	// TWCC, stats, ...) on this MediaEngine, as most applications get them.
	// (Building the registry here would import github.com/pion/interceptor
	// directly, which go.mod lists only as indirect.)
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se))
	return &server{
		api:      api,
		done:     make(chan struct{}),
		channels: map[string]*channel{},
		sessions: map[*session]struct{}{},
	}, nil
}

// channel is the set of tracks published in one channel_id.
type channel struct {
	id        string
	sessionID string

	mu      sync.Mutex
	tracks  []*relay
	changed chan struct{} // closed and replaced when tracks change
}

// relay is one published track: the remote track's publisher and SSRC (for
// PLI) and the local track every subscriber's sender is bound to.
type relay struct {
	local *webrtc.TrackLocalStaticRTP
	pub   *webrtc.PeerConnection
	ssrc  webrtc.SSRC
}

func (s *server) channel(id string) *channel {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.channels[id]
	if c == nil {
		c = &channel{id: id, sessionID: newID(), changed: make(chan struct{})}
		s.channels[id] = c
	}
	return c
}

func (c *channel) add(r *relay) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.tracks = append(c.tracks, r)
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *channel) remove(r *relay) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, t := range c.tracks {
		if t == r {
			c.tracks = append(c.tracks[:i:i], c.tracks[i+1:]...)
			break
		}
	}
	close(c.changed)
	c.changed = make(chan struct{})
}

// awaitTracks returns the channel's tracks, waiting up to d for a first one.
func (c *channel) awaitTracks(d time.Duration, done <-chan struct{}) []*relay {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		c.mu.Lock()
		tracks, changed := append([]*relay(nil), c.tracks...), c.changed
		c.mu.Unlock()
		if len(tracks) > 0 {
			return tracks
		}
		select {
		case <-changed:
		case <-timer.C:
			return nil
		case <-done:
			return nil
		}
	}
}

// session is one signaling WebSocket and its PeerConnection.
type session struct {
	conn net.Conn
	rw   io.ReadWriter // buffered reader of the upgrade, writes to conn
	id   string

	mu sync.Mutex
	pc *webrtc.PeerConnection
}

func (s *server) serveWS(w http.ResponseWriter, r *http.Request) {
	conn, brw, _, err := ws.UpgradeHTTP(r, w)
	if err != nil {
		return
	}
	sess := &session{conn: conn, rw: struct {
		io.Reader
		io.Writer
	}{brw.Reader, conn}, id: newID()}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		conn.Close()
		return
	}
	s.sessions[sess] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.sessions, sess)
		s.mu.Unlock()
		s.wg.Done()
	}()
	defer conn.Close()
	defer sess.closePC()
	if err := s.run(sess); err != nil && !isClosed(err) {
		log.Printf("baseline: session %s: %v", sess.id, err)
	}
}

// shutdown closes every session and waits up to d for their handlers.
func (s *server) shutdown(d time.Duration) bool {
	s.mu.Lock()
	s.closing = true
	close(s.done)
	open := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		open = append(open, sess)
	}
	s.mu.Unlock()
	for _, sess := range open {
		sess.conn.Close()
		sess.closePC()
	}
	finished := make(chan struct{})
	go func() { s.wg.Wait(); close(finished) }()
	select {
	case <-finished:
		return true
	case <-time.After(d):
		return false
	}
}

func (sess *session) setPC(pc *webrtc.PeerConnection) {
	sess.mu.Lock()
	sess.pc = pc
	sess.mu.Unlock()
}

func (sess *session) closePC() {
	sess.mu.Lock()
	pc := sess.pc
	sess.mu.Unlock()
	if pc != nil {
		_ = pc.Close()
	}
}

// message is the part of a client message the baseline looks at.
type message struct {
	Type      string `json:"type"`
	Role      string `json:"role"`
	ChannelID string `json:"channel_id"`
	SDP       string `json:"sdp"`
}

// run is one session: connect, offer, answer, then wait for disconnect.
func (s *server) run(sess *session) error {
	_ = sess.conn.SetReadDeadline(time.Now().Add(connectWait))
	var m message
	if err := sess.read(&m); err != nil {
		return err
	}
	_ = sess.conn.SetReadDeadline(time.Time{})
	if m.Type != "connect" {
		return sess.close(4490, "INVALID-MESSAGE")
	}
	if m.ChannelID == "" {
		return sess.close(4490, "INVALID-CHANNEL-ID")
	}
	ch := s.channel(m.ChannelID)

	var pc *webrtc.PeerConnection
	var err error
	switch m.Role {
	case "sendonly", "sendrecv":
		pc, err = s.publisher(sess, ch)
	case "recvonly":
		pc, err = s.subscriber(sess, ch)
	default:
		return sess.close(4490, "INVALID-ROLE")
	}
	if err != nil {
		_ = sess.close(1011, "INTERNAL-ERROR")
		return err
	}
	if pc == nil {
		return sess.close(1011, "NO-TRACKS")
	}
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateFailed {
			sess.conn.Close()
		}
	})

	sdp, err := offer(pc, s.done)
	if err != nil {
		_ = sess.close(1011, "INTERNAL-ERROR")
		return err
	}
	if err := sess.write(map[string]any{
		"type": "offer", "sdp": sdp,
		"connection_id": sess.id, "client_id": sess.id, "bundle_id": sess.id,
		"session_id": ch.sessionID, "channel_id": ch.id,
		"config": map[string]any{"iceServers": []any{}},
	}); err != nil {
		return err
	}

	for {
		var m message
		if err := sess.read(&m); err != nil {
			return err
		}
		switch m.Type {
		case "answer":
			if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: m.SDP}); err != nil {
				_ = sess.close(4490, "INVALID-ANSWER")
				return err
			}
		case "disconnect":
			sess.closePC()
			return sess.close(ws.StatusNormalClosure, "TYPE-DISCONNECT")
		}
		// candidate, pong and anything else: ignored.
	}
}

// publisher builds a publisher's PeerConnection: recvonly audio and video,
// and a fan-out track for each remote track that arrives.
func (s *server) publisher(sess *session, ch *channel) (*webrtc.PeerConnection, error) {
	pc, err := s.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	sess.setPC(pc)
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeAudio, webrtc.RTPCodecTypeVideo} {
		if _, err := pc.AddTransceiverFromKind(kind, webrtc.RTPTransceiverInit{Direction: webrtc.RTPTransceiverDirectionRecvonly}); err != nil {
			return nil, err
		}
	}
	pc.OnTrack(func(remote *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		local, err := webrtc.NewTrackLocalStaticRTP(remote.Codec().RTPCodecCapability, remote.Kind().String(), sess.id)
		if err != nil {
			log.Printf("baseline: session %s: %v", sess.id, err)
			return
		}
		r := &relay{local: local, pub: pc, ssrc: remote.SSRC()}
		ch.add(r)
		defer ch.remove(r)
		for {
			pkt, _, err := remote.ReadRTP()
			if err != nil {
				return
			}
			if err := local.WriteRTP(pkt); err != nil && !errors.Is(err, io.ErrClosedPipe) {
				return
			}
		}
	})
	return pc, nil
}

// subscriber builds a subscriber's PeerConnection with every track of the
// channel (waiting for a first one). It returns nil if none came.
func (s *server) subscriber(sess *session, ch *channel) (*webrtc.PeerConnection, error) {
	tracks := ch.awaitTracks(trackWait, s.done)
	if len(tracks) == 0 {
		return nil, nil
	}
	pc, err := s.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	sess.setPC(pc)
	for _, r := range tracks {
		sender, err := pc.AddTrack(r.local)
		if err != nil {
			return nil, err
		}
		// Reading RTCP runs the sender's interceptors; PLI and FIR from the
		// subscriber become a PLI to the publisher.
		go func() {
			for {
				pkts, _, err := sender.ReadRTCP()
				if err != nil {
					return
				}
				for _, p := range pkts {
					switch p.(type) {
					case *rtcp.PictureLossIndication, *rtcp.FullIntraRequest:
						_ = r.pub.WriteRTCP([]rtcp.Packet{&rtcp.PictureLossIndication{MediaSSRC: uint32(r.ssrc)}})
					}
				}
			}
		}()
	}
	return pc, nil
}

// offer creates the offer and waits for ICE gathering, so that the host
// candidate is in the SDP.
func offer(pc *webrtc.PeerConnection, done <-chan struct{}) (string, error) {
	o, err := pc.CreateOffer(nil)
	if err != nil {
		return "", err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(o); err != nil {
		return "", err
	}
	select {
	case <-gathered:
	case <-done:
		return "", errors.New("shutting down")
	case <-time.After(10 * time.Second):
		return "", errors.New("ICE gathering timed out")
	}
	return pc.LocalDescription().SDP, nil
}

// read reads the next text message into v. Pings are answered and a close
// frame is echoed by wsutil; it then returns wsutil.ClosedError.
func (sess *session) read(v any) error {
	for {
		b, op, err := wsutil.ReadClientData(sess.rw)
		if err != nil {
			return err
		}
		if op != ws.OpText {
			continue
		}
		if err := json.Unmarshal(b, v); err != nil {
			_ = sess.close(4490, "INVALID-JSON")
			return err
		}
		return nil
	}
}

func (sess *session) write(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_ = sess.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return wsutil.WriteServerText(sess.conn, b)
}

// close sends a close frame and waits briefly for the client's (RFC 6455
// §7.1.1: the server closes TCP after the closing handshake).
func (sess *session) close(code ws.StatusCode, reason string) error {
	_ = sess.conn.SetWriteDeadline(time.Now().Add(closeWait))
	if err := ws.WriteFrame(sess.conn, ws.NewCloseFrame(ws.NewCloseFrameBody(code, reason))); err != nil {
		return err
	}
	_ = sess.conn.SetReadDeadline(time.Now().Add(closeWait))
	for {
		h, err := ws.ReadHeader(sess.rw)
		if err != nil {
			return nil
		}
		if _, err := io.CopyN(io.Discard, sess.rw, h.Length); err != nil || h.OpCode == ws.OpClose {
			return nil
		}
	}
}

func isClosed(err error) bool {
	var ce wsutil.ClosedError
	return errors.As(err, &ce) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)
}

// newID is a random 26-character identifier, like Sora's.
func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)
}
