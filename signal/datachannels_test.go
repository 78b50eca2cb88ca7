package signal

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestParseDataChannels(t *testing.T) {
	labels, err := parseDataChannels(json.RawMessage(`[
		{"label":"signaling","compress":true},
		{"label":"#chat","direction":"sendrecv","ordered":false,"max_retransmits":3,"protocol":"p","compress":true,
		 "header":[{"type":"sender_connection_id"}]},
		{"label":"#ro","direction":"recvonly","max_packet_life_time":200}]`), true)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range labels {
		names = append(names, l.label)
	}
	if got := jsonString(names); got != `["signaling","notify","push","stats","rpc","#chat","#ro"]` {
		t.Fatalf("labels %s", got)
	}
	sig, chat, ro := labels[0], labels[5], labels[6]
	if !sig.compress || labels[1].compress || labels[1].direction != "sendonly" {
		t.Errorf("fixed labels: %+v %+v", sig, labels[1])
	}
	if !chat.unordered || chat.maxRetransmits == nil || *chat.maxRetransmits != 3 || chat.protocol != "p" || !chat.compress ||
		!chat.senderID || !chat.sends() || !chat.receives() {
		t.Errorf("#chat %+v", chat)
	}
	if ro.unordered || ro.maxPacketLifeTime == nil || *ro.maxPacketLifeTime != 200 || ro.sends() || !ro.receives() {
		t.Errorf("#ro %+v", ro)
	}
	if labels, _ := parseDataChannels(nil, false); len(labels) != 4 {
		t.Errorf("no data_channels, no rpc: %d labels", len(labels))
	}
}

func jsonString(v any) string { b, _ := json.Marshal(v); return string(b) }

// FuzzParseDataChannels: data_channels comes from clients and auth
// webhooks. Parsing never panics, and what it accepts is consistent.
func FuzzParseDataChannels(f *testing.F) {
	for _, s := range []string{
		`[{"label":"#chat","direction":"sendrecv"}]`,
		`[{"label":"signaling","compress":true},{"label":"#a","direction":"recvonly","ordered":false,"max_packet_life_time":5}]`,
		`[{"label":"#h","direction":"sendonly","header":[{"type":"sender_connection_id"}],"protocol":"x"}]`,
		`null`, `[]`, `{}`, `[{"label":"#x","direction":"sendrecv","max_retransmits":70000}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		labels, err := parseDataChannels(raw, false)
		if err != nil {
			if !errors.Is(err, errBadDataChannels) {
				t.Fatalf("error %v", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, l := range labels {
			if seen[l.label] || l.label == "" || len(l.label) > maxLabelBytes {
				t.Fatalf("label %q", l.label)
			}
			seen[l.label] = true
			if l.messaging() && !l.sends() && !l.receives() {
				t.Fatalf("%q has direction %q", l.label, l.direction)
			}
			if l.maxPacketLifeTime != nil && l.maxRetransmits != nil {
				t.Fatalf("%q has both reliability limits", l.label)
			}
		}
	})
}

// TestRateLimit: the bucket lets a second's worth through at once, then
// the rate.
func TestRateLimit(t *testing.T) {
	d := &dcConn{}
	const sec = int64(1e9)
	now := 5 * sec
	passed := 0
	for range 30 {
		if d.allow(now, 10) {
			passed++
		}
	}
	if passed != 10 {
		t.Fatalf("burst: %d of 30 passed, want 10", passed)
	}
	if d.allow(now+sec/20, 10) {
		t.Error("a message 50 ms later passed with an empty bucket")
	}
	if !d.allow(now+sec/5, 10) {
		t.Error("a message 200 ms later (2 tokens refilled) did not pass")
	}
	if !(&dcConn{}).allow(now, 0) {
		t.Error("rate 0 is no limit")
	}
}
