package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hayate-sfu/hayate/config"
)

// unitKeys reads the key=value lines of a systemd unit (comments skipped).
func unitKeys(t *testing.T, text string) map[string]string {
	t.Helper()
	keys := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("unit line %q", line)
		}
		keys[k] = v
	}
	return keys
}

// TestSystemdUnit: packaging/hayate.service passes systemd-analyze verify
// (with this build as ExecStart), is Type=notify, drains on SIGTERM, and
// gives the drain of the packaged configuration time to finish.
func TestSystemdUnit(t *testing.T) {
	raw, err := os.ReadFile("../../packaging/hayate.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(raw)
	k := unitKeys(t, unit)
	for key, want := range map[string]string{"Type": "notify", "NotifyAccess": "main", "KillSignal": "SIGTERM",
		"ExecStart": "/usr/local/bin/hayate -config /etc/hayate/hayate.conf"} {
		if k[key] != want {
			t.Errorf("%s=%q, want %q", key, k[key], want)
		}
	}
	stop, err := time.ParseDuration(strings.TrimSuffix(k["TimeoutStopSec"], "in")) // "6min" -> "6m"
	if err != nil {
		t.Fatalf("TimeoutStopSec %q: %v", k["TimeoutStopSec"], err)
	}
	cfg, _, err := config.Load([]string{"-config", "../../packaging/hayate.conf"}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	if stop <= cfg.DrainTimeout+5*time.Second {
		t.Errorf("TimeoutStopSec %v does not cover drain_timeout %v plus 5 s of webhook flushing", stop, cfg.DrainTimeout)
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatal("systemd-analyze not found (Debian's systemd package)")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "hayate.service")
	os.WriteFile(path, []byte(strings.ReplaceAll(unit, "/usr/local/bin/hayate", binary)), 0o644)
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) != 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
}
