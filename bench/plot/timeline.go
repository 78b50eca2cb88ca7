package main

import (
	"encoding/csv"
	"fmt"
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

// Timeline colours; the phases alternate between two backgrounds.
const (
	estimateColor = blue
	rateColor     = "#2ca02c"
	layerColor    = red
)

var phaseColors = []string{"#ffffff", "#f0f0fa"}

// drawTimeline plots the estimate and the rate the link delivered
// (Mbit/s, averaged over 500 ms) and the layer (right axis) over time,
// with the test's phases as bands.
func drawTimeline(ss []tick) *canvas {
	pic := newCanvas(width, height)
	if len(ss) < 2 {
		pic.text(left, top, "No timeline in the input", 18, anchorStart, black)
		return pic
	}
	rates := deliveredRates(ss, 0.5)
	maxT := ss[len(ss)-1].t
	maxY := 0.0
	for i, s := range ss {
		maxY = math.Max(maxY, math.Max(s.estimate, rates[i])/1e6)
	}
	maxY = math.Max(1, math.Ceil(maxY))
	const plotRight = width - right - 60
	px := func(t float64) float64 { return left + t/maxT*(plotRight-left) }
	py := func(mbps float64) float64 { return height - bottom - mbps/maxY*(height-top-bottom) }
	pl := func(layer int) float64 { return py(float64(layer+1) / 3 * maxY * 0.9) }
	// Phases.
	band, from := 0, 0
	for i := 1; i <= len(ss); i++ {
		if i < len(ss) && ss[i].phase == ss[from].phase {
			continue
		}
		x0, x1 := px(ss[from].t), px(ss[i-1].t)
		pic.rect(x0, top, x1-x0, height-top-bottom, phaseColors[band%2])
		pic.text(x0+4, top+14+float64(band%2)*16, ss[from].phase, 12, anchorStart, black)
		band, from = band+1, i
	}
	// Grid and axes.
	for i := 0; i <= 5; i++ {
		y := maxY * float64(i) / 5
		pic.line(left, py(y), plotRight, py(y), light, 1)
		pic.text(left-10, py(y)+6, strconv.FormatFloat(y, 'f', 1, 64), 16, anchorEnd, black)
	}
	for t := 0.0; t <= maxT; t += 5 {
		pic.text(px(t), height-bottom+26, strconv.Itoa(int(t)), 16, anchorMiddle, black)
	}
	for l, name := range []string{"r0", "r1", "r2"} {
		pic.text(plotRight+10, pl(l)+6, name, 16, anchorStart, layerColor)
	}
	pic.line(left, height-bottom, plotRight, height-bottom, black, 2)
	pic.line(left, top, left, height-bottom, black, 2)
	pic.text(left, 24, "One viewer through the impairment relay: estimate, delivered rate (Mbit/s), layer", 16, anchorStart, black)
	pic.text((left+plotRight)/2, height-22, "seconds", 16, anchorMiddle, black)
	// Series: the delivered rate throughout; the estimate and the layer
	// (a step line) where the viewer has one.
	var rate, estimate, layer []point
	for i, s := range ss {
		rate = append(rate, point{px(s.t), py(rates[i] / 1e6)})
		if s.estimate > 0 {
			estimate = append(estimate, point{px(s.t), py(s.estimate / 1e6)})
		} else {
			pic.polyline(estimate, estimateColor, 3)
			estimate = nil
		}
		switch {
		case s.layer < 0:
			pic.polyline(layer, layerColor, 3)
			layer = nil
		case len(layer) > 0:
			layer = append(layer, point{px(s.t), layer[len(layer)-1].y}, point{px(s.t), pl(s.layer)})
		default:
			layer = append(layer, point{px(s.t), pl(s.layer)})
		}
	}
	pic.polyline(rate, rateColor, 2)
	pic.polyline(estimate, estimateColor, 3)
	pic.polyline(layer, layerColor, 3)
	for i, s := range []struct{ name, color string }{{"estimate", estimateColor}, {"delivered", rateColor}, {"layer", layerColor}} {
		x := float64(left + i*160)
		pic.rect(x, 34, 14, 10, s.color)
		pic.text(x+20, 44, s.name, 13, anchorStart, black)
	}
	return pic
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
