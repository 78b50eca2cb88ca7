package cluster

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// TestHclogAdapter: raft's log lines reach the slog logger at the mapped
// levels, with the component name and arguments, and never at error level.
func TestHclogAdapter(t *testing.T) {
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
