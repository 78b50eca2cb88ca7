package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"

	"github.com/hayate-sfu/hayate/internal/loadpeer"
)

var readyRE = regexp.MustCompile(`^baseline ready signaling=(\S+)$`)

// proc is a running baseline binary.
type proc struct {
	cmd  *exec.Cmd
	addr string
	mu   sync.Mutex
	log  bytes.Buffer
	done chan struct{}
	err  error
}

func (p *proc) logText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// startBaseline builds the binary into a temporary directory, starts it and
// waits for its ready line.
func startBaseline(t *testing.T) *proc {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "baseline")
	args := []string{"build", "-o", bin}
	if raceEnabled() {
		// Check the server too when the test runs with -race.
		args = append(args, "-race")
	}
	if out, err := exec.Command("go", append(args, ".")...).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	p := &proc{cmd: exec.Command(bin, "--signaling_port=0", "--ipv4_address=127.0.0.1"), done: make(chan struct{})}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout = &lockedWriter{p}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		first := true
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.log.WriteString(line + "\n")
			p.mu.Unlock()
			if m := readyRE.FindStringSubmatch(line); first && m != nil {
				ready <- m[1]
			}
			first = false
		}
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("baseline output:\n%s", p.logText())
		}
	})
	select {
	case p.addr = <-ready:
	case <-p.done:
		t.Fatalf("baseline exited before its ready line: %v\n%s", p.err, p.logText())
	case <-time.After(20 * time.Second):
		t.Fatalf("no ready line\n%s", p.logText())
	}
	return p
}

// raceEnabled reports whether this test binary was built with -race.
func raceEnabled() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" && s.Value == "true" {
			return true
		}
	}
	return false
}

type lockedWriter struct{ p *proc }

func (w *lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.log.Write(b)
}

// receiver records the sequence numbers of the VP8 packets a subscriber gets.
type receiver struct {
	mu   sync.Mutex
	any  int
	ssrc uint32 // of the last packet
	seqs map[uint16]bool
	from int // first counted sequence number; -1 before counting starts
}

func (r *receiver) onRTP(pkt []byte) {
	var h rtp.Header
	if _, err := h.Unmarshal(pkt); err != nil || h.PayloadType != 96 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.any++
	r.ssrc = h.SSRC
	if r.from >= 0 && int(h.SequenceNumber) >= r.from {
		r.seqs[h.SequenceNumber] = true
	}
}

func (r *receiver) counts() (anyPkt, counted int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.any, len(r.seqs)
}

func (r *receiver) startCounting(from uint16) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.from = int(from)
}

// waitFor polls cond until it holds (true) or d passes (false).
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

func TestFanOut(t *testing.T) {
	const (
		subscribers = 3
		packets     = 200
	)
	p := startBaseline(t)
	url := "ws://" + p.addr + "/signaling"
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// PLIs the publisher gets for its video SSRC (see the end of the test).
	var plis atomic.Int32
	var pubVideo atomic.Uint32
	onRTCP := func(b []byte) {
		pkts, err := rtcp.Unmarshal(b)
		if err != nil {
			return
		}
		for _, p := range pkts {
			if pli, ok := p.(*rtcp.PictureLossIndication); ok && pli.MediaSSRC == pubVideo.Load() {
				plis.Add(1)
			}
		}
	}
	pub, err := loadpeer.Dial(ctx, loadpeer.Options{URL: url, Timeout: 15 * time.Second, OnRTCP: onRTCP, Connect: map[string]any{
		"type": "connect", "role": "sendonly", "channel_id": "b", "video": map[string]any{"codec_type": "VP8"},
	}})
	if err != nil {
		t.Fatalf("publisher: %v", err)
	}
	defer pub.Close()
	ssrc := pub.SSRCs["video"]
	pubVideo.Store(ssrc)
	o := pub.Offer
	for _, want := range []string{"a=ice-lite\r\n", "a=setup:actpass\r\n", "a=group:BUNDLE ", "a=candidate:", "m=audio ", "a=rtpmap:111 opus/48000/2", "a=fmtp:111 minptime=10;useinbandfec=1", "m=video ", "a=rtpmap:96 VP8/90000", "a=recvonly"} {
		if !strings.Contains(o.SDP, want) {
			t.Errorf("offer lacks %q:\n%s", want, o.SDP)
		}
	}
	if o.ConnectionID == "" || o.ClientID == "" || o.BundleID == "" || o.SessionID == "" || o.ChannelID != "b" || string(o.Config) != `{"iceServers":[]}` {
		t.Errorf("offer message: %s", o.Raw)
	}

	var seq uint16
	var ts uint32
	// A VP8 payload descriptor (start of partition 0) and filler: nothing
	// on the way parses the frame.
	payload := append([]byte{0x10}, bytes.Repeat([]byte{0xab}, 200)...)
	send := func() {
		t.Helper()
		b, err := (&rtp.Packet{Header: rtp.Header{Version: 2, Marker: true, PayloadType: 96,
			SequenceNumber: seq, Timestamp: ts, SSRC: ssrc}, Payload: payload}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.SendRTP(b); err != nil {
			t.Fatalf("send: %v", err)
		}
		seq++
		ts += 3000
	}

	// A subscriber's offer waits until the publisher's track exists, which
	// is when its first packet reached the server, and a subscriber only
	// gets packets once its DTLS is up on both sides: so the publisher sends
	// paced warm-up packets until every subscriber has received one.
	type dialed struct {
		i    int
		peer *loadpeer.Peer
		err  error
	}
	recv := make([]*receiver, subscribers)
	subs := make([]*loadpeer.Peer, subscribers)
	results := make(chan dialed, subscribers)
	pending := subscribers
	for i := range subscribers {
		recv[i] = &receiver{seqs: map[uint16]bool{}, from: -1}
		go func() {
			s, err := loadpeer.Dial(ctx, loadpeer.Options{URL: url, Timeout: 15 * time.Second, OnRTP: recv[i].onRTP,
				Connect: map[string]any{"type": "connect", "role": "recvonly", "channel_id": "b"}})
			results <- dialed{i, s, err}
		}()
	}
	defer func() {
		// Dials still running end with ctx (cancelled after this).
		cancel()
		for ; pending > 0; pending-- {
			if d := <-results; d.peer != nil {
				subs[d.i] = d.peer
			}
		}
		for _, s := range subs {
			if s != nil {
				s.Close()
			}
		}
	}()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	warm := time.After(30 * time.Second)
	for ready := false; !ready; {
		select {
		case d := <-results:
			pending--
			if d.err != nil {
				t.Fatalf("subscriber %d: %v", d.i, d.err)
			}
			subs[d.i] = d.peer
		case <-tick.C:
			send()
		case <-warm:
			t.Fatalf("warm-up: %d of %d subscribers still dialing", pending, subscribers)
		}
		if pending == 0 {
			ready = true
			for _, r := range recv {
				if n, _ := r.counts(); n == 0 {
					ready = false
				}
			}
		}
	}

	// The measured packets, paced so that a slow (race-enabled) server is
	// not measured against the loopback socket buffers.
	from := seq
	for _, r := range recv {
		r.startCounting(from)
	}
	tick.Reset(time.Millisecond)
	for range packets {
		<-tick.C
		send()
	}
	// Wait for every packet, or give up on the stragglers after a while.
	_ = waitFor(10*time.Second, func() bool {
		for _, r := range recv {
			if _, n := r.counts(); n < packets {
				return false
			}
		}
		return true
	})
	for i, r := range recv {
		_, n := r.counts()
		t.Logf("subscriber %d received %d of %d", i, n, packets)
		if n*100 < packets*95 {
			t.Errorf("subscriber %d received %d of %d packets (< 95%%)", i, n, packets)
		}
	}

	// A PLI from a subscriber (about the SSRC it receives) reaches the
	// publisher as a PLI about the publisher's SSRC.
	recv[0].mu.Lock()
	got := recv[0].ssrc
	recv[0].mu.Unlock()
	pli, err := rtcp.Marshal([]rtcp.Packet{&rtcp.PictureLossIndication{SenderSSRC: 1, MediaSSRC: got}})
	if err != nil {
		t.Fatal(err)
	}
	if !waitFor(5*time.Second, func() bool {
		if err := subs[0].SendRTCP(pli); err != nil {
			t.Fatalf("send PLI: %v", err)
		}
		return plis.Load() > 0
	}) {
		t.Error("no PLI reached the publisher")
	}

	for i, peer := range append([]*loadpeer.Peer{pub}, subs...) {
		cl, err := peer.Disconnect(5 * time.Second)
		if err != nil {
			t.Fatalf("disconnect %d: %v", i, err)
		}
		if cl == nil || cl.Code != 1000 || cl.Reason != "TYPE-DISCONNECT" {
			t.Errorf("disconnect %d: close %v, want 1000 TYPE-DISCONNECT", i, cl)
		}
	}

	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		t.Fatal("baseline still running 15 s after SIGTERM")
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		t.Fatalf("baseline exited with %v", p.err)
	}
	if strings.Contains(p.logText(), "DATA RACE") {
		t.Fatal("the race detector reported a data race in baseline")
	}
}
