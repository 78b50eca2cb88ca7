package config

import (
	"os"
	"strings"
	"testing"
)

// TestSampleParsesToDefaults: the sample names every key and reads back as
// the built-in defaults.
func TestSampleParsesToDefaults(t *testing.T) {
	s := Sample()
	for _, k := range Keys() {
		if !strings.Contains(s, "\n"+k.Name+" =") && !strings.Contains(s, "\n# "+k.Name+" =") {
			t.Errorf("sample lacks %s", k.Name)
		}
	}
	c := Default()
	c.LogLevel, c.MediaSockets = "debug", 99 // so that the file must set log_level back
	if err := c.ReadConf(strings.NewReader(s), "sample"); err != nil {
		t.Fatal(err)
	}
	c.MediaSockets = Default().MediaSockets // left commented out
	if c != Default() {
		t.Fatalf("sample reads as\n%+v\nwant\n%+v", c, Default())
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestPackagedSampleIsCurrent: packaging/hayate.conf is Sample()'s output
// (regenerate with: go run ./cmd/hayate sample-config > packaging/hayate.conf).
func TestPackagedSampleIsCurrent(t *testing.T) {
	got, err := os.ReadFile("../packaging/hayate.conf")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != Sample() {
		t.Fatal("packaging/hayate.conf is stale: go run ./cmd/hayate sample-config > packaging/hayate.conf")
	}
}

func TestLogFormat(t *testing.T) {
	c := Default()
	if c.LogFormat != "text" {
		t.Fatalf("default log_format %q", c.LogFormat)
	}
	for _, v := range []string{"json", "text"} {
		if err := c.Set("log_format", v); err != nil || c.Validate() != nil {
			t.Fatalf("log_format %s rejected", v)
		}
	}
	c.Set("log_format", "xml")
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "log_format") {
		t.Fatalf("log_format xml: %v", err)
	}
}
