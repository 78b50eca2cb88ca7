package cluster

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// TestHclogAdapter: raft's log lines reach the slog logger at the mapped
// levels, with the component name and arguments, and never at error level.
func TestHclogAdapter(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := newHclog(l, "raft").Named("transport").With("peer", "b")
	h.Info("entering follower state", "term", 3)
	h.Warn("heartbeat timeout reached")
	h.Error("failed to appendEntries", "error", "EOF")
	h.StandardLogger(nil).Print("standard line")
	out := buf.String()
	for _, want := range []string{
		`level=DEBUG msg="entering follower state" component=raft.transport peer=b term=3`,
		`level=INFO msg="heartbeat timeout reached"`,
		`level=WARN msg="failed to appendEntries"`,
		`msg="standard line"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "level=ERROR") {
		t.Errorf("raft logged at error level:\n%s", out)
	}
	quiet := newHclog(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo})), "raft")
	if quiet.IsDebug() || !quiet.IsWarn() {
		t.Errorf("IsDebug %v IsWarn %v with an info-level logger", quiet.IsDebug(), quiet.IsWarn())
	}
	var _ hclog.Logger = quiet
}

// TestHclogRepeats: raft's failure reports about a dead peer are logged
// once per window (with the count of those left out), not several times a
// second; debug lines are not filtered.
func TestHclogRepeats(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	l := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := newHclog(l, "raft")
	peer := h.With("peer", "c")
	for range 5 {
		peer.Error("failed to heartbeat to", "error", "connection refused")
		h.Debug("debug chatter")
	}
	out := buf.String()
	if n := strings.Count(out, "failed to heartbeat to"); n != 1 {
		t.Fatalf("logged %d times in one window, want 1:\n%s", n, out)
	}
	if n := strings.Count(out, "debug chatter"); n != 5 {
		t.Fatalf("debug lines filtered: %d of 5", n)
	}
	r := h.repeats
	start := time.Now()
	if ok, _ := r.allow("m", start); !ok {
		t.Fatal("first occurrence refused")
	}
	r.allow("m", start.Add(time.Second))
	r.allow("m", start.Add(2*time.Second))
	if ok, n := r.allow("m", start.Add(repeatWindow)); !ok || n != 2 {
		t.Fatalf("after the window: allowed %v, suppressed %d, want true, 2", ok, n)
	}
}
