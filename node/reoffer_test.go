package node

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hayate-sfu/hayate/config"
	"github.com/hayate-sfu/hayate/internal/loadpeer"
	"github.com/hayate-sfu/hayate/internal/sigclient"
)

// readReOffer reads messages until a re-offer arrives.
func readReOffer(t *testing.T, c *sigclient.Client, d time.Duration) (string, bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		msg, err := c.ReadMessage(deadline)
		if err != nil {
			return "", false
		}
		var m struct{ Type, SDP string }
		_ = json.Unmarshal(msg, &m)
		if m.Type == "re-offer" {
			return m.SDP, true
		}
	}
}

// TestReOffersCoalesced: one re-offer is in flight per connection; changes
// while it is unanswered go into the next one.
func TestReOffersCoalesced(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.SignalingNotify = false })
	sub, _ := join(t, n, "co", "recvonly") // signaling only: answers what we make it answer
	_, p1 := join(t, n, "co", "sendonly")
	first, ok := readReOffer(t, sub, patience)
	if !ok || !strings.Contains(first, p1.ConnectionID) {
		t.Fatalf("first re-offer missing or without publisher 1: %v", ok)
	}
	_, p2 := join(t, n, "co", "sendonly")
	_, p3 := join(t, n, "co", "sendonly")
	reOffers := func() (created, reOffers float64) {
		_, s, _ := apiCall(t, n, "Sora_20171010.GetStatsReport", "")
		return s["total_connection_created"].(float64), s["total_re_offers"].(float64)
	}
	// Once the node has taken both answers, their tracks are published:
	// still no second re-offer while the first is unanswered.
	waitFor(t, "the publishers' answers taken", patience, func() bool { c, _ := reOffers(); return c == 4 })
	if _, r := reOffers(); r != 1 {
		t.Fatalf("total_re_offers = %v before the first re-offer was answered, want 1", r)
	}
	ans, err := sigclient.Answer(first, sigclient.AnswerParams{Ufrag: "tufr", Pwd: "0123456789abcdef0123456789", Fingerprint: testFingerprint})
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.SendJSON(map[string]string{"type": "re-answer", "sdp": ans}); err != nil {
		t.Fatal(err)
	}
	next, ok := readReOffer(t, sub, patience)
	if !ok || !strings.Contains(next, p2.ConnectionID) || !strings.Contains(next, p3.ConnectionID) || !strings.Contains(next, p1.ConnectionID) {
		t.Fatalf("the coalesced re-offer does not carry all three publishers")
	}
	_, _, raw := apiCall(t, n, "Sora_20171010.GetStatsReport", "")
	var s struct {
		ReOffers int `json:"total_re_offers"`
	}
	_ = json.Unmarshal(raw, &s)
	if s.ReOffers != 2 {
		t.Fatalf("total_re_offers = %d, want 2", s.ReOffers)
	}
}

// TestMediaCallsLeakNothing: calls with ICE, DTLS and SRTP come and go; the
// goroutines (DTLS's included) and transports return to the baseline.
func TestMediaCallsLeakNothing(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.ICEConnectionStateFailedTimeout = patience })
	// One call first, so lazily started goroutines exist before the baseline.
	warm := dialPeer(t, n, "warm", "sendrecv", nil)
	warm.Disconnect(patience)
	warm.Close()
	waitFor(t, "warm-up gone", patience, func() bool { return n.Media().Stats().Transports == 0 })
	base := goroutineBaseline()
	for round := range 3 {
		var peers []*loadpeer.Peer
		for i := range 6 {
			role := []string{"sendrecv", "recvonly", "sendonly"}[i%3]
			peers = append(peers, dialPeer(t, n, "leak-"+string(rune('a'+round)), role, nil))
		}
		for i, p := range peers {
			if i%2 == 0 {
				if _, err := p.Disconnect(patience); err != nil {
					t.Fatal(err)
				}
			}
			p.Close() // the others vanish without a goodbye
		}
		waitFor(t, "every transport closed", patience, func() bool {
			return n.Media().Stats().Transports == 0 && n.hub.Connections() == 0
		})
	}
	checkGoroutines(t, base, n)
}

// TestSameBundleNoMedia: connections with one bundle_id get no media of
// each other (Sora's bundle_id), and a publisher never gets its own tracks.
func TestSameBundleNoMedia(t *testing.T) {
	n := startNode(t, func(c *config.Config) { c.SignalingBundleID = true; c.SignalingNotify = false })
	bundled := func(role string) (*sigclient.Client, *sigclient.Offer) {
		c := dial(t, n)
		m := connectMsg("bundle", role)
		m["bundle_id"] = "same-device"
		o, err := c.Connect(m, soon())
		if err != nil {
			t.Fatal(err)
		}
		answer(t, c, o)
		return c, o
	}
	_, pub := bundled("sendrecv")
	sub, subOffer := bundled("recvonly")
	_, other := join(t, n, "bundle", "sendonly") // another bundle: its tracks go to both
	ro, ok := readReOffer(t, sub, patience)
	if !ok {
		t.Fatal("no re-offer for the other publisher")
	}
	for _, sdp := range []string{subOffer.SDP, ro} {
		if strings.Contains(sdp, pub.ConnectionID) {
			t.Fatal("a connection was offered the tracks of its own bundle")
		}
	}
	if !strings.Contains(ro, other.ConnectionID) {
		t.Fatal("the other bundle's tracks were not offered")
	}
	if strings.Contains(pub.SDP, pub.ConnectionID) {
		t.Fatal("a publisher was offered its own tracks")
	}
}
