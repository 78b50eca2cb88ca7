package main

import (
	"image/color"
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
	img := draw(charts["fanout"], data)
	// The Hayate series colour is drawn somewhere.
	found := false
	for y := 0; y < height && !found; y++ {
		for x := 0; x < width; x++ {
			if img.RGBAAt(x, y) == (color.RGBA{31, 119, 180, 255}) {
				found = true
				break
			}
		}
	}
	if !found {
		t.Fatal("no Hayate line in the picture")
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
	img := draw(charts["cores-loss"], data)
	for y := range height {
		for x := range width {
			if img.RGBAAt(x, y) == red {
				return
			}
		}
	}
	t.Fatal("no 2-core line in the picture")
}
