package node

import (
	"context"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"testing"

	"github.com/pion/rtp"
	"github.com/pion/stun/v4"

	"github.com/hayate-sfu/hayate/config"
	"github.com/hayate-sfu/hayate/internal/loadpeer"
)

// dialPeer connects a loadpeer client to n.
func dialPeer(t *testing.T, n *Node, channel, role string, onRTP func([]byte)) *loadpeer.Peer {
	t.Helper()
	msg := connectMsg(channel, role)
	msg["video"] = map[string]any{"codec_type": "VP8"}
	p, err := loadpeer.Dial(context.Background(), loadpeer.Options{URL: n.signalingURL(), Connect: msg, OnRTP: onRTP})
	if err != nil {
		t.Fatalf("loadpeer %s: %v", role, err)
	}
	t.Cleanup(p.Close)
	return p
}

// rtpPacket marshals an Opus-like RTP packet.
func rtpPacket(ssrc uint32, seq uint16, payload []byte) []byte {
	b, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 111, SequenceNumber: seq, Timestamp: uint32(seq) * 960, SSRC: ssrc}, Payload: payload}).Marshal()
	return b
}

func mediaStats(t *testing.T, n *Node) map[string]any {
	t.Helper()
	_, s, _ := apiCall(t, n, "Sora_20171010.GetStatsReport", "")
	return s["media"].(map[string]any)
}

func dropped(t *testing.T, n *Node, reason string) float64 {
	t.Helper()
	return mediaStats(t, n)["dropped"].(map[string]any)[reason].(float64)
}

// TestBadPackets: random bytes, truncated STUN/DTLS/SRTP, STUN with a wrong
// password, SRTP with a bad tag or replayed, and packets from unknown
// addresses are dropped and counted in GetStatsReport, while the call goes on.
func TestBadPackets(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.ICEConnectionStateFailedTimeout = patience })
	var got atomic.Uint64
	sub := dialPeer(t, n, "bad", "recvonly", func([]byte) { got.Add(1) })
	pub := dialPeer(t, n, "bad", "sendonly", nil)
	ssrc := pub.SSRCs["audio"]
	seq := uint16(1)
	send := func(count int) {
		for range count {
			if err := pub.SendRTP(rtpPacket(ssrc, seq, []byte("opus-payload"))); err != nil {
				t.Fatal(err)
			}
			seq++
		}
	}
	// The call works before the abuse.
	waitFor(t, "media before the abuse", patience, func() bool { send(1); return got.Load() > 5 })
	if sub.DecryptErrors.Load() != 0 {
		t.Fatal("subscriber could not decrypt")
	}

	stranger, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer stranger.Close()
	server := pub.Server
	fromStranger := func(b []byte) {
		if _, err := stranger.WriteToUDPAddrPort(b, server); err != nil {
			t.Fatal(err)
		}
	}
	_, serverPwd := pub.ServerCredentials()

	type expect struct {
		reason string
		delta  float64
	}
	cases := []struct {
		name string
		send func()
		want expect
	}{
		{"random bytes outside every RFC 7983 range", func() { fromStranger([]byte{0xff, 1, 2, 3, 4, 5}) }, expect{"malformed", 1}},
		{"random STUN-range bytes", func() { fromStranger(randomBytes(0x01, 40)) }, expect{"stun_malformed", 1}},
		{"truncated STUN", func() { fromStranger(pub.BindingRequest(serverPwd, false)[:30]) }, expect{"stun_malformed", 1}},
		{"STUN with an unknown ufrag", func() {
			m, _ := stun.Build(stun.BindingRequest, stun.TransactionID, stun.NewUsername("nobody:x"),
				stun.NewShortTermIntegrity("whatever"), stun.Fingerprint)
			fromStranger(m.Raw)
		}, expect{"stun_unknown_ufrag", 1}},
		{"STUN with a wrong password", func() {
			fromStranger(pub.BindingRequest("not-the-password-at-all", true))
		}, expect{"stun_unauthorized", 1}},
		{"DTLS from an unknown address", func() { fromStranger(randomBytes(22, 100)) }, expect{"unknown_address", 1}},
		{"SRTP from an unknown address", func() {
			b, _ := pub.EncryptRTP(nil, rtpPacket(ssrc, seq, []byte("x")))
			fromStranger(b)
		}, expect{"unknown_address", 1}},
		{"SRTP with a bad tag", func() {
			b, _ := pub.EncryptRTP(nil, rtpPacket(ssrc, seq, []byte("tampered")))
			b[len(b)-1] ^= 0xff
			_ = pub.WriteRaw(b)
		}, expect{"srtp_auth_failed", 1}},
		{"SRTP replayed", func() {
			b, _ := pub.EncryptRTP(nil, rtpPacket(ssrc, seq, []byte("once")))
			seq++
			_ = pub.WriteRaw(b)
			_ = pub.WriteRaw(b)
		}, expect{"srtp_replayed", 1}},
		{"truncated SRTP", func() {
			b, _ := pub.EncryptRTP(nil, rtpPacket(ssrc, seq, []byte("short")))
			_ = pub.WriteRaw(b[:14])
		}, expect{"malformed", 1}},
		{"random bytes in the RTP range from the publisher", func() {
			b := randomBytes(0x80, 200)
			b[1] = 111
			_ = pub.WriteRaw(b)
		}, expect{"srtp_auth_failed", 1}},
		{"SRTCP with a bad tag", func() {
			b, _ := pub.EncryptRTCP(nil, []byte{0x80, 201, 0, 1, 0, 0, 0, 1})
			b[len(b)-1] ^= 0xff
			_ = pub.WriteRaw(b)
		}, expect{"srtp_auth_failed", 1}},
		{"RTP of an SSRC the publisher did not announce", func() {
			_ = pub.SendRTP(rtpPacket(12345, 7, []byte("stray")))
		}, expect{"unknown_ssrc", 1}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := dropped(t, n, c.want.reason)
			c.send()
			waitFor(t, "the drop to be counted", patience, func() bool { return dropped(t, n, c.want.reason) >= before+c.want.delta })
			if c.name == "STUN with a wrong password" {
				code := readSTUNError(t, stranger)
				if code != stun.CodeUnauthorized {
					t.Fatalf("wrong password answered %v, want 401", code)
				}
			}
			// The call goes on.
			mark := got.Load()
			waitFor(t, "media after the bad packet", patience, func() bool { send(1); return got.Load() >= mark+3 })
		})
	}
	if cl, err := pub.Disconnect(patience); err != nil || cl.Code != 1000 {
		t.Fatalf("publisher disconnect: %v %v", cl, err)
	}
}

func randomBytes(first byte, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rand.Uint32())
	}
	b[0] = first
	return b
}

// readSTUNError reads the error response a STUN request got.
func readSTUNError(t *testing.T, c *net.UDPConn) stun.ErrorCode {
	t.Helper()
	buf := make([]byte, 1500)
	for {
		c.SetReadDeadline(soon())
		n, _, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("no STUN error response: %v", err)
		}
		m := &stun.Message{Raw: buf[:n]}
		if m.Decode() != nil || m.Type != stun.BindingError {
			continue
		}
		var code stun.ErrorCodeAttribute
		if err := code.GetFrom(m); err != nil {
			t.Fatal(err)
		}
		if m.Contains(stun.AttrMessageIntegrity) {
			t.Fatal("401 must not carry MESSAGE-INTEGRITY: the request was not authenticated")
		}
		return code.Code
	}
}
