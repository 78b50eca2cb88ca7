package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"strconv"
)

// canvas is an SVG picture being drawn, in pixels from the top left; its
// text is SVG text, set by the viewer's own fonts.
type canvas struct {
	b bytes.Buffer
}

func newCanvas(w, h int) *canvas {
	c := &canvas{}
	fmt.Fprintf(&c.b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="Helvetica, Arial, sans-serif">`+"\n", w, h, w, h)
	c.rect(0, 0, float64(w), float64(h), "#ffffff")
	return c
}

// num formats a coordinate.
func num(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

func (c *canvas) rect(x, y, w, h float64, fill string) {
	fmt.Fprintf(&c.b, `<rect x="%s" y="%s" width="%s" height="%s" fill="%s"/>`+"\n", num(x), num(y), num(w), num(h), fill)
}

func (c *canvas) line(x0, y0, x1, y1 float64, stroke string, width float64) {
	c.polyline([]point{{x0, y0}, {x1, y1}}, stroke, width)
}

// point is a vertex of a polyline.
type point struct{ x, y float64 }

// polyline draws the connected segments through pts (nothing for fewer
// than two).
func (c *canvas) polyline(pts []point, stroke string, width float64) {
	if len(pts) < 2 {
		return
	}
	c.b.WriteString(`<polyline fill="none" stroke-linejoin="round" points="`)
	for i, p := range pts {
		if i > 0 {
			c.b.WriteByte(' ')
		}
		c.b.WriteString(num(p.x) + "," + num(p.y))
	}
	fmt.Fprintf(&c.b, `" stroke="%s" stroke-width="%s"/>`+"\n", stroke, num(width))
}

// Text anchors: where x is on the text.
const (
	anchorStart  = "start"
	anchorMiddle = "middle"
	anchorEnd    = "end"
)

// text writes s with its baseline at y.
func (c *canvas) text(x, y float64, s string, size float64, anchor, fill string) {
	fmt.Fprintf(&c.b, `<text x="%s" y="%s" font-size="%s" text-anchor="%s" fill="%s">`, num(x), num(y), num(size), anchor, fill)
	_ = xml.EscapeText(&c.b, []byte(s)) // a bytes.Buffer does not fail
	c.b.WriteString("</text>\n")
}

// bytes ends the picture and returns it.
func (c *canvas) bytes() []byte {
	c.b.WriteString("</svg>\n")
	return c.b.Bytes()
}
