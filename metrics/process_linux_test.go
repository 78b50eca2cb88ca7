package metrics

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hayate-sfu/hayate/internal/promtest"
)

// TestProcess: the process families pass promtool, and counting open
// descriptors follows files being opened.
func TestProcess(t *testing.T) {
	p := NewProcess(time.Now())
	var w Writer
	p.Write(&w)
	promtest.Check(t, w.Bytes())
	for _, name := range []string{"go_goroutines ", "process_open_fds ", "process_resident_memory_bytes ", "process_cpu_seconds_total ", `go_info{version="`} {
		if !strings.Contains(string(w.Bytes()), "\n"+name) {
			t.Errorf("no %s in\n%s", name, w.Bytes())
		}
	}
	before, ok := p.openFDs()
	if !ok {
		t.Fatal("cannot count descriptors")
	}
	dir := t.TempDir()
	for i := range 700 { // more than one getdents buffer's worth
		f, err := os.Create(filepath.Join(dir, "f"+string(rune('a'+i%26))+string(rune('a'+i/26))))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
	}
	after, _ := p.openFDs()
	if after-before != 700 {
		t.Fatalf("open fds %d then %d, want +700", before, after)
	}
}
