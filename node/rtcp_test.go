package node

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/hayate-sfu/hayate/config"
	"github.com/hayate-sfu/hayate/internal/loadpeer"
)

// recorder keeps what a loadpeer receives.
type recorder struct {
	mu   sync.Mutex
	seqs map[uint32]map[uint16]int // per SSRC, times each seq arrived
	rtcp [][]byte
}

func newRecorder() *recorder { return &recorder{seqs: map[uint32]map[uint16]int{}} }

func (r *recorder) onRTP(b []byte) {
	var h rtp.Header
	if _, err := h.Unmarshal(b); err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seqs[h.SSRC] == nil {
		r.seqs[h.SSRC] = map[uint16]int{}
	}
	r.seqs[h.SSRC][h.SequenceNumber]++
}

func (r *recorder) onRTCP(b []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rtcp = append(r.rtcp, append([]byte(nil), b...))
}

// total is the number of packets of ssrc received.
func (r *recorder) total(ssrc uint32) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.seqs[ssrc] {
		n += c
	}
	return n
}

func (r *recorder) count(ssrc uint32, seq uint16) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seqs[ssrc][seq]
}

// rtcpOf returns the received RTCP packets of type pt (and format, when
// fmt >= 0), split out of their compounds.
func (r *recorder) rtcpOf(pt byte, fmtv int) [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out [][]byte
	for _, c := range r.rtcp {
		for len(c) >= 4 {
			size := (int(binary.BigEndian.Uint16(c[2:4])) + 1) * 4
			if size > len(c) {
				break
			}
			if c[1] == pt && (fmtv < 0 || int(c[0]&0x1f) == fmtv) {
				out = append(out, c[:size])
			}
			c = c[size:]
		}
	}
	return out
}

// call is a publisher and a subscriber of one channel, on our own stack.
type call struct {
	n        *Node
	pub, sub *loadpeer.Peer
	pubRec   *recorder
	subRec   *recorder
	video    uint32
	seq      uint16
}

func newCall(t *testing.T, n *Node, channel string) *call {
	t.Helper()
	c := &call{n: n, pubRec: newRecorder(), subRec: newRecorder(), seq: 100}
	c.sub = peerWith(t, n, channel, "recvonly", c.subRec, func(o *loadpeer.Options) { o.AcceptDuplicates = true })
	c.pub = peerWith(t, n, channel, "sendonly", c.pubRec)
	c.video = c.pub.SSRCs["video"]
	// Media flows before the test starts.
	c.expectFlow(t, "video at the subscriber")
	return c
}

// expectFlow sends video until some reaches the subscriber.
func (c *call) expectFlow(t *testing.T, what string) {
	t.Helper()
	before := c.subRec.total(c.video)
	waitFor(t, what, patience, func() bool {
		c.sendVideo(t, 1)
		return c.subRec.total(c.video) > before
	})
}

func peerWith(t *testing.T, n *Node, channel, role string, rec *recorder, edit ...func(*loadpeer.Options)) *loadpeer.Peer {
	t.Helper()
	msg := connectMsg(channel, role)
	msg["video"] = map[string]any{"codec_type": "VP8"}
	opt := loadpeer.Options{URL: n.signalingURL(), Connect: msg, OnRTP: rec.onRTP, OnRTCP: rec.onRTCP, ConsentInterval: 200 * time.Millisecond}
	for _, e := range edit {
		e(&opt)
	}
	p, err := loadpeer.Dial(context.Background(), opt)
	if err != nil {
		t.Fatalf("%s: %v", role, err)
	}
	t.Cleanup(p.Close)
	return p
}

func (c *call) sendVideo(t *testing.T, n int) {
	for range n {
		c.seq++
		b, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: c.seq, Timestamp: uint32(c.seq) * 3000, SSRC: c.video},
			Payload: make([]byte, 800)}).Marshal()
		if err := c.pub.SendRTP(b); err != nil {
			t.Fatal(err)
		}
	}
}

// sendVP8KeyFrame sends one packet that starts a VP8 key frame: the
// payload descriptor's S bit with partition 0 (RFC 7741 §4.2), then the
// payload header's P bit clear (§4.3).
func (c *call) sendVP8KeyFrame(t *testing.T) {
	c.seq++
	payload := make([]byte, 800)
	payload[0] = 0x10
	b, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 96, SequenceNumber: c.seq, Timestamp: uint32(c.seq) * 3000, SSRC: c.video},
		Payload: payload}).Marshal()
	if err := c.pub.SendRTP(b); err != nil {
		t.Fatal(err)
	}
}

func nack(sender, media uint32, pid, blp uint16) []byte {
	b := []byte{0x80 | 1, 205, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[4:], sender)
	binary.BigEndian.PutUint32(b[8:], media)
	binary.BigEndian.PutUint16(b[12:], pid)
	binary.BigEndian.PutUint16(b[14:], blp)
	return b
}

func psfb(format byte, sender, media uint32) []byte {
	b := []byte{0x80 | format, 206, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[4:], sender)
	binary.BigEndian.PutUint32(b[8:], media)
	return b
}

// TestNACKAnsweredFromCache: a subscriber's NACK is answered by the server
// from its packet cache, in the original stream.
func TestNACKAnsweredFromCache(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.ICEConnectionStateFailedTimeout = patience })
	c := newCall(t, n, "nack")
	c.sendVideo(t, 20)
	last := c.seq
	waitFor(t, "the burst", patience, func() bool { return c.subRec.count(c.video, last) == 1 })
	// NACK last-10 and last-9 (BLP bit 0).
	if err := c.sub.SendRTCP(nack(1, c.video, last-10, 1)); err != nil {
		t.Fatal(err)
	}
	deadline := soon()
	for !(c.subRec.count(c.video, last-10) == 2 && c.subRec.count(c.video, last-9) == 2) {
		if time.Now().After(deadline) {
			t.Fatalf("no retransmission: counts %d %d, stats %v", c.subRec.count(c.video, last-10), c.subRec.count(c.video, last-9), mediaStats(t, n))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := c.subRec.count(c.video, last-8); got != 1 {
		t.Fatalf("seq not asked for was sent %d times", got)
	}
	if c.sub.DecryptErrors.Load() != 0 {
		t.Fatal("retransmissions did not decrypt")
	}
	ms := mediaStats(t, n)
	if ms["total_nacks_received"].(float64) < 1 || ms["total_retransmitted_rtp"].(float64) < 2 {
		t.Fatalf("stats %v", ms)
	}
}

// TestPLIToPublisher: a subscriber's PLI or FIR reaches the publisher as a
// PLI for its SSRC. (The rate limit, one PLI per 300 ms per track, is
// rtpcore's TestPLIRateLimit, on made-up times.)
func TestPLIToPublisher(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.ICEConnectionStateFailedTimeout = patience })
	c := newCall(t, n, "pli")
	plis := func() int {
		k := 0
		for _, p := range c.pubRec.rtcpOf(206, 1) {
			if binary.BigEndian.Uint32(p[8:12]) == c.video {
				k++
			}
		}
		return k
	}
	// The subscriber's arrival asked for a key frame already.
	waitFor(t, "the PLI sent when the subscriber joined", patience, func() bool { return plis() >= 1 })
	// Each request is sent again until one is let through by the rate
	// limit: the test waits on what the publisher receives, not on time.
	for _, req := range []struct {
		name string
		pkt  []byte
	}{
		{"a PLI", psfb(1, 1, c.video)},
		{"a FIR (RFC 5104)", func() []byte {
			fir := []byte{0x80 | 4, 206, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0}
			binary.BigEndian.PutUint32(fir[12:], c.video)
			return fir
		}()},
	} {
		base := plis()
		waitFor(t, req.name+" as a PLI at the publisher", patience, func() bool {
			if err := c.sub.SendRTCP(req.pkt); err != nil {
				t.Fatal(err)
			}
			return plis() > base
		})
	}
}

// TestSenderAndReceiverReports: the publisher's SR reaches the subscriber
// (sender info only), and the server sends the publisher receiver reports
// about its stream.
func TestSenderAndReceiverReports(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.ICEConnectionStateFailedTimeout = patience })
	c := newCall(t, n, "reports")
	sr := []byte{0x81, 200, 0, 12, 0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 0x12, 0x34, 0x56, 0x78, 0, 0, 0x30, 0x39, 0, 0, 0, 5, 0, 0, 0x10, 0}
	binary.BigEndian.PutUint32(sr[4:], c.video)
	sr = append(sr, make([]byte, 24)...) // one report block, which must not be forwarded
	if err := c.pub.SendRTCP(sr); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the SR at the subscriber", patience, func() bool { return len(c.subRec.rtcpOf(200, -1)) > 0 })
	got := c.subRec.rtcpOf(200, -1)[0]
	if len(got) != 28 || got[0]&0x1f != 0 || binary.BigEndian.Uint32(got[4:]) != c.video || string(got[8:28]) != string(sr[8:28]) {
		t.Fatalf("forwarded SR % x", got)
	}
	waitFor(t, "an RR at the publisher", patience, func() bool {
		for _, rr := range c.pubRec.rtcpOf(201, -1) {
			for b := rr[8:]; len(b) >= 24; b = b[24:] {
				if binary.BigEndian.Uint32(b[0:4]) == c.video && binary.BigEndian.Uint32(b[16:20]) == 0xbeef1234 {
					return true
				}
			}
		}
		return false
	})
}

// TestMediaLiveness: a client whose media vanishes (its process killed or
// its network gone) while its WebSocket stays open is closed after
// ice_connection_state_failed_timeout with connection.destroyed.
func TestMediaLiveness(t *testing.T) {
	ev := newHookReceiver(t)
	n := startNode(t, func(c *config.Config) {
		c.ICEConnectionStateFailedTimeout = time.Second
		c.EventWebhookURL = ev.url()
	})
	c := newCall(t, n, "liveness")
	c.sub.StopMedia()
	start := time.Now()
	cl, ok := c.sub.SignalingClosed(patience)
	if !ok || cl == nil || cl.Code != 4408 || cl.Reason != "ICE-CONNECTION-STATE-FAILED" {
		t.Fatalf("closed with %v after %v", cl, time.Since(start))
	}
	if d := time.Since(start); d < 800*time.Millisecond {
		t.Fatalf("closed after %v, before the timeout", d)
	}
	waitFor(t, "connection.destroyed", patience, func() bool {
		for _, d := range ev.ofType("connection.destroyed") {
			if d["data"].(map[string]any)["reason"] == "ICE-CONNECTION-STATE-FAILED" {
				return true
			}
		}
		return false
	})
	// The publisher goes on (its consent checks keep it alive).
	c.sendVideo(t, 1)
	if cl, ok := c.pub.SignalingClosed(100 * time.Millisecond); ok {
		t.Fatalf("publisher closed too: %v", cl)
	}
}

// TestHandshakeNeverCompletes: a client that answers but never does ICE is
// closed after the timeout; one whose DTLS certificate does not match its
// answer's fingerprint is refused at once.
func TestHandshakeNeverCompletes(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.ICEConnectionStateFailedTimeout = time.Second })
	c, _ := join(t, n, "silent", "sendrecv") // answers with a made-up transport, sends no STUN
	cl, err := c.AwaitClose(soon())
	if err != nil || cl.Code != 4408 || cl.Reason != "ICE-CONNECTION-STATE-FAILED" {
		t.Fatalf("silent client closed with %v %v", cl, err)
	}
	// A node with time enough for a slow handshake on a loaded machine.
	n = startNode(t, func(c *config.Config) { c.ICEConnectionStateFailedTimeout = patience })
	msg := connectMsg("liar", "sendrecv")
	_, err = loadpeer.Dial(context.Background(), loadpeer.Options{URL: n.signalingURL(), Connect: msg, Timeout: patience,
		AnswerFingerprint: strings.Repeat("AB:", 31) + "AB"})
	// What the client sees: its DTLS handshake ends with a fatal
	// bad_certificate alert (RFC 5246 §7.2.2), and its WebSocket is closed
	// with 4400 DTLS-FAILED.
	var adm *loadpeer.AdmittedError
	if !errors.As(err, &adm) {
		t.Fatalf("a DTLS certificate that does not match the answer: dial returned %v", err)
	}
	if !strings.Contains(adm.Err.Error(), "BadCertificate") {
		t.Fatalf("the client's DTLS handshake failed with %v, want a bad_certificate alert", adm.Err)
	}
	if adm.Closed == nil || adm.Closed.Code != 4400 || adm.Closed.Reason != "DTLS-FAILED" {
		t.Fatalf("the client's WebSocket closed with %v, want 4400 DTLS-FAILED", adm.Closed)
	}
	waitFor(t, "the DTLS failure counted", patience, func() bool { return mediaStats(t, n)["total_dtls_failures"].(float64) >= 1 })
}

// TestPublisherLeavesAndReturns: when a publisher leaves, its subscribers get
// a re-offer with its sections inactive; a new publisher reuses them.
func TestPublisherLeavesAndReturns(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.ICEConnectionStateFailedTimeout = patience })
	c := newCall(t, n, "churn")
	sections := strings.Count(c.sub.Offer.SDP, "m=")
	if _, err := c.pub.Disconnect(patience); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a re-offer without the publisher", patience, func() bool {
		ro := c.sub.ReOffers()
		return len(ro) > 0 && !strings.Contains(ro[len(ro)-1], "a=sendonly") && !strings.Contains(ro[len(ro)-1], c.pub.Offer.ConnectionID)
	})
	rec := newRecorder()
	pub2 := peerWith(t, n, "churn", "sendonly", rec)
	waitFor(t, "a re-offer with the new publisher", patience, func() bool {
		ro := c.sub.ReOffers()
		return strings.Contains(ro[len(ro)-1], pub2.Offer.ConnectionID)
	})
	ro := c.sub.ReOffers()
	if got := strings.Count(ro[len(ro)-1], "m="); got != sections {
		t.Fatalf("sections grew from %d to %d: inactive ones were not reused", sections, got)
	}
}

// TestBackendsCarryACall: a node carries a call on each socket backend
// (auto picks io_uring here; epoll is the fallback where it is forbidden).
func TestBackendsCarryACall(t *testing.T) {
	for _, backend := range []string{"epoll", "io_uring"} {
		t.Run(backend, func(t *testing.T) {
			n := startNode(t, func(c *config.Config) {
				c.MediaBackend = backend
				c.MediaSockets = 2
				c.ICEConnectionStateFailedTimeout = patience
			})
			if n.Media().Backend() != backend {
				t.Fatalf("backend %q", n.Media().Backend())
			}
			c := newCall(t, n, "backend")
			c.sendVideo(t, 50)
			last := c.seq
			waitFor(t, "50 packets through "+backend, patience, func() bool {
				for s := last - 49; s != last+1; s++ {
					if c.subRec.count(c.video, s) == 0 {
						return false
					}
				}
				return true
			})
		})
	}
}
