package control

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hayate-sfu/hayate/mode"
	"github.com/hayate-sfu/hayate/signal"
)

// buggy is a backend whose every operation panics.
type buggy struct{}

func (buggy) Mode() mode.Mode                                { panic("mode: secret-in-panic") }
func (buggy) SetMode(mode.Mode) mode.Mode                    { panic("setmode") }
func (buggy) ListConnections(string) []signal.ConnectionInfo { panic("list") }
func (buggy) Disconnect(string, signal.Selector, json.RawMessage) error {
	panic("disconnect")
}
func (buggy) Push(string, signal.Selector, json.RawMessage) ([]byte, error) { panic("push") }
func (buggy) RequestKeyFrame(string, string) error                          { panic("key frame") }
func (buggy) Session(string, string) (signal.SessionInfo, error)            { panic("session") }
func (buggy) ListSessions() []signal.SessionInfo                            { panic("sessions") }
func (buggy) TerminateSession(string, string) (string, error)               { panic("terminate") }
func (buggy) ListChannels() []signal.ChannelInfo                            { panic("channels") }
func (buggy) StatsReport() StatsReport                                      { panic("stats") }
func (buggy) License() License                                              { panic("license") }
func (buggy) RequestRid(string, string, string, string, bool) error         { panic("rid") }
func (buggy) Spotlight(string, string, signal.SpotlightOp) error            { panic("spotlight") }
func (buggy) ChangeSpotlightNumber(string, int) error                       { panic("spotlight number") }
func (buggy) RequestSpotlightRid(string, string, string, string, string, bool) error {
	panic("spotlight rid")
}
func (buggy) BatchRequestSpotlightRid(string, []string, string, string, string) error {
	panic("batch spotlight rid")
}
func (buggy) ListRTCStats(string) []signal.RTCStats            { panic("rtc stats") }
func (buggy) RTCStats(string, string) (signal.RTCStats, error) { panic("rtc stats") }
func (buggy) ConnectionStats(string, signal.Selector) ([]signal.ConnectionStats, error) {
	panic("connection stats")
}
func (buggy) ListNotifyMetadata(string) ([]signal.NotifyMetadataInfo, error) { panic("metadata") }
func (buggy) NotifyMetadata(string, string) (json.RawMessage, error)         { panic("metadata") }
func (buggy) UpdateNotifyMetadata(string, string, signal.MetadataUpdate) (json.RawMessage, error) {
	panic("metadata")
}

// TestPanicContained: a bug in an operation answers 500 INTERNAL-ERROR
// with no detail, logs the panic's value without a stack trace, and the
// API goes on serving.
func TestPanicContained(t *testing.T) {
	var logs bytes.Buffer
	a := New(buggy{}, Options{}, slog.New(slog.NewTextHandler(&logs, nil)))
	for range 2 {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(http.MethodPost, "/", nil)
		req.Header.Set("x-sora-target", "Sora_20211215.GetMode")
		a.ServeHTTP(rec, req)
		var e struct {
			Type    string `json:"error_type"`
			Message string `json:"message"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || rec.Code != 500 || e.Type != "INTERNAL-ERROR" {
			t.Fatalf("got %d %s", rec.Code, rec.Body)
		}
		if strings.Contains(rec.Body.String(), "secret-in-panic") {
			t.Fatalf("panic value leaked to the client: %s", rec.Body)
		}
	}
	if !strings.Contains(logs.String(), "secret-in-panic") || strings.Count(logs.String(), "api panic") != 2 {
		t.Fatalf("panic not logged: %s", logs.String())
	}
	if strings.Contains(logs.String(), "goroutine ") || strings.Contains(logs.String(), ".go:") {
		t.Fatalf("log carries a stack trace: %s", logs.String())
	}
}

// TestToken: with api_token set, every operation needs the bearer token;
// preflight does not.
func TestToken(t *testing.T) {
	a := New(buggy{}, Options{Token: "s3cret"}, slog.New(slog.DiscardHandler))
	for _, c := range []struct {
		name, method, auth string
		want               int
	}{
		{"no header", http.MethodPost, "", 401},
		{"wrong token", http.MethodPost, "Bearer s3creT", 401},
		{"prefix of the token", http.MethodPost, "Bearer s3cre", 401},
		{"basic scheme", http.MethodPost, "Basic czNjcmV0", 401},
		{"no scheme", http.MethodPost, "s3cret", 401},
		{"right token reaches the operation", http.MethodPost, "Bearer s3cret", 500},
		{"preflight", http.MethodOptions, "", 200},
		{"other method with no token", http.MethodGet, "", 401},
	} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(c.method, "/", nil)
		req.Header.Set("x-sora-target", "Sora_20211215.GetMode")
		if c.auth != "" {
			req.Header.Set("Authorization", c.auth)
		}
		a.ServeHTTP(rec, req)
		if rec.Code != c.want {
			t.Errorf("%s: status %d, want %d (%s)", c.name, rec.Code, c.want, rec.Body)
		}
		if c.want == 401 {
			if !strings.Contains(rec.Body.String(), `"UNAUTHORIZED"`) || rec.Header().Get("WWW-Authenticate") == "" {
				t.Errorf("%s: %s %v", c.name, rec.Body, rec.Header())
			}
			if strings.Contains(rec.Body.String(), "s3cre") {
				t.Errorf("%s: the answer echoes the token", c.name)
			}
		}
	}
}

// TestLocalServesClusterWideOnly: another node may run only the
// cluster-wide operations here; anything else is UNKNOWN-TARGET before the
// backend is touched (the buggy backend would answer 500).
func TestLocalServesClusterWideOnly(t *testing.T) {
	a := New(buggy{}, Options{}, slog.New(slog.DiscardHandler))
	for _, target := range []string{"Sora_20211215.ChangeMode", "Sora_20221221.InitCluster", "Sora_20171010.GetStatsReport", "nonsense"} {
		st, body := a.Local(t.Context(), target, []byte(`{"mode":"normal"}`))
		if st != 400 || !strings.Contains(string(body), `"UNKNOWN-TARGET"`) {
			t.Errorf("%s: %d %s", target, st, body)
		}
	}
	if st, _ := a.Local(t.Context(), "Sora_20160711.PushChannel", []byte(`{"channel_id":"c","data":{}}`)); st != 500 {
		t.Errorf("a cluster-wide target did not reach the backend: %d", st)
	}
}
