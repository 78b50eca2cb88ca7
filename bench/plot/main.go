// Command plot draws BenchmarkFanout results as a PNG: server CPU per
// forwarded packet against the number of subscribers, for Hayate, the pion
// baseline and the floors; with -chart cores or cores-loss, those of
// BenchmarkFanoutCores (the server on one core and on two). It reads
// `go test -bench` output (several runs of a benchmark give the median)
// and uses only the standard library.
//
//	go test -run '^$' -bench Fanout -benchtime 1x ./bench/ | tee fanout.txt
//	go run ./bench/plot -o docs/fanout.png fanout.txt
//	go run ./bench/plot -chart cores-loss -o docs/cores-loss.png cores.txt
//
// With -chart timeline it draws a simulcast viewer's timeline instead (the
// CSV node/impaired_test.go writes with HAYATE_TIMELINE): its bandwidth
// estimate, the rate its link delivered and its layer over time.
//
//	go run ./bench/plot -chart timeline -o docs/simulcast-timeline.png docs/simulcast-timeline.csv
package main

import (
	"bufio"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
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
	color color.RGBA
}

// chart is one picture: the benchmark whose lines it reads, its title, the
// divisor of the values (ns to µs: 1000) and the metrics drawn.
type chart struct {
	bench  string
	title  string
	scale  float64
	series []series
}

var blue, red = color.RGBA{31, 119, 180, 255}, color.RGBA{214, 39, 40, 255}

// charts are the pictures -chart names.
var charts = map[string]chart{
	"fanout": {"BenchmarkFanout", "SERVER CPU PER FORWARDED PACKET (US), ONE CORE", 1000, []series{
		{"baseline-ns/fwd", "PION BASELINE", red},
		{"hayate-ns/fwd", "HAYATE", blue},
		{"floor-ns/fwd", "FLOOR PER PACKET", color.RGBA{127, 127, 127, 255}},
		{"floor-frame-ns/fwd", "FLOOR PER FRAME", color.RGBA{188, 189, 34, 255}},
	}},
	"cores": {"BenchmarkFanoutCores", "SERVER CPU PER FORWARDED PACKET (US)", 1000, []series{
		{"1core-ns/fwd", "SERVER ON 1 CORE", blue},
		{"2core-ns/fwd", "SERVER ON 2 CORES", red},
	}},
	"cores-loss": {"BenchmarkFanoutCores", "LOSS (PERCENT) OF ONE BROADCAST", 1, []series{
		{"1core-loss-%", "SERVER ON 1 CORE", blue},
		{"2core-loss-%", "SERVER ON 2 CORES", red},
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
	outPath := flag.String("o", "fanout.png", "output PNG")
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
	var img *image.RGBA
	if *name == "timeline" {
		ss, err := parseTimeline(in)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		img = drawTimeline(ss)
	} else {
		data, err := parse(in, c.bench)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		img = draw(c, data)
	}
	f, err := os.Create(*outPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

const (
	width, height = 960, 600
	left, right   = 90, 30
	top, bottom   = 60, 80
)

func draw(c chart, data map[string]map[int][]float64) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	fill(img, img.Bounds(), color.RGBA{255, 255, 255, 255})
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
		text(img, left, top, "NO "+strings.ToUpper(c.bench)+" LINES IN THE INPUT", 2, color.RGBA{0, 0, 0, 255})
		return img
	}
	maxY = math.Ceil(maxY/5) * 5
	minX, maxX := math.Log10(float64(ns[0])), math.Log10(float64(ns[len(ns)-1]))
	if maxX == minX {
		maxX = minX + 1
	}
	px := func(n int) int {
		return left + int((math.Log10(float64(n))-minX)/(maxX-minX)*float64(width-left-right))
	}
	py := func(us float64) int { return height - bottom - int(us/maxY*float64(height-top-bottom)) }
	black, grey := color.RGBA{0, 0, 0, 255}, color.RGBA{220, 220, 220, 255}
	// Grid and axes.
	for y := 0.0; y <= maxY; y += maxY / 5 {
		line(img, left, py(y), width-right, py(y), grey, 1)
		label := strconv.FormatFloat(y, 'f', 0, 64)
		text(img, left-10-len(label)*12, py(y)-7, label, 2, black)
	}
	for _, n := range ns {
		line(img, px(n), top, px(n), height-bottom, grey, 1)
		label := strconv.Itoa(n)
		text(img, px(n)-len(label)*6, height-bottom+10, label, 2, black)
	}
	line(img, left, height-bottom, width-right, height-bottom, black, 2)
	line(img, left, top, left, height-bottom, black, 2)
	text(img, left, 15, c.title, 2, black)
	text(img, width/2-120, height-35, "SUBSCRIBERS (LOG SCALE)", 2, black)
	// Series.
	ly := top + 10
	for _, s := range c.series {
		pts := data[s.unit]
		if len(pts) == 0 {
			continue
		}
		var keys []int
		for n := range pts {
			keys = append(keys, n)
		}
		slices.Sort(keys)
		for i, n := range keys {
			x, y := px(n), py(median(pts[n])/c.scale)
			fill(img, image.Rect(x-4, y-4, x+5, y+5), s.color)
			if i > 0 {
				p := keys[i-1]
				line(img, px(p), py(median(pts[p])/c.scale), x, y, s.color, 3)
			}
		}
		fill(img, image.Rect(width-right-250, ly, width-right-230, ly+14), s.color)
		text(img, width-right-220, ly, s.name, 2, black)
		ly += 24
	}
	return img
}

func fill(img *image.RGBA, r image.Rectangle, c color.RGBA) {
	r = r.Intersect(img.Bounds())
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetRGBA(x, y, c)
		}
	}
}

// line draws a thick line (Bresenham with a square pen).
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.RGBA, w int) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := sign(x1-x0), sign(y1-y0)
	e := dx + dy
	for {
		fill(img, image.Rect(x0-w/2, y0-w/2, x0-w/2+w, y0-w/2+w), c)
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func sign(v int) int {
	switch {
	case v < 0:
		return -1
	case v > 0:
		return 1
	}
	return 0
}

// text draws upper-case text with the 5×7 font, scaled.
func text(img *image.RGBA, x, y int, s string, scale int, c color.RGBA) {
	for _, r := range strings.ToUpper(s) {
		g, ok := font[r]
		if ok {
			for row, bits := range g {
				for col := range 5 {
					if bits&(1<<(4-col)) != 0 {
						fill(img, image.Rect(x+col*scale, y+row*scale, x+(col+1)*scale, y+(row+1)*scale), c)
					}
				}
			}
		}
		x += 6 * scale
	}
}

// font is a 5×7 bitmap font: one byte per row, the low five bits.
var font = map[rune][7]byte{
	'0': {14, 17, 19, 21, 25, 17, 14}, '1': {4, 12, 4, 4, 4, 4, 14}, '2': {14, 17, 1, 2, 4, 8, 31},
	'3': {31, 2, 4, 2, 1, 17, 14}, '4': {2, 6, 10, 18, 31, 2, 2}, '5': {31, 16, 30, 1, 1, 17, 14},
	'6': {6, 8, 16, 30, 17, 17, 14}, '7': {31, 1, 2, 4, 8, 8, 8}, '8': {14, 17, 17, 14, 17, 17, 14},
	'9': {14, 17, 17, 15, 1, 2, 12},
	'A': {14, 17, 17, 31, 17, 17, 17}, 'B': {30, 17, 17, 30, 17, 17, 30}, 'C': {14, 17, 16, 16, 16, 17, 14},
	'D': {28, 18, 17, 17, 17, 18, 28}, 'E': {31, 16, 16, 30, 16, 16, 31}, 'F': {31, 16, 16, 30, 16, 16, 16},
	'G': {14, 17, 16, 23, 17, 17, 15}, 'H': {17, 17, 17, 31, 17, 17, 17}, 'I': {14, 4, 4, 4, 4, 4, 14},
	'J': {7, 2, 2, 2, 2, 18, 12}, 'K': {17, 18, 20, 24, 20, 18, 17}, 'L': {16, 16, 16, 16, 16, 16, 31},
	'M': {17, 27, 21, 21, 17, 17, 17}, 'N': {17, 17, 25, 21, 19, 17, 17}, 'O': {14, 17, 17, 17, 17, 17, 14},
	'P': {30, 17, 17, 30, 16, 16, 16}, 'Q': {14, 17, 17, 17, 21, 18, 13}, 'R': {30, 17, 17, 30, 20, 18, 17},
	'S': {15, 16, 16, 14, 1, 1, 30}, 'T': {31, 4, 4, 4, 4, 4, 4}, 'U': {17, 17, 17, 17, 17, 17, 14},
	'V': {17, 17, 17, 17, 17, 10, 4}, 'W': {17, 17, 17, 21, 21, 21, 10}, 'X': {17, 17, 10, 4, 10, 17, 17},
	'Y': {17, 17, 17, 10, 4, 4, 4}, 'Z': {31, 1, 2, 4, 8, 16, 31},
	' ': {}, '.': {0, 0, 0, 0, 0, 12, 12}, ',': {0, 0, 0, 0, 12, 4, 8}, ':': {0, 12, 12, 0, 12, 12, 0},
	'-': {0, 0, 0, 31, 0, 0, 0}, '+': {0, 4, 4, 31, 4, 4, 0}, '/': {0, 1, 2, 4, 8, 16, 0},
	'%': {24, 25, 2, 4, 8, 19, 3}, '(': {2, 4, 8, 8, 8, 4, 2}, ')': {8, 4, 2, 2, 2, 4, 8}, '=': {0, 0, 31, 0, 31, 0, 0},
}
