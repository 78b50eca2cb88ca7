package metrics

import (
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hayate-sfu/hayate/internal/promtest"
)

func TestWriterFormat(t *testing.T) {
	var w Writer
	w.Counter("a_total", "A counter.", 7)
	w.Family("b", "Help with \\ and\nnewline.", GaugeType)
	w.SampleUint("b", 1, "mode", "normal", "quote", `say "hi"`+"\n\\")
	w.Sample("b", math.Inf(1), "mode", "x")
	w.Sample("b", 0.25)
	w.SampleBool("b", false, "k", "v")
	w.GaugeInt("c", "Negative.", -3)
	want := `# HELP a_total A counter.
# TYPE a_total counter
a_total 7
# HELP b Help with \\ and\nnewline.
# TYPE b gauge
b{mode="normal",quote="say \"hi\"\n\\"} 1
b{mode="x"} +Inf
b 0.25
b{k="v"} 0
# HELP c Negative.
# TYPE c gauge
c -3
`
	if got := string(w.Bytes()); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	promtest.Check(t, w.Bytes())
	w.Reset()
	if len(w.Bytes()) != 0 {
		t.Fatal("Reset kept data")
	}
}

func TestInvalidNamesPanic(t *testing.T) {
	for _, f := range []func(w *Writer){
		func(w *Writer) { w.Counter("1abc", "", 1) },
		func(w *Writer) { w.Counter("a-b", "", 1) },
		func(w *Writer) { w.Counter("", "", 1) },
		func(w *Writer) { w.SampleUint("a", 1, "__reserved", "x") },
		func(w *Writer) { w.SampleUint("a", 1, "a:b", "x") },
		//lint:ignore SA5012 an odd label list is what this case checks
		func(w *Writer) { w.SampleUint("a", 1, "odd") },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f(&Writer{})
		}()
	}
}

// TestScrapeAllocations: once warm, writing the process families allocates
// nothing.
func TestScrapeAllocations(t *testing.T) {
	p := NewProcess(time.Now())
	var w Writer
	p.Write(&w)
	allocs := testing.AllocsPerRun(100, func() {
		w.Reset()
		p.Write(&w)
		w.Counter("x_total", "X.", 1)
		w.Family("y", "Y.", GaugeType)
		w.SampleUint("y", 1, "a", "b", "c", "d")
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per scrape, want 0", allocs)
	}
}

func TestHandler(t *testing.T) {
	n := 0
	srv := httptest.NewServer(Handler(func(w *Writer) { n++; w.Counter("hits_total", "Hits.", uint64(n)) }))
	defer srv.Close()
	for want := 1; want <= 2; want++ {
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.Header.Get("Content-Type") != ContentType || !strings.HasSuffix(string(body), "hits_total "+string(rune('0'+want))+"\n") {
			t.Fatalf("scrape %d: %s %q", want, resp.Header.Get("Content-Type"), body)
		}
	}
	resp, err := http.Post(srv.URL, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", resp.StatusCode)
	}
}
