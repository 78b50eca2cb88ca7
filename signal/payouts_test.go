package signal

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hayate-sfu/hayate/mode"
)

// readmeSection returns the README's "Sora compatibility: webhooks and
// payouts" section.
func readmeSection(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "\n## Sora compatibility: webhooks and payouts\n")
	if i < 0 {
		t.Fatal("README.md has no section Sora compatibility: webhooks and payouts")
	}
	s = s[i+1:]
	if j := strings.Index(s, "\n## "); j >= 0 {
		s = s[:j]
	}
	return s
}

// row returns the table row of README section s whose first cell is `key`.
func row(s, key string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, "| `"+key+"` ") {
			return l
		}
	}
	return ""
}

// TestREADMEListsEveryRefusedPayout: every auth payout Hayate refuses is
// refused with 4502 UNSUPPORTED-PAYOUT-<FIELD> and has its README row
// saying so; every session.created payout it does not apply is counted in
// total_unsupported_session_payouts (duplicate_client_id only when not
// "allow") and has its README row saying "ignored, counted".
func TestREADMEListsEveryRefusedPayout(t *testing.T) {
	sec := readmeSection(t)
	i := strings.Index(sec, "**`session.created` answer payouts**")
	if i < 0 {
		t.Fatal("no session.created payout table")
	}
	auth, session := sec[:i], sec[i:]
	for _, k := range unsupportedPayouts {
		reason := "UNSUPPORTED-PAYOUT-" + strings.ToUpper(strings.ReplaceAll(k, "_", "-"))
		e := unsupportedPayout(map[string]json.RawMessage{k: json.RawMessage(`1`)})
		if e == nil || e.Code != CodeAuthFailed || e.Reason != reason {
			t.Errorf("payout %s: refusal %v, want 4502 %s", k, e, reason)
		}
		if r := row(auth, k); !strings.Contains(r, "refused: 4502 `"+reason+"`") {
			t.Errorf("README row of %s: %q", k, r)
		}
	}
	h := NewHub(Settings{PingInterval: time.Hour}, mode.NewWord(mode.Normal), nil, Hooks{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(func() { h.Close(context.Background()) })
	counted := func(answer string) uint64 {
		before := h.stats.UnsupportedSessionPayouts.Load()
		h.sessionCreatedAnswer(&channel{id: "c"}, []byte(answer))
		return h.stats.UnsupportedSessionPayouts.Load() - before
	}
	for _, k := range unsupportedSessionPayouts {
		key, value := k, "true"
		if k == "duplicate_client_id_evict" {
			key, value = "duplicate_client_id", `"evict"`
		}
		if n := counted(`{"` + key + `":` + value + `}`); n != 1 {
			t.Errorf("session payout %s: counted %d times", key, n)
		}
		if r := row(session, key); !strings.Contains(r, "ignored, counted") {
			t.Errorf("README row of session payout %s: %q", key, r)
		}
	}
	if n := counted(`{"duplicate_client_id":"allow","session_metadata":{"a":1},"trial_max_connections":3,"spotlight_number":2}`); n != 0 {
		t.Errorf("payouts Hayate applies counted %d times", n)
	}
}

// TestSessionSpotlightNumber: the session.created answer's spotlight_number
// becomes the channel's, whether its spotlight started already or starts
// later; out of range it is ignored and counted.
func TestSessionSpotlightNumber(t *testing.T) {
	h := NewHub(Settings{PingInterval: time.Hour}, mode.NewWord(mode.Normal), nil, Hooks{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(func() { h.Close(context.Background()) })
	running := &channel{id: "a", spot: newSpotlight(1)}
	h.sessionCreatedAnswer(running, []byte(`{"spotlight_number":3}`))
	if running.spot.number != 3 {
		t.Fatalf("running spotlight number %d, want 3", running.spot.number)
	}
	later := &channel{id: "b"}
	h.sessionCreatedAnswer(later, []byte(`{"spotlight_number":2}`))
	if later.spotNumber != 2 {
		t.Fatalf("spotNumber %d, want 2", later.spotNumber)
	}
	h.sessionCreatedAnswer(running, []byte(`{"spotlight_number":9}`))
	if running.spot.number != 3 || h.stats.UnsupportedSessionPayouts.Load() != 1 {
		t.Fatalf("out of range: number %d, counted %d", running.spot.number, h.stats.UnsupportedSessionPayouts.Load())
	}
}
