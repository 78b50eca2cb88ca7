package main

import (
	"bytes"
	"encoding/xml"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
)

const sample = `goos: linux
BenchmarkFanout/subs=10-2         	       1	21998307940 ns/op	         0 baseline-loss-%	     21662 baseline-ns/fwd	      6678 floor-ns/fwd	      9004 hayate-ns/fwd
BenchmarkFanout/subs=100-2        	       1	23455363277 ns/op	     12836 baseline-ns/fwd	      2911 floor-ns/fwd	      5997 hayate-ns/fwd
BenchmarkFanout/subs=100-2        	       1	23455363277 ns/op	     12000 baseline-ns/fwd	      2000 floor-ns/fwd	      4000 hayate-ns/fwd
BenchmarkFanout/subs=100-2        	       1	23455363277 ns/op	     13000 baseline-ns/fwd	      3000 floor-ns/fwd	      6500 hayate-ns/fwd
`

func TestParseAndDraw(t *testing.T) {
	data, err := parse(strings.NewReader(sample), "BenchmarkFanout")
	if err != nil {
		t.Fatal(err)
	}
	if got := median(data["hayate-ns/fwd"][100]); got != 5997 {
		t.Fatalf("median of three runs = %v, want 5997", got)
	}
	if len(data["baseline-ns/fwd"]) != 2 {
		t.Fatalf("baseline points %v", data["baseline-ns/fwd"])
	}
	pic := read(t, draw(charts["fanout"], data).bytes())
	// The Hayate series is a line through its two points, and the
	// picture's words are text.
	if pic.lines[blue] != 2 {
		t.Fatalf("the Hayate line has %d points, want 2", pic.lines[blue])
	}
	for _, want := range []string{charts["fanout"].title, "Hayate", "pion baseline", "subscribers (log scale)", "100"} {
		if !slices.Contains(pic.texts, want) {
			t.Errorf("no text %q in %q", want, pic.texts)
		}
	}
}

const coresSample = `BenchmarkFanoutCores/subs=200-2         	       1	25710332740 ns/op	         0 1core-loss-%	      3630 1core-ns/fwd	         0 2core-loss-%	      3790 2core-ns/fwd
BenchmarkFanoutCores/subs=1600-2         	       1	25710332740 ns/op	         12.5 1core-loss-%	      3630 1core-ns/fwd	         0.1 2core-loss-%	      3790 2core-ns/fwd
BenchmarkFanout/subs=100-2        	       1	23455363277 ns/op	     13000 baseline-ns/fwd	      3000 floor-ns/fwd	      6500 hayate-ns/fwd
`

func TestCoresChart(t *testing.T) {
	data, err := parse(strings.NewReader(coresSample), charts["cores-loss"].bench)
	if err != nil {
		t.Fatal(err)
	}
	if got := data["1core-loss-%"][1600]; len(got) != 1 || got[0] != 12.5 {
		t.Fatalf("1-core loss at 1600 = %v", got)
	}
	if len(data["hayate-ns/fwd"]) != 0 {
		t.Fatal("a BenchmarkFanout line read as BenchmarkFanoutCores")
	}
	if pic := read(t, draw(charts["cores-loss"], data).bytes()); pic.lines[red] != 2 {
		t.Fatalf("the 2-core line has %d points, want 2", pic.lines[red])
	}
}

const timelineSample = `t,estimate,layer,bytes,drops,phase
0.1,300000,0,1000,0,good
0.2,900000,1,20000,0,good
0.3,2000000,2,60000,0,good
0.4,2100000,2,110000,0,1 Mbit/s cap
0.5,900000,1,122500,3,1 Mbit/s cap
0.6,0,-1,130000,3,<loss> & cap
`

func TestTimeline(t *testing.T) {
	ss, err := parseTimeline(strings.NewReader(timelineSample))
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 6 || ss[4].layer != 1 || ss[4].phase != "1 Mbit/s cap" {
		t.Fatalf("parsed %+v", ss)
	}
	// 12,500 bytes in the 100 ms before the last sample: 1 Mbit/s.
	if r := deliveredRates(ss, 0.15); math.Abs(r[4]-1_000_000) > 1 {
		t.Fatalf("delivered rate %v, want 1e6", r[4])
	}
	// Rate throughout; estimate and layer until the viewer lost them
	// (the layer a step line: two points per change).
	pic := read(t, drawTimeline(ss).bytes())
	for c, want := range map[string]int{rateColor: 6, estimateColor: 5, layerColor: 9} {
		if pic.lines[c] != want {
			t.Errorf("the %s line has %d points, want %d", c, pic.lines[c], want)
		}
	}
	// A phase's name is text, escaped.
	if !slices.Contains(pic.texts, "<loss> & cap") {
		t.Errorf("no phase text in %q", pic.texts)
	}
	if _, err := parseTimeline(strings.NewReader("t,estimate\n1,2\n")); err == nil {
		t.Fatal("a short line parsed")
	}
}

// picture is what a test reads back from an SVG: the points of the lines
// of each colour, and the text.
type picture struct {
	lines map[string]int
	texts []string
}

// read parses an SVG as XML (it must be well formed).
func read(t *testing.T, svg []byte) picture {
	t.Helper()
	pic := picture{lines: map[string]int{}}
	d := xml.NewDecoder(bytes.NewReader(svg))
	var inText bool
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return pic
		}
		if err != nil {
			t.Fatalf("the SVG is not well-formed XML: %v\n%s", err, svg)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			inText = e.Name.Local == "text"
			if e.Name.Local == "polyline" {
				var stroke, points string
				for _, a := range e.Attr {
					switch a.Name.Local {
					case "stroke":
						stroke = a.Value
					case "points":
						points = a.Value
					}
				}
				pic.lines[stroke] += len(strings.Fields(points))
			}
		case xml.CharData:
			if inText {
				pic.texts = append(pic.texts, string(e))
			}
		case xml.EndElement:
			inText = false
		}
	}
}
