package main

import (
	"encoding/csv"
	"fmt"
	"image"
	"image/color"
	"io"
	"math"
	"strconv"
)

// tick is one row of a simulcast timeline (node/impaired_test.go writes
// them with HAYATE_TIMELINE): seconds, the viewer's bandwidth estimate
// (bit/s), its layer (-1: none), bytes its link delivered so far, packets
// its link dropped so far, and the phase of the test.
type tick struct {
	t        float64
	estimate float64
	layer    int
	bytes    float64
	drops    float64
	phase    string
}

// parseTimeline reads the CSV with its header line.
func parseTimeline(r io.Reader) ([]tick, error) {
	rows, err := csv.NewReader(r).ReadAll()
	if err != nil {
		return nil, err
	}
	var out []tick
	for i, row := range rows {
		if i == 0 && len(row) > 0 && row[0] == "t" {
			continue
		}
		if len(row) != 6 {
			return nil, fmt.Errorf("line %d: %d fields, want 6", i+1, len(row))
		}
		var s tick
		var errs [5]error
		s.t, errs[0] = strconv.ParseFloat(row[0], 64)
		s.estimate, errs[1] = strconv.ParseFloat(row[1], 64)
		s.layer, errs[2] = strconv.Atoi(row[2])
		s.bytes, errs[3] = strconv.ParseFloat(row[3], 64)
		s.drops, errs[4] = strconv.ParseFloat(row[4], 64)
		for _, err := range errs {
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", i+1, err)
			}
		}
		s.phase = row[5]
		out = append(out, s)
	}
	return out, nil
}

var (
	estimateColor = color.RGBA{31, 119, 180, 255}
	rateColor     = color.RGBA{44, 160, 44, 255}
	layerColor    = color.RGBA{214, 39, 40, 255}
	phaseColors   = []color.RGBA{{255, 255, 255, 255}, {240, 240, 250, 255}}
)

// drawTimeline plots the estimate and the rate the link delivered
// (Mbit/s, averaged over 500 ms) and the layer (right axis) over time,
// with the test's phases as bands.
func drawTimeline(ss []tick) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	fill(img, img.Bounds(), color.RGBA{255, 255, 255, 255})
	black, grey := color.RGBA{0, 0, 0, 255}, color.RGBA{220, 220, 220, 255}
	if len(ss) < 2 {
		text(img, left, top, "NO TIMELINE IN THE INPUT", 2, black)
		return img
	}
	rates := deliveredRates(ss, 0.5)
	maxT := ss[len(ss)-1].t
	maxY := 0.0
	for i, s := range ss {
		maxY = math.Max(maxY, math.Max(s.estimate, rates[i])/1e6)
	}
	maxY = math.Max(1, math.Ceil(maxY))
	px := func(t float64) int { return left + int(t/maxT*float64(width-left-right-60)) }
	py := func(mbps float64) int { return height - bottom - int(mbps/maxY*float64(height-top-bottom)) }
	pl := func(layer int) int { return py(float64(layer+1) / 3 * maxY * 0.9) }
	// Phases.
	band, from := 0, 0
	for i := 1; i <= len(ss); i++ {
		if i < len(ss) && ss[i].phase == ss[from].phase {
			continue
		}
		fill(img, image.Rect(px(ss[from].t), top, px(ss[i-1].t), height-bottom), phaseColors[band%2])
		text(img, px(ss[from].t)+4, top+4+(band%2)*16, ss[from].phase, 1, black)
		band, from = band+1, i
	}
	// Grid and axes.
	for y := 0.0; y <= maxY; y += maxY / 5 {
		line(img, left, py(y), width-right-60, py(y), grey, 1)
		label := strconv.FormatFloat(y, 'f', 1, 64)
		text(img, left-10-len(label)*12, py(y)-7, label, 2, black)
	}
	for t := 0.0; t <= maxT; t += 5 {
		label := strconv.Itoa(int(t))
		text(img, px(t)-len(label)*6, height-bottom+10, label, 2, black)
	}
	for l, name := range []string{"R0", "R1", "R2"} {
		text(img, width-right-50, pl(l)-7, name, 2, layerColor)
	}
	line(img, left, height-bottom, width-right-60, height-bottom, black, 2)
	line(img, left, top, left, height-bottom, black, 2)
	text(img, left, 15, "ONE VIEWER THROUGH THE IMPAIRMENT RELAY: ESTIMATE, DELIVERED RATE (MBIT/S), LAYER", 1, black)
	text(img, width/2-60, height-35, "SECONDS", 2, black)
	// Series.
	for i := 1; i < len(ss); i++ {
		a, b := ss[i-1], ss[i]
		line(img, px(a.t), py(rates[i-1]/1e6), px(b.t), py(rates[i]/1e6), rateColor, 2)
		if a.estimate > 0 && b.estimate > 0 {
			line(img, px(a.t), py(a.estimate/1e6), px(b.t), py(b.estimate/1e6), estimateColor, 3)
		}
		if a.layer >= 0 && b.layer >= 0 {
			line(img, px(a.t), pl(a.layer), px(b.t), pl(a.layer), layerColor, 3)
			line(img, px(b.t), pl(a.layer), px(b.t), pl(b.layer), layerColor, 3)
		}
	}
	ly := 32
	for i, s := range []struct {
		name string
		c    color.RGBA
	}{{"ESTIMATE", estimateColor}, {"DELIVERED", rateColor}, {"LAYER", layerColor}} {
		x := left + i*160
		fill(img, image.Rect(x, ly, x+14, ly+10), s.c)
		text(img, x+20, ly+1, s.name, 1, black)
	}
	return img
}

// deliveredRates is, per sample, the bit rate the link delivered over
// the preceding window seconds.
func deliveredRates(ss []tick, window float64) []float64 {
	out := make([]float64, len(ss))
	j := 0
	for i, s := range ss {
		for j < i && s.t-ss[j].t > window {
			j++
		}
		if dt := s.t - ss[j].t; dt > 0 {
			out[i] = (s.bytes - ss[j].bytes) * 8 / dt
		}
	}
	return out
}
