package node

import (
	"encoding/json"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"github.com/pion/webrtc/v4"

	"github.com/hayate-sfu/hayate/config"
	"github.com/hayate-sfu/hayate/internal/sigclient"
)

// pionPeer is a real WebRTC client (pion/webrtc/v4) speaking Sora signaling
// to a node: it answers the offer and every re-offer, trickles its
// candidates, and records what it receives.
type pionPeer struct {
	t     *testing.T
	sig   *sigclient.Client
	pc    *webrtc.PeerConnection
	offer *sigclient.Offer

	mu       sync.Mutex
	received map[webrtc.RTPCodecType]map[uint16][]byte // payload by sequence number
	arrivals map[webrtc.RTPCodecType][]uint16          // sequence numbers in arrival order
	tracks   int
	reoffers int
	notifies []map[string]any
	done     chan struct{}
	closed   *sigclient.Closed
}

// pionAPI builds a pion API that uses loopback only, Opus and VP8 with
// Hayate's payload types, and the given SRTP profiles.
func pionAPI(t *testing.T, role webrtc.DTLSRole, profiles ...dtls.SRTPProtectionProfile) *webrtc.API {
	t.Helper()
	return pionAPIOn(t, []webrtc.NetworkType{webrtc.NetworkTypeUDP4}, role, profiles...)
}

// pionAPIOn is pionAPI on the given network types (TCP4 alone: ICE-TCP).
func pionAPIOn(t *testing.T, networks []webrtc.NetworkType, role webrtc.DTLSRole, profiles ...dtls.SRTPProtectionProfile) *webrtc.API {
	t.Helper()
	m := &webrtc.MediaEngine{}
	must(t, m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2, SDPFmtpLine: "minptime=10;useinbandfec=1"}, PayloadType: 111}, webrtc.RTPCodecTypeAudio))
	must(t, m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeVP8, ClockRate: 90000,
		RTCPFeedback: []webrtc.RTCPFeedback{{Type: "nack"}, {Type: "nack", Parameter: "pli"}}}, PayloadType: 96}, webrtc.RTPCodecTypeVideo))
	s := pionSettings(networks...)
	if len(profiles) > 0 {
		s.SetSRTPProtectionProfiles(profiles...)
	}
	if role != 0 {
		must(t, s.SetAnsweringDTLSRole(role))
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(s))
}

// pionSettings keeps a pion client on loopback (docs/design.md, "Testing
// with real clients"), on the given network types (none: UDP4), with
// large socket receive buffers (clientNet).
func pionSettings(networks ...webrtc.NetworkType) webrtc.SettingEngine {
	if len(networks) == 0 {
		networks = []webrtc.NetworkType{webrtc.NetworkTypeUDP4}
	}
	s := webrtc.SettingEngine{}
	if std, err := stdnet.NewNet(); err == nil {
		s.SetNet(clientNet{std})
	}
	s.SetIncludeLoopbackCandidate(true)
	s.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	s.SetNetworkTypes(networks)
	s.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	return s
}

// clientRecvBuffer is the receive buffer of a test client's UDP socket.
// The default (net.core.rmem_default, 208 KiB) holds about 100 datagrams
// of video: a subscriber whose reading goroutine a loaded machine does not
// run for 60 ms, while the node forwards a burst, loses datagrams in the
// kernel (Udp RcvbufErrors), and the test clients send no NACK to get
// them back. 4 MiB holds a whole measured phase of TestPionForwarding
// (800 datagrams, about 2 MiB of kernel memory) even if the client reads
// none of it meanwhile; the node's own sockets have as much (rtpcore).
const clientRecvBuffer = 4 << 20

// clientNet is the network of the pion test clients: the standard one,
// whose UDP sockets get clientRecvBuffer.
type clientNet struct{ transport.Net }

func (n clientNet) ListenUDP(network string, addr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, addr)
	if sc, ok := c.(syscall.Conn); ok && err == nil {
		setClientReadBuffer(sc, clientRecvBuffer)
	}
	return c, err
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// newPionPeer connects a pion client to channel with role. publish gives
// the local tracks a sending role attaches before answering.
func newPionPeer(t *testing.T, n *Node, api *webrtc.API, channel, role string, publish ...webrtc.TrackLocal) *pionPeer {
	t.Helper()
	return newPionPeerWith(t, n, api, channel, role, nil, publish...)
}

// newPionPeerWith is newPionPeer whose PeerConnection is configured by
// configure from the offer (nil: an empty configuration).
func newPionPeerWith(t *testing.T, n *Node, api *webrtc.API, channel, role string,
	configure func(*sigclient.Offer) webrtc.Configuration, publish ...webrtc.TrackLocal) *pionPeer {
	t.Helper()
	msg := connectMsg(channel, role)
	msg["video"] = map[string]any{"codec_type": "VP8"}
	return newPionPeerMsg(t, n, api, msg, nil, configure, publish...)
}

// newPionPeerMsg is newPionPeerWith with its connect message; onTrack, if
// set, reads each remote track instead of the recording reader.
func newPionPeerMsg(t *testing.T, n *Node, api *webrtc.API, msg map[string]any, onTrack func(*webrtc.TrackRemote),
	configure func(*sigclient.Offer) webrtc.Configuration, publish ...webrtc.TrackLocal) *pionPeer {
	t.Helper()
	p := &pionPeer{t: t, received: map[webrtc.RTPCodecType]map[uint16][]byte{
		webrtc.RTPCodecTypeAudio: {}, webrtc.RTPCodecTypeVideo: {}}, arrivals: map[webrtc.RTPCodecType][]uint16{}, done: make(chan struct{})}
	p.sig = dial(t, n)
	o, err := p.sig.Connect(msg, soon())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	p.offer = o
	var pcfg webrtc.Configuration
	if configure != nil {
		pcfg = configure(o)
	}
	pc, err := api.NewPeerConnection(pcfg)
	must(t, err)
	p.pc = pc
	t.Cleanup(func() { pc.Close() })
	pc.OnTrack(func(tr *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		p.mu.Lock()
		p.tracks++
		p.mu.Unlock()
		if onTrack != nil {
			go onTrack(tr)
			return
		}
		go p.read(tr)
	})
	pc.OnICECandidate(func(c *webrtc.ICECandidate) {
		if c != nil {
			_ = p.sig.SendJSON(map[string]any{"type": "candidate", "candidate": "candidate:" + c.ToJSON().Candidate})
		}
	})
	must(t, pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: o.SDP}))
	for _, tr := range publish {
		_, err := pc.AddTrack(tr)
		must(t, err)
	}
	p.answer("answer")
	go p.signalLoop()
	return p
}

func (p *pionPeer) answer(typ string) {
	ans, err := p.pc.CreateAnswer(nil)
	must(p.t, err)
	must(p.t, p.pc.SetLocalDescription(ans))
	must(p.t, p.sig.SendJSON(map[string]string{"type": typ, "sdp": ans.SDP}))
}

// signalLoop answers re-offers until the server closes the WebSocket.
func (p *pionPeer) signalLoop() {
	defer close(p.done)
	for {
		msg, err := p.sig.ReadMessage(time.Now().Add(time.Minute))
		if err != nil {
			if cl, ok := err.(*sigclient.Closed); ok {
				p.mu.Lock()
				p.closed = cl
				p.mu.Unlock()
			}
			return
		}
		var m struct {
			Type string `json:"type"`
			SDP  string `json:"sdp"`
		}
		_ = json.Unmarshal(msg, &m)
		if m.Type == "notify" {
			var n map[string]any
			_ = json.Unmarshal(msg, &n)
			p.mu.Lock()
			p.notifies = append(p.notifies, n)
			p.mu.Unlock()
		}
		if m.Type != "re-offer" {
			continue
		}
		sdp, err := answerOffer(p.pc, m.SDP)
		if err != nil {
			p.t.Errorf("re-offer: %v", err)
			return
		}
		p.mu.Lock()
		p.reoffers++
		p.mu.Unlock()
		_ = p.sig.SendJSON(map[string]string{"type": "re-answer", "sdp": sdp})
	}
}

// answerOffer applies a (re-)offer and returns the answer's SDP.
func answerOffer(pc *webrtc.PeerConnection, offer string) (string, error) {
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", err
	}
	ans, err := pc.CreateAnswer(nil)
	if err == nil {
		err = pc.SetLocalDescription(ans)
	}
	return ans.SDP, err
}

func (p *pionPeer) read(tr *webrtc.TrackRemote) {
	for {
		pkt, _, err := tr.ReadRTP()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.received[tr.Kind()][pkt.SequenceNumber] = append([]byte(nil), pkt.Payload...)
		p.arrivals[tr.Kind()] = append(p.arrivals[tr.Kind()], pkt.SequenceNumber)
		p.mu.Unlock()
	}
}

// has reports whether the peer received the packet of kind with seq.
func (p *pionPeer) has(kind webrtc.RTPCodecType, seq uint16) ([]byte, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, ok := p.received[kind][seq]
	return b, ok
}

// arrivedIn returns the sequence numbers of kind in [first, first+count)
// that the peer received, in the order they arrived.
func (p *pionPeer) arrivedIn(kind webrtc.RTPCodecType, first uint16, count int) []uint16 {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []uint16
	for _, seq := range p.arrivals[kind] {
		if int(seq-first) < count {
			out = append(out, seq)
		}
	}
	return out
}

func (p *pionPeer) trackCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tracks
}

func (p *pionPeer) waitConnected(n *Node) {
	p.t.Helper()
	deadline := soon()
	for p.pc.ConnectionState() != webrtc.PeerConnectionStateConnected {
		if time.Now().After(deadline) {
			p.t.Fatalf("peer connection %v, ICE %v, DTLS %v (offer %d sections); media stats %+v", p.pc.ConnectionState(), p.pc.ICEConnectionState(),
				p.pc.SCTP().Transport().State(), strings.Count(p.offer.SDP, "m="), n.Media().Stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// disconnect says goodbye over signaling and checks the normal close.
func (p *pionPeer) disconnect() {
	p.t.Helper()
	must(p.t, p.sig.SendJSON(map[string]string{"type": "disconnect", "reason": "NO-ERROR"}))
	select {
	case <-p.done:
	case <-time.After(patience):
		p.t.Fatal("no close after disconnect")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed == nil || p.closed.Code != 1000 || p.closed.Reason != "TYPE-DISCONNECT" {
		p.t.Fatalf("closed with %v", p.closed)
	}
}

// source sends numbered RTP packets with recorded payloads on a track.
type source struct {
	track *webrtc.TrackLocalStaticRTP
	kind  webrtc.RTPCodecType
	pt    uint8
	size  int
	seq   uint16
	ts    uint32
	step  uint32
	sent  map[uint16][]byte
	rnd   uint64
}

func newSource(t *testing.T, kind webrtc.RTPCodecType) *source {
	t.Helper()
	mime, pt, size, step := webrtc.MimeTypeOpus, uint8(111), 160, uint32(960)
	if kind == webrtc.RTPCodecTypeVideo {
		mime, pt, size, step = webrtc.MimeTypeVP8, 96, 1100, 3000
	}
	tr, err := webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: mime}, kind.String(), "pion-pub")
	must(t, err)
	return &source{track: tr, kind: kind, pt: pt, size: size, seq: 1000, step: step, sent: map[uint16][]byte{}, rnd: uint64(pt) * 7919}
}

// send writes one packet with a fresh pseudo-random payload and returns its
// sequence number.
func (s *source) send(t *testing.T) uint16 {
	payload := make([]byte, s.size)
	for i := range payload {
		s.rnd = s.rnd*6364136223846793005 + 1442695040888963407
		payload[i] = byte(s.rnd >> 56)
	}
	s.seq++
	s.ts += s.step
	if err := s.track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: s.pt, SequenceNumber: s.seq,
		Timestamp: s.ts, Marker: true}, Payload: payload}); err != nil {
		t.Errorf("write: %v", err)
	}
	s.sent[s.seq] = payload
	return s.seq
}

// TestPionForwarding: a pion publisher sends Opus and VP8 through the real
// server to three pion subscribers (two joined before it, one after); each
// receives at least 99% of the packets, byte for byte. Run with each SRTP
// profile forced on every client, and with each DTLS role: clients that
// answer a=setup:active like browsers (Hayate is the DTLS server) and
// a=setup:passive like pion's default towards ICE-lite (Hayate is the client).
func TestPionForwarding(t *testing.T) {
	for _, prof := range []struct {
		name    string
		profile dtls.SRTPProtectionProfile
	}{{"AEAD_AES_128_GCM", dtls.SRTP_AEAD_AES_128_GCM}, {"AES128_CM_HMAC_SHA1_80", dtls.SRTP_AES128_CM_HMAC_SHA1_80}} {
		for _, role := range []struct {
			name string
			role webrtc.DTLSRole
		}{{"answer-active", webrtc.DTLSRoleClient}, {"answer-passive", webrtc.DTLSRoleServer}} {
			t.Run(prof.name+"/"+role.name, func(t *testing.T) { testForwarding(t, prof.name, pionAPI(t, role.role, prof.profile)) })
		}
	}
}

func testForwarding(t *testing.T, profileName string, api *webrtc.API) {
	{
		{
			n := startNode(t, func(c *config.Config) { c.ICEConnectionStateFailedTimeout = patience })
			subs := []*pionPeer{newPionPeer(t, n, api, "fwd", "recvonly"), newPionPeer(t, n, api, "fwd", "recvonly")}
			audio, video := newSource(t, webrtc.RTPCodecTypeAudio), newSource(t, webrtc.RTPCodecTypeVideo)
			pub := newPionPeer(t, n, api, "fwd", "sendonly", audio.track, video.track)
			pub.waitConnected(n)
			// The late subscriber's first offer already carries the tracks.
			subs = append(subs, newPionPeer(t, n, api, "fwd", "recvonly"))
			for _, s := range subs {
				s.waitConnected(n)
			}
			// Warm up until every subscriber gets both tracks.
			deadline := soon()
			for {
				a, v := audio.send(t), video.send(t)
				ready := true
				for _, s := range subs {
					_, okA := s.has(webrtc.RTPCodecTypeAudio, a-1)
					_, okV := s.has(webrtc.RTPCodecTypeVideo, v-1)
					ready = ready && okA && okV
				}
				if ready {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("subscribers never received both tracks (tracks: %d %d %d)", subs[0].trackCount(), subs[1].trackCount(), subs[2].trackCount())
				}
				time.Sleep(20 * time.Millisecond)
			}
			// Measured phase: 400 audio and 400 video packets, paced.
			const count = 400
			var firstA, firstV uint16
			dropped0, _ := udpRcvbufErrors()
			for i := range count {
				a, v := audio.send(t), video.send(t)
				if i == 0 {
					firstA, firstV = a, v
				}
				if i%4 == 0 {
					time.Sleep(5 * time.Millisecond)
				}
			}
			for _, src := range []*source{audio, video} {
				first := firstA
				if src.kind == webrtc.RTPCodecTypeVideo {
					first = firstV
				}
				for si, s := range subs {
					arrived := func() int { return len(s.arrivedIn(src.kind, first, count)) }
					// The clients send no NACK: a datagram lost is lost
					// for good. What is checked below is awaited, not
					// one packet; a shortfall names where datagrams went.
					deadline := soon()
					for arrived() < count*99/100 {
						if time.Now().After(deadline) {
							dropped, _ := udpRcvbufErrors()
							st := n.Media().Stats()
							t.Fatalf("subscriber %d received %d/%d %s packets in %v; UDP datagrams dropped on full socket buffers meanwhile: %d; node: received %d RTP, forwarded %d, send errors %d, dropped %v",
								si, arrived(), count, src.kind, patience, dropped-dropped0, st.ReceivedRTP, st.Forwarded, st.SendErrors, st.Dropped)
						}
						time.Sleep(5 * time.Millisecond)
					}
					seqs := s.arrivedIn(src.kind, first, count)
					for i, seq := range seqs {
						b, _ := s.has(src.kind, seq)
						if string(b) != string(src.sent[seq]) {
							t.Fatalf("subscriber %d %s seq %d: payload differs", si, src.kind, seq)
						}
						if i > 0 && seq-first <= seqs[i-1]-first {
							t.Fatalf("subscriber %d %s: seq %d arrived after %d", si, src.kind, seq, seqs[i-1])
						}
					}
				}
			}
			stats := n.Media().Stats()
			if stats.Profiles[profileName] != len(subs)+1 {
				t.Fatalf("SRTP profiles in use %v, want all %d on %s", stats.Profiles, len(subs)+1, profileName)
			}
			if pub.reoffers != 0 || subs[0].reoffers == 0 || subs[2].reoffers != 0 {
				t.Errorf("re-offers: publisher %d, early subscriber %d, late subscriber %d", pub.reoffers, subs[0].reoffers, subs[2].reoffers)
			}
			for _, s := range subs {
				s.disconnect()
			}
			pub.disconnect()
			waitFor(t, "no transports left", patience, func() bool { return n.Media().Stats().Transports == 0 })
		}
	}
}
