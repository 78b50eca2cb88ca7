package signal

import (
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestREADMEDocumentsEveryClose keeps the README's close code table honest.
func TestREADMEDocumentsEveryClose(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range AllCloseErrors() {
		if e == errAuthDeniedSample {
			continue
		}
		if !strings.Contains(string(readme), "`"+e.Reason+"`") || !strings.Contains(string(readme), strconv.Itoa(int(e.Code))) {
			t.Errorf("README.md does not document close %d `%s`", e.Code, e.Reason)
		}
	}
	if !strings.Contains(string(readme), "INVALID-<FIELD>") {
		t.Error("README.md does not document INVALID-<FIELD>")
	}
}
