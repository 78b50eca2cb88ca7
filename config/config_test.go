package config

import (
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hayate-sfu/hayate/mode"
)

func TestParseDuration(t *testing.T) {
	good := map[string]time.Duration{
		"5 s": 5 * time.Second, "5s": 5 * time.Second, "500 ms": 500 * time.Millisecond,
		"1 min": time.Minute, "2 h": 2 * time.Hour, " 30 s ": 30 * time.Second, "0 s": 0,
	}
	for in, want := range good {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
		if back, _ := ParseDuration(FormatDuration(want)); back != want {
			t.Errorf("FormatDuration(%v) does not round-trip", want)
		}
	}
	for _, in := range []string{"", "s", "5", "5 sec", "-1 s", "1.5 s", "99999999999999999999 h"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) accepted", in)
		}
	}
}

func TestLoadFileAndFlags(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hayate.conf")
	os.WriteFile(path, []byte(`
# a Sora-style file
signaling_port = 5500
api_port=3300   # trailing comment
initial_mode = block_new_session
webhook_response_timeout = 10 s
ignore_session_vanished_webhook = false
auth_webhook_url = http://127.0.0.1:8080/auth
`), 0o644)
	c, rest, err := Load([]string{"-config", path, "--api_port=3100", "extra"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.SignalingPort != 5500 || c.APIPort != 3100 || c.InitialMode != mode.BlockNewSession ||
		c.WebhookResponseTimeout != 10*time.Second || c.IgnoreSessionVanishedWebhook ||
		c.AuthWebhookURL != "http://127.0.0.1:8080/auth" {
		t.Fatalf("loaded %+v", c)
	}
	if len(rest) != 1 || rest[0] != "extra" {
		t.Fatalf("rest %v", rest)
	}
}

// TestConfValues: `#` inside a value is part of it, a comment needs a space
// before it, and double quotes keep a value as written.
func TestConfValues(t *testing.T) {
	for _, c := range []struct{ line, want string }{
		{`api_token = ab#c`, "ab#c"},
		{`api_token = ab#c # the token`, "ab#c"},
		{`api_token = ab	# tab then comment`, "ab"},
		{`api_token = "a #b"`, "a #b"},
		{`api_token = "a \"q\" \\ b" # comment`, `a "q" \ b`},
		{`api_token = ""`, ""},
		{`api_token = # nothing`, ""},
		{`	# api_token = x`, ""},
	} {
		var cfg Config
		if err := cfg.ReadConf(strings.NewReader(c.line+"\n"), "t.conf"); err != nil {
			t.Errorf("%s: %v", c.line, err)
			continue
		}
		if cfg.APIToken != c.want {
			t.Errorf("%s: api_token %q, want %q", c.line, cfg.APIToken, c.want)
		}
	}
	for _, line := range []string{`api_token = "open`, `api_token = "a" b`} {
		var cfg Config
		if err := cfg.ReadConf(strings.NewReader(line+"\n"), "t.conf"); !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), "t.conf:1: api_token") {
			t.Errorf("%s: %v, want a syntax error naming the line and key", line, err)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	files := 0
	write := func(s string) string {
		files++
		p := filepath.Join(dir, "c"+string(rune('0'+files))+".conf")
		os.WriteFile(p, []byte(s), 0o644)
		return p
	}
	cases := []struct {
		args []string
		want error
		text string
	}{
		{[]string{"-config", write("no_such_key = 1\n")}, ErrUnknownKey, "c1.conf:1"},
		{[]string{"-config", write("\n\napi_port\n")}, ErrSyntax, "c2.conf:3"},
		{[]string{"-config", write("api_port = three\n")}, ErrSyntax, "api_port"},
		{[]string{"--api_port=70000"}, ErrOutOfRange, "api_port"},
		{[]string{"--signaling_ping_interval=0 s"}, ErrOutOfRange, "signaling_ping_interval"},
		{[]string{"--auth_webhook_url=ftp://x"}, ErrBadURL, "auth_webhook_url"},
		{[]string{"--ipv4_address=::1"}, ErrOutOfRange, "ipv4_address"},
		{[]string{"--initial_mode=open"}, mode.ErrInvalid, "initial_mode"},
		{[]string{"--default_video_codec_type=MJPEG"}, ErrOutOfRange, "default_video_codec_type"},
		{[]string{"--max_signaling_message_bytes=10"}, ErrOutOfRange, "max_signaling_message_bytes"},
	}
	for _, c := range cases {
		_, _, err := Load(c.args, io.Discard)
		if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
			t.Errorf("Load(%v) = %v, want %v mentioning %q", c.args, err, c.want, c.text)
		}
	}
	if _, _, err := Load([]string{"-config", filepath.Join(dir, "missing.conf")}, io.Discard); err == nil {
		t.Error("missing file accepted")
	}
}

func TestDefaultsValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.SignalingPort != 5000 || c.APIPort != 3000 || !c.APILoopbackAddressOnly || !c.IgnoreSessionVanishedWebhook ||
		c.IPv4Address.String() != "127.0.0.1" {
		t.Fatalf("defaults changed: %+v", c)
	}
	// Sora asks clients for their getStats() every 60 s on both carriers:
	// "デフォルトでは WebSocket と DataChannel 経由のどちらも 60 秒間隔で更新
	// されます" (https://sora-doc.shiguredo.jp/API_RTC_STATS).
	if c.WebSocketStatsTimerInterval != time.Minute || c.DataChannelStatsTimerInterval != time.Minute {
		t.Errorf("stats timers %v (WebSocket) and %v (DataChannel), want Sora's 60 s", c.WebSocketStatsTimerInterval, c.DataChannelStatsTimerInterval)
	}
}

// TestREADMEDocumentsEveryKey keeps the README's configuration table honest.
func TestREADMEDocumentsEveryKey(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range Keys() {
		if !strings.Contains(string(readme), "`"+k.Name+"`") {
			t.Errorf("README.md does not document `%s`", k.Name)
		}
	}
}

// TestClusterNeedsCredentialsBeyondLoopback: safe by default.
func TestClusterNeedsCredentialsBeyondLoopback(t *testing.T) {
	base := func(edit func(*Config)) Config {
		c := Default()
		c.Cluster = true
		edit(&c)
		return c
	}
	tls := func(c *Config) {
		c.ClusterTLSCAFile, c.ClusterTLSCertFile, c.ClusterTLSKeyFile = "ca.pem", "node.pem", "node-key.pem"
	}
	for name, c := range map[string]Config{
		"ipv4_address":    base(func(c *Config) { c.IPv4Address = netip.MustParseAddr("10.0.0.1") }),
		"cluster_address": base(func(c *Config) { c.ClusterAddress = netip.MustParseAddr("0.0.0.0") }),
		"partial":         base(func(c *Config) { tls(c); c.ClusterTLSKeyFile = "" }),
	} {
		err := c.Validate()
		if !errors.Is(err, ErrInsecure) || !strings.Contains(err.Error(), "cluster_tls_key_file") {
			t.Errorf("%s: %v, want ErrInsecure naming the keys", name, err)
		}
	}
	for name, c := range map[string]Config{
		"loopback":        base(func(*Config) {}),
		"127.0.0.2":       base(func(c *Config) { c.ClusterAddress = netip.MustParseAddr("127.0.0.2") }),
		"with-tls":        base(func(c *Config) { tls(c); c.IPv4Address = netip.MustParseAddr("10.0.0.1") }),
		"no-cluster-10.x": func() Config { c := Default(); c.IPv4Address = netip.MustParseAddr("10.0.0.1"); return c }(),
	} {
		if err := c.Validate(); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
