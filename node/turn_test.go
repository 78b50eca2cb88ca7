package node

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	pturn "github.com/pion/turn/v5"
	"github.com/pion/webrtc/v4"

	"github.com/hayate-sfu/hayate/config"
	"github.com/hayate-sfu/hayate/internal/loadpeer"
	"github.com/hayate-sfu/hayate/internal/logbuf"
	"github.com/hayate-sfu/hayate/internal/netns"
	"github.com/hayate-sfu/hayate/internal/sigclient"
)

// offerConfig is the offer's config object (Sora: the RTCConfiguration).
type offerConfig struct {
	ICEServers []struct {
		URLs       []string `json:"urls"`
		Username   string   `json:"username"`
		Credential string   `json:"credential"`
	} `json:"iceServers"`
	ICETransportPolicy string `json:"iceTransportPolicy"`
}

func parseOfferConfig(t *testing.T, o *sigclient.Offer) offerConfig {
	t.Helper()
	var c offerConfig
	must(t, json.Unmarshal(o.Config, &c))
	return c
}

// relayVia configures a pion client from the offer's config: relay only,
// through the URLs keep accepts.
func relayVia(t *testing.T, keep func(url string) bool) func(*sigclient.Offer) webrtc.Configuration {
	return func(o *sigclient.Offer) webrtc.Configuration {
		oc := parseOfferConfig(t, o)
		cfg := webrtc.Configuration{ICETransportPolicy: webrtc.ICETransportPolicyRelay}
		for _, s := range oc.ICEServers {
			var urls []string
			for _, u := range s.URLs {
				if keep(u) {
					urls = append(urls, u)
				}
			}
			if len(urls) > 0 {
				cfg.ICEServers = append(cfg.ICEServers, webrtc.ICEServer{URLs: urls, Username: s.Username, Credential: s.Credential})
			}
		}
		if len(cfg.ICEServers) == 0 {
			t.Fatalf("no ICE server URL to relay through in %s", o.Config)
		}
		return cfg
	}
}

// writeTestCertificate writes a self-signed certificate for 127.0.0.1
// (its own root) and its key to dir/cert.pem and dir/key.pem.
func writeTestCertificate(t *testing.T, dir string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "hayate test TURN"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	must(t, err)
	kder, err := x509.MarshalECPrivateKey(key)
	must(t, err)
	must(t, os.WriteFile(filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600))
}

// turnTLSNode is a node with TURN over UDP, TCP and TLS (the test
// certificate of dir).
func turnTLSNode(t *testing.T, dir string, edit func(*config.Config)) *Node {
	t.Helper()
	return startNode(t, func(c *config.Config) {
		c.ICEConnectionStateFailedTimeout = patience
		c.TURNTLS = true
		c.TURNTLSCertFile, c.TURNTLSKeyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
		if edit != nil {
			edit(c)
		}
	})
}

// exchange has two peers publish audio and video to each other until each
// has received the other's packets, byte for byte.
func exchange(t *testing.T, a, b *pionPeer, srcA, srcB []*source) {
	t.Helper()
	deadline := soon()
	for {
		done := true
		for _, pair := range []struct {
			to   *pionPeer
			from []*source
		}{{b, srcA}, {a, srcB}} {
			for _, src := range pair.from {
				seq := src.send(t)
				got, ok := pair.to.has(src.kind, seq-1)
				if !ok || string(got) != string(src.sent[seq-1]) {
					done = false
				}
			}
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("media did not flow both ways (tracks: %d, %d)", a.trackCount(), b.trackCount())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// selectedLocalType is the type of the local candidate of a pion client's
// selected pair.
func selectedLocalType(t *testing.T, p *pionPeer) webrtc.ICECandidateType {
	t.Helper()
	pair, err := p.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil {
		t.Fatalf("no selected pair: %v", err)
	}
	return pair.Local.Typ
}

// TestPionThroughTURN: pion clients with a relay-only policy connect
// through the node's own TURN server over UDP, TCP and TLS (a test
// certificate the child process trusts through SSL_CERT_FILE), using the
// URLs and per-connection credentials of their offers, and media flows
// both ways; the node counts the TURN connections by transport.
func TestPionThroughTURN(t *testing.T) {
	dir := os.Getenv("HAYATE_TURN_TLS_DIR")
	if dir == "" {
		dir = t.TempDir()
		writeTestCertificate(t, dir)
	}
	if !netns.Isolate(t, "HAYATE_TURN_TLS_DIR="+dir, "SSL_CERT_FILE="+filepath.Join(dir, "cert.pem")) {
		return
	}
	udpURL := func(u string) bool { return strings.HasPrefix(u, "turn:") && strings.HasSuffix(u, "transport=udp") }
	for _, tc := range []struct {
		name      string
		keep      func(string) bool
		allocKind string
		counter   string
		inProcess bool
	}{
		{"udp", udpURL, "udp", "total_turn_udp_connections", true},
		{"tcp", func(u string) bool { return strings.HasPrefix(u, "turn:") && strings.HasSuffix(u, "transport=tcp") }, "tcp", "total_turn_tcp_connections", true},
		{"tls", func(u string) bool { return strings.HasPrefix(u, "turns:") }, "tls", "total_turn_tcp_connections", true},
		{"udp-through-a-socket", udpURL, "udp", "total_turn_udp_connections", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := turnTLSNode(t, dir, func(c *config.Config) { c.TURNRelayInProcess = tc.inProcess })
			api := pionAPI(t, 0)
			audioA, videoA := newSource(t, webrtc.RTPCodecTypeAudio), newSource(t, webrtc.RTPCodecTypeVideo)
			audioB, videoB := newSource(t, webrtc.RTPCodecTypeAudio), newSource(t, webrtc.RTPCodecTypeVideo)
			a := newPionPeerWith(t, n, api, "turn-"+tc.name, "sendrecv", relayVia(t, tc.keep), audioA.track, videoA.track)
			a.waitConnected(n)
			b := newPionPeerWith(t, n, api, "turn-"+tc.name, "sendrecv", relayVia(t, tc.keep), audioB.track, videoB.track)
			b.waitConnected(n)
			exchange(t, a, b, []*source{audioA, videoA}, []*source{audioB, videoB})
			for _, p := range []*pionPeer{a, b} {
				if typ := selectedLocalType(t, p); typ != webrtc.ICECandidateTypeRelay {
					t.Fatalf("selected local candidate %v, want relay", typ)
				}
			}
			_, rep, _ := apiCall(t, n, "Sora_20171010.GetStatsReport", "")
			turnStats := rep["turn"].(map[string]any)
			if got := turnStats["total_allocations"].(map[string]any)[tc.allocKind].(float64); got < 2 {
				t.Fatalf("%s allocations %v, want one per client at least", tc.allocKind, got)
			}
			if got := rep[tc.counter].(float64); got != 2 {
				t.Fatalf("%s = %v, want 2", tc.counter, got)
			}
			// In process, the relays are links of the core: no UDP socket
			// carried the relayed media; through sockets, none are.
			links := rep["media"].(map[string]any)["links"].(map[string]any)["total_opened"].(float64)
			if (links >= 2) != tc.inProcess || (links == 0) == tc.inProcess {
				t.Fatalf("%v links opened with turn_relay_in_process = %v", links, tc.inProcess)
			}
			a.disconnect()
			b.disconnect()
			waitFor(t, "the allocations closed with their connections", patience, func() bool {
				return n.TURN().Stats().Allocations == 0 && n.TURN().Stats().Credentials == 0
			})
		})
	}
}

// TestOfferICEServers: the offer's config carries the node's TURN URLs
// (UDP, TCP, and TLS when on) in one entry with this connection's
// username and credential, each connection its own; ice_transport_policy
// and the auth webhook's turn_tcp_only payout shape it.
func TestOfferICEServers(t *testing.T) {
	n := startNode(t, func(c *config.Config) {
		c.TURNTLS, c.TURNTLSPort, c.TURNFQDN, c.TURNTLSFQDN = true, 443, "turn.example.com", "tls.example.com"
		c.ICETransportPolicy = "relay"
	})
	_, o1 := join(t, n, "ice", "sendrecv")
	_, o2 := join(t, n, "ice", "sendrecv")
	c1, c2 := parseOfferConfig(t, o1), parseOfferConfig(t, o2)
	udp, tcp, _ := n.TURN().Addrs()
	want := []string{"turn:turn.example.com:" + strconv.Itoa(int(udp.Port())) + "?transport=udp",
		"turn:turn.example.com:" + strconv.Itoa(int(tcp.Port())) + "?transport=tcp", "turns:tls.example.com:443?transport=tcp"}
	if len(c1.ICEServers) != 1 || strings.Join(c1.ICEServers[0].URLs, " ") != strings.Join(want, " ") {
		t.Fatalf("iceServers %+v, want one entry with %v", c1.ICEServers, want)
	}
	if c1.ICETransportPolicy != "relay" {
		t.Fatalf("iceTransportPolicy %q", c1.ICETransportPolicy)
	}
	s1, s2 := c1.ICEServers[0], c2.ICEServers[0]
	if s1.Username == "" || s1.Credential == "" || s1.Username == s2.Username || s1.Credential == s2.Credential {
		t.Fatalf("credentials not per connection: %+v %+v", s1, s2)
	}
	if s1.Username != o1.ConnectionID {
		t.Fatalf("username %q, want the connection id %q", s1.Username, o1.ConnectionID)
	}

	// turn_tcp_only from the auth webhook: the TCP URL alone, relay only.
	auth := newHookReceiver(t)
	auth.respond = func(w http.ResponseWriter, _ map[string]any) {
		w.Write([]byte(`{"allowed": true, "turn_tcp_only": true}`))
	}
	m := startNode(t, func(c *config.Config) { c.AuthWebhookURL = auth.url() })
	_, o := join(t, m, "ice", "recvonly")
	oc := parseOfferConfig(t, o)
	if len(oc.ICEServers) != 1 || len(oc.ICEServers[0].URLs) != 1 || !strings.HasSuffix(oc.ICEServers[0].URLs[0], "?transport=tcp") ||
		!strings.HasPrefix(oc.ICEServers[0].URLs[0], "turn:") || oc.ICETransportPolicy != "relay" {
		t.Fatalf("turn_tcp_only gave %+v", oc)
	}

	// turn = false: no iceServers at all, as before.
	off := startNode(t, func(c *config.Config) { c.TURN = false })
	_, o = join(t, off, "ice", "recvonly")
	if oc := parseOfferConfig(t, o); len(oc.ICEServers) != 0 || oc.ICETransportPolicy != "all" {
		t.Fatalf("turn = false gave %+v", oc)
	}
}

// iceCheck is an ICE check (Binding request) with the ICE credentials of
// an offer, as its client (answered by join, ufrag "tufr") would send.
func iceCheck(t *testing.T, o *sigclient.Offer) []byte {
	t.Helper()
	var ufrag, pwd string
	for _, l := range strings.Split(o.SDP, "\r\n") {
		if v, ok := strings.CutPrefix(l, "a=ice-ufrag:"); ok {
			ufrag = v
		}
		if v, ok := strings.CutPrefix(l, "a=ice-pwd:"); ok {
			pwd = v
		}
	}
	m, err := stun.Build(stun.BindingRequest, stun.TransactionID, stun.NewUsername(ufrag+":tufr"),
		stunAttr{stun.AttrPriority, []byte{1, 2, 3, 4}}, stun.NewShortTermIntegrity(pwd), stun.Fingerprint)
	must(t, err)
	return m.Raw
}

type stunAttr struct {
	t stun.AttrType
	v []byte
}

func (a stunAttr) AddTo(m *stun.Message) error { m.Add(a.t, a.v); return nil }

// turnClient allocates on the node's TURN-UDP with the credentials of an
// offer (or returns the allocation's error).
func turnClient(t *testing.T, n *Node, o *sigclient.Offer) (net.PacketConn, *pturn.Client, error) {
	t.Helper()
	s := parseOfferConfig(t, o).ICEServers[0]
	udp, _, _ := n.TURN().Addrs()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	must(t, err)
	c, err := pturn.NewClient(&pturn.ClientConfig{TURNServerAddr: udp.String(), STUNServerAddr: udp.String(),
		Username: s.Username, Password: s.Credential, Realm: "hayate", Conn: pc})
	must(t, err)
	must(t, c.Listen())
	t.Cleanup(func() { c.Close(); pc.Close() })
	relay, err := c.Allocate()
	return relay, c, err
}

// answeredThrough sends ICE checks through relay to the node's media
// address for a while and reports whether one was answered.
func answeredThrough(t *testing.T, relay net.PacketConn, media net.Addr, check []byte, tries int) bool {
	t.Helper()
	buf := make([]byte, 1500)
	for range tries {
		_, err := relay.WriteTo(check, media)
		must(t, err)
		relay.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if k, _, err := relay.ReadFrom(buf); err == nil {
			if m := (&stun.Message{Raw: buf[:k]}); m.Decode() == nil && m.Type == stun.BindingSuccess {
				return true
			}
		}
	}
	return false
}

// TestTURNCredentials: the TURN credentials of a connection's offer reach
// that connection's transport only (ICE checks for another connection
// through its allocation are dropped); they are refused once the
// connection has ended, and its allocation is closed; and no allocation
// can relay to an address other than the node's media address (tried on
// loopback: a permission for 127.0.0.2 is refused, datagrams to another
// port of 127.0.0.1 where a socket listens never arrive).
func TestTURNCredentials(t *testing.T) {
	n := startNode(t, nil)
	media := net.UDPAddrFromAddrPort(n.MediaAddr())
	_, oA := join(t, n, "creds", "sendrecv")
	cB, oB := join(t, n, "creds", "sendrecv")
	relay, client, err := turnClient(t, n, oB)
	must(t, err)
	if answeredThrough(t, relay, media, iceCheck(t, oA), 10) {
		t.Fatal("B's allocation carried an ICE check to A's transport")
	}
	if !answeredThrough(t, relay, media, iceCheck(t, oB), int(patience/(200*time.Millisecond))) {
		t.Fatal("B's allocation does not reach B's transport")
	}
	if got := n.TURN().Stats().Dropped["foreign_ufrag"]; got == 0 {
		t.Fatal("the foreign ICE checks were not counted")
	}

	// Never an open relay.
	other, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	must(t, err)
	defer other.Close()
	if err := client.CreatePermission(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 9}); err == nil || !strings.Contains(err.Error(), "403") {
		t.Fatalf("a permission for 127.0.0.2: %v, want 403", err)
	}
	for range 20 {
		relay.WriteTo([]byte("not for the node"), other.LocalAddr())
	}
	waitFor(t, "datagrams to another address dropped", patience, func() bool { return n.TURN().Stats().Dropped["wrong_peer"] >= 20 })
	other.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if k, _, err := other.ReadFrom(make([]byte, 64)); err == nil {
		t.Fatalf("%d bytes reached another address through the relay", k)
	}

	// B ends: its credentials are refused and its allocation is closed.
	must(t, cB.SendJSON(map[string]string{"type": "disconnect"}))
	waitFor(t, "B's allocation closed", patience, func() bool { return n.TURN().Stats().Allocations == 0 })
	if _, _, err := turnClient(t, n, oB); err == nil {
		t.Fatal("an ended connection's credentials made an allocation")
	} else if !strings.Contains(err.Error(), "401") {
		t.Fatalf("allocation with expired credentials: %v, want 401", err)
	}
	if st := n.TURN().Stats(); st.AuthFailures == 0 || st.RevokedClosed != 1 {
		t.Fatalf("turn stats %+v", st)
	}
	// A's credentials still work.
	if _, _, err := turnClient(t, n, oA); err != nil {
		t.Fatalf("A's credentials: %v", err)
	}
}

// TestCoturnInterop: an operator's own TURN server (Debian's coturn, with
// a shared secret) configured as an extra iceServers entry: a pion client
// relays through it only (relay policy) and exchanges media with a client
// on UDP. Runs in its own network namespace, where coturn takes fixed
// ports.
func TestCoturnInterop(t *testing.T) {
	if !netns.Isolate(t) {
		return
	}
	dir := t.TempDir()
	const secret = "hayate-coturn-test-secret"
	conf := strings.Join([]string{
		"listening-ip=127.0.0.1", "relay-ip=127.0.0.1", "listening-port=3478", "min-port=49152", "max-port=49999",
		"use-auth-secret", "static-auth-secret=" + secret, "realm=hayate-test", "fingerprint",
		"no-tls", "no-dtls", "no-cli", "allow-loopback-peers", "no-multicast-peers",
		"log-file=stdout", "simple-log", "pidfile=" + filepath.Join(dir, "turnserver.pid"),
		"userdb=" + filepath.Join(dir, "turndb"),
	}, "\n") + "\n"
	must(t, os.WriteFile(filepath.Join(dir, "turnserver.conf"), []byte(conf), 0o600))
	cmd := exec.Command("turnserver", "-c", filepath.Join(dir, "turnserver.conf"))
	var out logbuf.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting coturn (make test installs Debian's coturn): %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("coturn:\n%s", out.String())
		}
	})
	waitFor(t, "coturn to answer STUN", patience, func() bool {
		c, err := net.Dial("udp4", "127.0.0.1:3478")
		if err != nil {
			return false
		}
		defer c.Close()
		req, _ := stun.Build(stun.BindingRequest, stun.TransactionID, stun.Fingerprint)
		c.Write(req.Raw)
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		_, err = c.Read(make([]byte, 512))
		return err == nil
	})

	n := startNode(t, func(c *config.Config) {
		c.ICEConnectionStateFailedTimeout = patience
		c.TURN = false
		c.TURNExternalURLs = "turn:127.0.0.1:3478?transport=udp"
		c.TURNExternalSecret = secret
	})
	api := pionAPI(t, 0)
	audioA, videoA := newSource(t, webrtc.RTPCodecTypeAudio), newSource(t, webrtc.RTPCodecTypeVideo)
	audioB, videoB := newSource(t, webrtc.RTPCodecTypeAudio), newSource(t, webrtc.RTPCodecTypeVideo)
	a := newPionPeer(t, n, api, "coturn", "sendrecv", audioA.track, videoA.track)
	a.waitConnected(n)
	b := newPionPeerWith(t, n, api, "coturn", "sendrecv", relayVia(t, func(u string) bool { return strings.HasPrefix(u, "turn:127.0.0.1:3478") }),
		audioB.track, videoB.track)
	b.waitConnected(n)
	exchange(t, a, b, []*source{audioA, videoA}, []*source{audioB, videoB})
	if typ := selectedLocalType(t, b); typ != webrtc.ICECandidateTypeRelay {
		t.Fatalf("the client through coturn selected a %v candidate, want relay", typ)
	}
	if typ := selectedLocalType(t, a); typ == webrtc.ICECandidateTypeRelay {
		t.Fatal("the direct client relays")
	}
	oc := parseOfferConfig(t, b.offer)
	if len(oc.ICEServers) != 1 || !strings.HasSuffix(oc.ICEServers[0].Username, ":"+b.offer.ConnectionID) {
		t.Fatalf("iceServers %+v: want coturn's entry alone, its username <expiry>:<connection_id>", oc.ICEServers)
	}
	a.disconnect()
	b.disconnect()
}

// TestPionOverICETCP: with ice_tcp the offer carries a passive TCP
// candidate; pion clients that may use TCP only (no UDP at all) connect
// to it as active ICE-TCP candidates and exchange media both ways; the
// node reports the connections' transport as tcp.
func TestPionOverICETCP(t *testing.T) {
	hooks := newHookReceiver(t)
	n := startNode(t, func(c *config.Config) {
		c.ICEConnectionStateFailedTimeout = patience
		c.TURN = false
		c.ICETCP = true
		c.EventWebhookURL = hooks.url()
	})
	api := pionAPIOn(t, []webrtc.NetworkType{webrtc.NetworkTypeTCP4}, 0)
	audioA, videoA := newSource(t, webrtc.RTPCodecTypeAudio), newSource(t, webrtc.RTPCodecTypeVideo)
	audioB, videoB := newSource(t, webrtc.RTPCodecTypeAudio), newSource(t, webrtc.RTPCodecTypeVideo)
	a := newPionPeer(t, n, api, "ice-tcp", "sendrecv", audioA.track, videoA.track)
	if !strings.Contains(a.offer.SDP, "tcptype passive") {
		t.Fatal("the offer has no passive TCP candidate")
	}
	a.waitConnected(n)
	b := newPionPeer(t, n, api, "ice-tcp", "sendrecv", audioB.track, videoB.track)
	b.waitConnected(n)
	exchange(t, a, b, []*source{audioA, videoA}, []*source{audioB, videoB})
	for _, p := range []*pionPeer{a, b} {
		pair, err := p.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
		if err != nil || pair == nil || pair.Local.Protocol != webrtc.ICEProtocolTCP {
			t.Fatalf("selected pair %v (%v), want TCP", pair, err)
		}
	}
	st := n.ICETCP().Stats()
	if st.Accepted < 2 || st.FramesIn == 0 || st.FramesOut == 0 {
		t.Fatalf("ICE-TCP stats %+v", st)
	}
	a.disconnect()
	b.disconnect()
	waitFor(t, "connection.destroyed with turn_transport_type tcp", patience, func() bool {
		tcp := 0
		for _, h := range hooks.ofType("connection.destroyed") {
			if h["data"].(map[string]any)["turn_transport_type"] == "tcp" {
				tcp++
			}
		}
		return tcp == 2
	})
	waitFor(t, "the ICE-TCP connections closed", patience, func() bool { return n.ICETCP().Stats().Open == 0 })
}

// TestLoadpeerTransports: the load generator's clients reach the node
// over each transport the benchmark compares (UDP, TURN-UDP, TURN-TCP,
// ICE-TCP): a subscriber on it receives a UDP publisher's video, and the
// node counts it on that path.
func TestLoadpeerTransports(t *testing.T) {
	for _, tc := range []struct {
		transport        string
		turnUDP, turnTCP uint64
		iceTCP           uint64
	}{
		{loadpeer.TransportUDP, 0, 0, 0}, {loadpeer.TransportTURNUDP, 1, 0, 0},
		{loadpeer.TransportTURNTCP, 0, 1, 0}, {loadpeer.TransportTCP, 0, 0, 1},
	} {
		t.Run(tc.transport, func(t *testing.T) {
			n := startNode(t, func(c *config.Config) { c.ICETCP = true })
			c := &call{n: n, pubRec: newRecorder(), subRec: newRecorder(), seq: 100}
			c.sub = peerWith(t, n, "lp", "recvonly", c.subRec, func(o *loadpeer.Options) { o.Transport = tc.transport })
			c.pub = peerWith(t, n, "lp", "sendonly", c.pubRec)
			c.video = c.pub.SSRCs["video"]
			c.expectFlow(t, "video over "+tc.transport)
			s := n.hub.Stats()
			if u, p, i := s.TURNUDPConnections.Load(), s.TURNTCPConnections.Load(), n.ICETCP().Stats().Accepted; u != tc.turnUDP || p != tc.turnTCP || i != tc.iceTCP {
				t.Fatalf("TURN-UDP %d, TURN-TCP %d, ICE-TCP %d connections; want %d, %d, %d", u, p, i, tc.turnUDP, tc.turnTCP, tc.iceTCP)
			}
		})
	}
}
