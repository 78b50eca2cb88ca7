package rtpcore

import (
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/dtls/v3"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"

	"github.com/hayate-sfu/hayate/internal/ids"
	"github.com/hayate-sfu/hayate/media"
	"github.com/hayate-sfu/hayate/rtpcore/codecs"
	"github.com/hayate-sfu/hayate/rtpcore/datachan"
	"github.com/hayate-sfu/hayate/rtpcore/ice"
	"github.com/hayate-sfu/hayate/rtpcore/twcc"
)

// Transport states.
const (
	stOpen      uint32 = iota // created; answers ICE, buffers DTLS
	stStarted                 // the answer is known
	stConnected               // DTLS done, SRTP keys in place
	stClosed
)

// videoCacheSize is the number of packets kept per published video track
// for NACKs: about 1.5 s of a 1.5 Mbit/s stream.
const videoCacheSize = 256

// Transport is one connection's media transport; it implements
// media.Transport.
type Transport struct {
	e  *Engine
	id string
	ev media.Events
	// home is the shard that forwards to this transport (handoff.go).
	home  int
	agent *ice.Agent
	// ssrc is the sender SSRC of the RTCP Hayate sends on this transport.
	ssrc uint32

	state atomic.Uint32
	// startedAt (the answer) and lastRecv (the arrival of the peer's last
	// datagram) are wall times in ns, judged by the engine's stall log
	// (liveness.go).
	startedAt atomic.Int64
	lastRecv  atomic.Int64
	// openedAt is when the transport opened (the offer was made; wall
	// ns), checkedAt when the first authenticated STUN request came;
	// discSince when the peer's current silence crossed the
	// disconnected threshold (0: not silent), discTotal the time of the
	// silences before it (ns). ice_connection_state of the event
	// webhooks (ICEDurations).
	openedAt                        int64
	checkedAt, discSince, discTotal atomic.Int64
	// bytesIn counts the datagrams received from the peer that passed ICE
	// (STUN, DTLS, SRTP, SRTCP), bytesOut the SRTP and SRTCP sent to it:
	// total_received_bytes and total_sent_bytes of the event webhooks.
	bytesIn, bytesOut atomic.Uint64
	// dtlsCountIn and dtlsCountOut count the DTLS datagrams received from and sent
	// to the peer (Counters).
	dtlsCountIn, dtlsCountOut atomic.Uint64
	// checked is set by the first authenticated STUN request, checkedAddr
	// holds the latest address that sent one.
	checked     atomic.Bool
	checkedAddr atomic.Pointer[netip.AddrPort]
	// dtlsClient: the peer answered passive, Hayate opens the handshake.
	dtlsClient atomic.Bool

	started  chan struct{} // closed by Start
	remoteFP string        // written before started is closed

	// DTLS: datagrams from the receive loop, the peer they came from, and
	// the socket to answer on.
	dtlsOnce sync.Once
	dtlsIn   chan []byte
	dtlsPeer atomic.Pointer[netip.AddrPort]
	io       atomic.Pointer[PacketIO]
	connMu   sync.Mutex
	dtlsConn *dtls.Conn
	// dtlsStop is closed to end pion's DTLS goroutines once the peer has
	// finished its handshake (releaseDTLS) or at Close; dtlsDone is set
	// then, so the packet path stops checking.
	dtlsStop     chan struct{}
	dtlsStopOnce sync.Once
	dtlsDone     atomic.Bool
	// certRejected: the peer's certificate did not match a=fingerprint.
	certRejected atomic.Bool

	// DataChannels (data.go): data is the peer's m=application, written by
	// the first Start before started is closed; assoc (guarded by connMu)
	// and channels exist once SCTP is up.
	data     *media.DataRemote
	assoc    *datachan.Association
	channels atomic.Pointer[map[string]*datachan.Channel]

	// Receive side, guarded by rmu.
	rmu   sync.Mutex
	dec   *srtp.Context
	rhdr  rtp.Header
	rchdr rtcp.Header

	// Send side, guarded by smu.
	smu     sync.Mutex
	enc     *srtp.Context
	shdr    rtp.Header
	schdr   rtcp.Header
	ready   atomic.Bool
	profile atomic.Uint32

	// pubs are the tracks the peer publishes and downs the tracks this
	// transport receives; both copy-on-write, writers hold subMu.
	subMu sync.Mutex
	pubs  atomic.Pointer[[]*pubTrack]
	downs atomic.Pointer[[]*downTrack]

	// Congestion control (congestion.go): towards the peer (nil until an
	// answer accepts transport-cc or goog-remb), and the transport
	// feedback Hayate sends it for what it publishes (arrivals and
	// lastFeedback guarded by rmu); the negotiated extension ids.
	cc           atomic.Pointer[congestion]
	twccIn       atomic.Uint32
	ridExt       atomic.Uint32
	levelExt     atomic.Uint32 // audio level (RFC 6464), for spotlight (voice.go)
	arrivals     *twcc.Recorder
	lastFeedback int64

	closed    chan struct{}
	closeOnce sync.Once
	failOnce  sync.Once
}

func newTransport(e *Engine, id string, ev media.Events, home int) *Transport {
	t := &Transport{
		e: e, id: id, ev: ev, home: home, agent: ice.NewAgent(ids.ICE(8), ids.ICE(32)), ssrc: rand.Uint32() | 1,
		started: make(chan struct{}), dtlsIn: make(chan []byte, 16), closed: make(chan struct{}),
		dtlsStop: make(chan struct{}),
	}
	t.openedAt = time.Now().UnixNano()
	t.lastRecv.Store(t.openedAt)
	empty := []*pubTrack{}
	t.pubs.Store(&empty)
	none := []*downTrack{}
	t.downs.Store(&none)
	return t
}

// Bytes returns the bytes received from and sent to the peer (bytesIn,
// bytesOut).
func (t *Transport) Bytes() (in, out uint64) { return t.bytesIn.Load(), t.bytesOut.Load() }

// LocalCredentials implements media.Transport.
func (t *Transport) LocalCredentials() (string, string) { return t.agent.LocalUfrag, t.agent.LocalPwd }

// Start implements media.Transport.
func (t *Transport) Start(r media.Remote) error {
	if t.isClosed() {
		return ErrClosed
	}
	t.agent.SetRemoteUfrag(r.Ufrag)
	t.setupCongestion(r)
	if t.state.CompareAndSwap(stOpen, stStarted) {
		t.remoteFP = r.Fingerprint
		t.data = r.Data
		t.dtlsClient.Store(r.DTLSClient)
		t.startedAt.Store(time.Now().UnixNano())
		close(t.started)
		if r.DTLSClient && t.checked.Load() {
			t.startDTLSClient()
		}
	}
	return nil
}

func (t *Transport) isClosed() bool { return t.state.Load() == stClosed }

// remote is where packets to the peer go: the nominated address, or before
// a nomination the address DTLS came from, or the last that passed ICE.
func (t *Transport) remote() (netip.AddrPort, bool) {
	if a, ok := t.agent.Selected(); ok {
		return a, true
	}
	if p := t.dtlsPeer.Load(); p != nil {
		return *p, true
	}
	if p := t.checkedAddr.Load(); p != nil {
		return *p, true
	}
	return netip.AddrPort{}, false
}

// Publish implements media.Transport. Tracks already published keep their
// subscribers and packet cache.
func (t *Transport) Publish(tracks []media.Track) {
	t.subMu.Lock()
	defer t.subMu.Unlock()
	old := *t.pubs.Load()
	next := make([]*pubTrack, 0, len(tracks))
	for _, tr := range tracks {
		var pt *pubTrack
		for _, o := range old {
			if o.SSRC == tr.SSRC {
				pt = o
			}
		}
		if pt == nil {
			pt = newPubTrack(t, tr)
		}
		next = append(next, pt)
	}
	t.pubs.Store(&next)
}

// RequestKeyFrame implements media.KeyFrameRequester: for each video
// stream the peer publishes (each simulcast layer), a PLI from the stream's
// next packet (so the peer is sending and has its keys) and again every
// keyRequestInterval until a key frame comes, keyRequests PLIs at most
// (keyrequest.go).
func (t *Transport) RequestKeyFrame() {
	for _, pt := range *t.pubs.Load() {
		if pt.Kind != media.Video {
			continue
		}
		for _, ly := range pt.layers {
			ly.apiKeyAt.Store(0)
			ly.apiKeys.Store(keyRequests)
		}
	}
}

// pub returns the published track with ssrc (Track.SSRC).
func (t *Transport) pub(ssrc uint32) *pubTrack {
	for _, pt := range *t.pubs.Load() {
		if pt.SSRC == ssrc {
			return pt
		}
	}
	return nil
}

// Subscribe implements media.Transport.
func (t *Transport) Subscribe(src media.Transport, tracks []media.Track) {
	s, ok := src.(*Transport)
	if !ok || s == t {
		return
	}
	for _, tr := range tracks {
		pt := s.pub(tr.SSRC)
		if pt == nil {
			continue
		}
		t.subMu.Lock()
		cur := *t.downs.Load()
		var d *downTrack
		for _, x := range cur {
			if x.pt == pt {
				d = x
			}
		}
		if d == nil {
			d = newDownTrack(pt, t, tr)
			next := append(append(make([]*downTrack, 0, len(cur)+1), cur...), d)
			t.downs.Store(&next)
		}
		t.subMu.Unlock()
		pt.addDown(d)
		if !pt.simulcast {
			pt.layers[0].wantKey.Store(true)
		}
	}
	t.chooseLayers(t.e.now())
}

// Unsubscribe implements media.Transport.
func (t *Transport) Unsubscribe(src media.Transport) {
	s, ok := src.(*Transport)
	if !ok {
		return
	}
	t.subMu.Lock()
	cur := *t.downs.Load()
	next := make([]*downTrack, 0, len(cur))
	var gone []*downTrack
	for _, d := range cur {
		if d.pt.owner == s {
			gone = append(gone, d)
		} else {
			next = append(next, d)
		}
	}
	t.downs.Store(&next)
	t.subMu.Unlock()
	for _, d := range gone {
		d.pt.removeDown(d)
	}
}

// Close implements media.Transport.
func (t *Transport) Close() {
	t.closeOnce.Do(func() {
		t.state.Store(stClosed)
		t.ready.Store(false)
		close(t.closed)
		t.connMu.Lock()
		assoc, conn := t.assoc, t.dtlsConn
		t.connMu.Unlock()
		if assoc != nil {
			assoc.Close() // closes the DTLS connection under it too
		} else if conn != nil {
			conn.Close() // sends close_notify: the peer tears down at once
		}
		t.dtlsStopOnce.Do(func() { close(t.dtlsStop) })
		for _, d := range *t.downs.Load() {
			d.pt.removeDown(d)
		}
		for _, pt := range *t.pubs.Load() {
			pt.dmu.Lock()
			pt.setDowns(nil)
			pt.dmu.Unlock()
		}
		t.endLinks()
		t.e.forget(t)
	})
}

// fail closes the transport and reports why, once.
func (t *Transport) fail(reason string) {
	if t.isClosed() {
		return
	}
	t.failOnce.Do(func() {
		t.e.stats.TransportFails.Add(1)
		t.e.cfg.Log.Info("media transport failed", "connection_id", t.id, "reason", reason)
		t.Close()
		if t.ev != nil {
			t.ev.Failed(reason)
		}
	})
}

// tick runs the transport's timers (from the engine's janitor): deadlines
// count time the node was listening (stallLog.silence).
func (t *Transport) tick(now time.Time, report bool) {
	timeout := t.e.cfg.FailedTimeout
	wall := now.UnixNano()
	switch t.state.Load() {
	case stStarted:
		// Start sets startedAt just after the state: 0 is a Start under
		// way, not a transport silent since 1970.
		if at := t.startedAt.Load(); at != 0 && t.e.live.silence(at, wall) > timeout {
			if t.checked.Load() {
				t.fail("DTLS-HANDSHAKE-TIMEOUT")
			} else {
				t.fail("ICE-CONNECTION-STATE-FAILED")
			}
		}
	case stConnected:
		// RFC 7675 consent: a peer that sends nothing (not even STUN
		// consent checks) for the failed timeout is gone.
		at := t.lastRecv.Load()
		if at != 0 && t.e.live.silence(at, wall) > timeout {
			t.fail("ICE-CONNECTION-STATE-FAILED")
			return
		}
		if at != 0 {
			t.trackDisconnected(at, t.e.live.silence(at, wall), timeout)
		}
		if report {
			t.sendReceiverReports(now)
		}
		t.chooseLayers(wall)
	}
}

// trackDisconnected records the peer's silences longer than two thirds of
// the failed timeout (6.7 s by default: above RFC 7675's consent interval
// of 4 to 6 s, so that a peer that sends only consent checks never counts)
// as disconnected time: from the moment the silence crossed that threshold
// to the first janitor tick that sees the peer again (at: its last
// datagram, silence: how long the node has been listening since).
func (t *Transport) trackDisconnected(at int64, silence, failed time.Duration) {
	threshold := failed * 2 / 3
	if silence > threshold {
		t.discSince.CompareAndSwap(0, at+int64(threshold))
		return
	}
	if since := t.discSince.Swap(0); since != 0 && at > since {
		t.discTotal.Add(at - since)
	}
}

// ICEDurations reports the time the transport spent checking (from its
// opening, when the offer was made, to the peer's first authenticated STUN
// request, or until now if none came) and disconnected
// (trackDisconnected), as of now: Sora's ice_connection_state
// total_checking_duration_ms and total_disconnected_duration_ms.
func (t *Transport) ICEDurations() (checking, disconnected time.Duration) {
	now := time.Now().UnixNano()
	end := t.checkedAt.Load()
	if end == 0 {
		end = now
	}
	checking = time.Duration(max(0, end-t.openedAt))
	disconnected = time.Duration(t.discTotal.Load())
	if since := t.discSince.Load(); since != 0 && now > since {
		disconnected += time.Duration(now - since)
	}
	return checking, disconnected
}

// pubTrack is one published track: its streams (one, or one per rid of a
// simulcast track, layers.go) and its subscribers.
type pubTrack struct {
	media.Track
	owner     *Transport
	codec     codecs.Codec
	simulcast bool
	layers    []*layer
	dmu       sync.Mutex
	downs     atomic.Pointer[[]*downTrack]
	// byShard are the downs grouped by their subscriber's home shard
	// (handoff.go); written with downs.
	byShard atomic.Pointer[[][]*downTrack]
	// voiced and heard count the audio packets that carried an audio
	// level since the last TakeVoice, and those that were speech.
	voiced, heard atomic.Uint32
}

func newPubTrack(owner *Transport, tr media.Track) *pubTrack {
	pt := &pubTrack{Track: tr, owner: owner, codec: codecs.ByName(tr.Codec)}
	if tr.Kind == media.Video && len(tr.RIDs) > 1 {
		pt.simulcast = true
		for i, rid := range tr.RIDs[:min(len(tr.RIDs), maxCodecLayers)] {
			pt.layers = append(pt.layers, &layer{pt: pt, index: i, rid: rid})
		}
	} else {
		ly := &layer{pt: pt}
		ly.ssrc.Store(tr.SSRC)
		pt.layers = []*layer{ly}
	}
	pt.setDowns(nil)
	return pt
}

// setDowns stores the track's subscribers, also grouped by home shard.
// Called under dmu (or before the track is shared).
func (pt *pubTrack) setDowns(downs []*downTrack) {
	by := make([][]*downTrack, len(pt.owner.e.shards))
	for _, d := range downs {
		by[d.sub.home] = append(by[d.sub.home], d)
	}
	if downs == nil {
		downs = []*downTrack{}
	}
	pt.byShard.Store(&by)
	pt.downs.Store(&downs)
}

// downsByShard are the track's subscribers by home shard.
func (pt *pubTrack) downsByShard() [][]*downTrack { return *pt.byShard.Load() }

// downsOn are the track's subscribers whose home is shard id.
func (pt *pubTrack) downsOn(id int) []*downTrack { return (*pt.byShard.Load())[id] }

func (pt *pubTrack) addDown(d *downTrack) {
	pt.dmu.Lock()
	defer pt.dmu.Unlock()
	cur := *pt.downs.Load()
	for _, x := range cur {
		if x == d {
			return
		}
	}
	pt.setDowns(append(append(make([]*downTrack, 0, len(cur)+1), cur...), d))
}

func (pt *pubTrack) removeDown(d *downTrack) {
	pt.dmu.Lock()
	defer pt.dmu.Unlock()
	cur := *pt.downs.Load()
	next := make([]*downTrack, 0, len(cur))
	for _, x := range cur {
		if x != d {
			next = append(next, x)
		}
	}
	pt.setDowns(next)
}

// rxStats follow a stream's sequence numbers for receiver reports
// (RFC 3550 §6.4.1 and Appendix A.1, A.3).
type rxStats struct {
	started                      bool
	base, max                    uint16
	cycles                       uint32
	received                     uint32
	expectedPrior, receivedPrior uint32
	lastSR                       uint32 // middle 32 bits of the last SR's NTP time
	lastSRAt                     int64
}

func (r *rxStats) update(seq uint16) {
	r.received++
	if !r.started {
		r.started, r.base, r.max = true, seq, seq
		return
	}
	if d := seq - r.max; d != 0 && d < 1<<15 {
		if seq < r.max {
			r.cycles += 1 << 16
		}
		r.max = seq
	}
}

// Counters implements media.CountingTransport.
func (t *Transport) Counters() media.Counters {
	c := media.Counters{DTLSReceived: t.dtlsCountIn.Load(), DTLSSent: t.dtlsCountOut.Load()}
	t.rmu.Lock()
	defer t.rmu.Unlock()
	for _, pt := range *t.pubs.Load() {
		if !pt.simulcast {
			continue
		}
		for _, ly := range pt.layers {
			if ly.rid == "" {
				continue
			}
			if c.Layers == nil {
				c.Layers = map[string]media.RTPCounters{}
			}
			r := c.Layers[ly.rid]
			r.Packets += uint64(ly.rx.received)
			r.Bytes += ly.rxBytes
			c.Layers[ly.rid] = r
		}
	}
	return c
}
