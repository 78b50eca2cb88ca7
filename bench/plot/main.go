// Command plot draws BenchmarkFanout results as an SVG chart: server CPU
// per forwarded packet against the number of subscribers, for Hayate, the
// pion baseline and the floors; with -chart cores or cores-loss, those of
// BenchmarkFanoutCores (the server on one core and on two). It reads
// `go test -bench` output (several runs of a benchmark give the median)
// and uses only the standard library. `make plots` redraws the charts in
// docs/ from the results saved there.
//
//	go test -run '^$' -bench Fanout -benchtime 1x ./bench/ | tee fanout.txt
//	go run ./bench/plot -o docs/fanout.svg fanout.txt
//	go run ./bench/plot -chart cores-loss -o docs/cores-loss.svg cores.txt
//
// With -chart timeline it draws a simulcast viewer's timeline instead (the
// CSV node/impaired_test.go writes with HAYATE_TIMELINE): its bandwidth
// estimate, the rate its link delivered and its layer over time.
//
//	go run ./bench/plot -chart timeline -o docs/simulcast-timeline.svg docs/simulcast-timeline.csv
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// series is one metric plotted, with its colour and legend name.
type series struct {
	unit  string
	name  string
	color string
}

// chart is one picture: the benchmark whose lines it reads, its title, the
// divisor of the values (ns to µs: 1000) and the metrics drawn.
type chart struct {
	bench  string
	title  string
	scale  float64
	series []series
}

// Series colours.
const (
	blue  = "#1f77b4"
	red   = "#d62728"
	grey  = "#7f7f7f"
	olive = "#bcbd22"
	black = "#000000"
	light = "#dcdcdc"
)

// charts are the pictures -chart names.
var charts = map[string]chart{
	"fanout": {"BenchmarkFanout", "Server CPU per forwarded packet (µs), one core", 1000, []series{
		{"baseline-ns/fwd", "pion baseline", red},
		{"hayate-ns/fwd", "Hayate", blue},
		{"floor-ns/fwd", "floor per packet", grey},
		{"floor-frame-ns/fwd", "floor per frame", olive},
	}},
	"cores": {"BenchmarkFanoutCores", "Server CPU per forwarded packet (µs)", 1000, []series{
		{"1core-ns/fwd", "server on 1 core", blue},
		{"2core-ns/fwd", "server on 2 cores", red},
	}},
	"cores-loss": {"BenchmarkFanoutCores", "Loss (%) of one broadcast", 1, []series{
		{"1core-loss-%", "server on 1 core", blue},
		{"2core-loss-%", "server on 2 cores", red},
	}},
}

// parse returns, per unit, the values by subscriber count of the lines
// of benchmark bench.
func parse(r io.Reader, bench string) (map[string]map[int][]float64, error) {
	lineRE := regexp.MustCompile(`^` + bench + `/subs=(\d+)-\d+\s+\d+\s+\d+ ns/op\s+(.*)$`)
	out := map[string]map[int][]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := lineRE.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		f := strings.Fields(m[2])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			if out[f[i+1]] == nil {
				out[f[i+1]] = map[int][]float64{}
			}
			out[f[i+1]][n] = append(out[f[i+1]][n], v)
		}
	}
	return out, sc.Err()
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func main() {
	outPath := flag.String("o", "fanout.svg", "output SVG")
	name := flag.String("chart", "fanout", "fanout (BenchmarkFanout), cores or cores-loss (BenchmarkFanoutCores), timeline (node/impaired_test.go's CSV)")
	flag.Parse()
	c, ok := charts[*name]
	if !ok && *name != "timeline" {
		fmt.Fprintln(os.Stderr, "unknown chart", *name)
		os.Exit(2)
	}
	in := io.Reader(os.Stdin)
	if flag.NArg() > 0 {
		f, err := os.Open(flag.Arg(0))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer f.Close()
		in = f
	}
	var pic *canvas
	if *name == "timeline" {
		ss, err := parseTimeline(in)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		pic = drawTimeline(ss)
	} else {
		data, err := parse(in, c.bench)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		pic = draw(c, data)
	}
	if err := os.WriteFile(*outPath, pic.bytes(), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

const (
	width, height = 960, 600
	left, right   = 90, 30
	top, bottom   = 60, 80
)

func draw(c chart, data map[string]map[int][]float64) *canvas {
	pic := newCanvas(width, height)
	var ns []int
	maxY := 0.0
	for _, s := range c.series {
		for n, v := range data[s.unit] {
			if !slices.Contains(ns, n) {
				ns = append(ns, n)
			}
			maxY = math.Max(maxY, median(v)/c.scale)
		}
	}
	slices.Sort(ns)
	if len(ns) == 0 {
		pic.text(left, top, "No "+c.bench+" lines in the input", 18, anchorStart, black)
		return pic
	}
	maxY = math.Max(5, math.Ceil(maxY/5)*5)
	minX, maxX := math.Log10(float64(ns[0])), math.Log10(float64(ns[len(ns)-1]))
	if maxX == minX {
		maxX = minX + 1
	}
	px := func(n int) float64 {
		return left + (math.Log10(float64(n))-minX)/(maxX-minX)*(width-left-right)
	}
	py := func(us float64) float64 { return height - bottom - us/maxY*(height-top-bottom) }
	// Grid and axes.
	for i := 0; i <= 5; i++ {
		y := maxY * float64(i) / 5
		pic.line(left, py(y), width-right, py(y), light, 1)
		pic.text(left-10, py(y)+6, strconv.FormatFloat(y, 'f', -1, 64), 16, anchorEnd, black)
	}
	for _, n := range ns {
		pic.line(px(n), top, px(n), height-bottom, light, 1)
		pic.text(px(n), height-bottom+26, strconv.Itoa(n), 16, anchorMiddle, black)
	}
	pic.line(left, height-bottom, width-right, height-bottom, black, 2)
	pic.line(left, top, left, height-bottom, black, 2)
	pic.text(left, 26, c.title, 20, anchorStart, black)
	pic.text((left+width-right)/2, height-22, "subscribers (log scale)", 16, anchorMiddle, black)
	// Series, and their legend in a row under the title.
	lx := float64(left)
	for _, s := range c.series {
		pts := data[s.unit]
		if len(pts) == 0 {
			continue
		}
		var line []point
		for _, n := range slices.Sorted(maps.Keys(pts)) {
			p := point{px(n), py(median(pts[n]) / c.scale)}
			pic.rect(p.x-4, p.y-4, 9, 9, s.color)
			line = append(line, p)
		}
		pic.polyline(line, s.color, 3)
		pic.rect(lx, 36, 14, 10, s.color)
		pic.text(lx+20, 46, s.name, 13, anchorStart, black)
		lx += 160
	}
	return pic
}
