package control

import (
	"os"
	"strings"
	"testing"
)

// TestREADMEDocumentsEveryError keeps the README's API error table honest.
func TestREADMEDocumentsEveryError(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range AllErrors() {
		if !strings.Contains(string(readme), "`"+e.Type+"`") {
			t.Errorf("README.md does not document error_type `%s`", e.Type)
		}
	}
	a := New(nil, Options{}, nil)
	for _, target := range a.Targets() {
		if !strings.Contains(string(readme), "`"+target+"`") {
			t.Errorf("README.md does not document operation `%s`", target)
		}
	}
}

func FuzzParseParams(f *testing.F) {
	f.Add([]byte(`{"mode":"normal"}`))
	f.Add([]byte(`{"channel_id":"c","connection_id":"x","reason":{"a":1}}`))
	f.Add([]byte(``))
	f.Add([]byte(`[`))
	f.Add([]byte(`{"channel_id":"c","role":"recvonly","data":{"a":1}}`))
	f.Add([]byte(`{"channel_id":"c","client_id":"x","connection_id":"y","role":"bogus"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := parseParams(body)
		if err != nil {
			if err != errBadJSON {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		for _, name := range []string{"channel_id", "connection_id", "mode"} {
			if s, err := p.id(name); err == nil && (s == "" || len(s) > 255) {
				t.Fatalf("id %q accepted", s)
			}
		}
		// A selector names its channel, and at most one of client,
		// connection or a valid role.
		for _, by := range [][2]string{{"", ""}, {"client_id", ""}, {"connection_id", ""}, {"", "role"}} {
			ch, sel, echo, err := p.selector(by[0], by[1])
			if err != nil {
				continue
			}
			set := 0
			for _, v := range []string{sel.ClientID, sel.ConnectionID, string(sel.Role)} {
				if v != "" {
					set++
				}
			}
			if ch == "" || echo["channel_id"] != ch || set > 1 || sel.Role != "" && !sel.Role.Sends() && !sel.Role.Receives() {
				t.Fatalf("selector %v: %q %+v %v", by, ch, sel, echo)
			}
		}
	})
}
