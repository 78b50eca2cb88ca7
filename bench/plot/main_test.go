package main

import (
	"image"
	"image/color"
	"math"
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

const timelineSample = `t,estimate,layer,bytes,drops,phase
0.1,300000,0,1000,0,good
0.2,900000,1,20000,0,good
0.3,2000000,2,60000,0,good
0.4,2100000,2,110000,0,1 Mbit/s cap
0.5,900000,1,122500,3,1 Mbit/s cap
`

func TestTimeline(t *testing.T) {
	ss, err := parseTimeline(strings.NewReader(timelineSample))
	if err != nil {
		t.Fatal(err)
	}
	if len(ss) != 5 || ss[4].layer != 1 || ss[4].phase != "1 Mbit/s cap" {
		t.Fatalf("parsed %+v", ss)
	}
	// 12,500 bytes in the 100 ms before the last sample: 1 Mbit/s.
	if r := deliveredRates(ss, 0.15); math.Abs(r[4]-1_000_000) > 1 {
		t.Fatalf("delivered rate %v, want 1e6", r[4])
	}
	img := drawTimeline(ss)
	for _, c := range []color.RGBA{estimateColor, rateColor, layerColor} {
		if !drawn(img, c) {
			t.Fatalf("no %v line in the picture", c)
		}
	}
	if _, err := parseTimeline(strings.NewReader("t,estimate\n1,2\n")); err == nil {
		t.Fatal("a short line parsed")
	}
}

func drawn(img *image.RGBA, c color.RGBA) bool {
	for y := 0; y < height; y++ {
		for x := 0; x < width; x++ {
			if img.RGBAAt(x, y) == c {
				return true
			}
		}
	}
	return false
}
