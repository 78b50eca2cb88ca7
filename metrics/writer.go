// Package metrics writes Prometheus's text exposition format (version
// 0.0.4, https://prometheus.io/docs/instrumenting/exposition_formats/)
// into a reused buffer, so that a scrape allocates next to nothing.
//
// A Writer is filled family by family: Family writes the # HELP and # TYPE
// lines, then Sample and its variants write that family's samples. For the
// common case of one unlabelled value, Counter and Gauge do both in one
// line. Names follow Prometheus's conventions
// (https://prometheus.io/docs/practices/naming/): base units, _total on
// counters only, _info for constant info metrics.
package metrics

import (
	"math"
	"net/http"
	"strconv"
	"sync"
)

// Type is a metric family's type in the # TYPE line.
type Type string

// The types Hayate writes.
const (
	CounterType Type = "counter"
	GaugeType   Type = "gauge"
)

// ContentType is the text format's media type.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Writer accumulates one exposition. The zero value is ready to use.
type Writer struct {
	buf []byte
}

// Reset empties the writer and keeps its buffer.
func (w *Writer) Reset() { w.buf = w.buf[:0] }

// Bytes returns the exposition written so far; it is valid until the next
// Reset.
func (w *Writer) Bytes() []byte { return w.buf }

// Family starts a metric family. It panics on a name that is not a valid
// metric name: names are constants in the code, so that is a bug.
func (w *Writer) Family(name, help string, t Type) {
	mustName(name)
	w.buf = append(w.buf, "# HELP "...)
	w.buf = append(w.buf, name...)
	w.buf = append(w.buf, ' ')
	w.buf = appendEscaped(w.buf, help, false)
	w.buf = append(w.buf, "\n# TYPE "...)
	w.buf = append(w.buf, name...)
	w.buf = append(w.buf, ' ')
	w.buf = append(w.buf, t...)
	w.buf = append(w.buf, '\n')
}

// Sample writes one sample of the current family. labels are name, value
// pairs; label values are escaped as the format requires.
func (w *Writer) Sample(name string, v float64, labels ...string) {
	w.head(name, labels)
	w.buf = appendFloat(w.buf, v)
	w.buf = append(w.buf, '\n')
}

// SampleUint writes one sample with an integer value, exactly.
func (w *Writer) SampleUint(name string, v uint64, labels ...string) {
	w.head(name, labels)
	w.buf = strconv.AppendUint(w.buf, v, 10)
	w.buf = append(w.buf, '\n')
}

// SampleBool writes 1 for true and 0 for false.
func (w *Writer) SampleBool(name string, v bool, labels ...string) {
	var n uint64
	if v {
		n = 1
	}
	w.SampleUint(name, n, labels...)
}

// Counter writes a family with one unlabelled counter sample.
func (w *Writer) Counter(name, help string, v uint64) {
	w.Family(name, help, CounterType)
	w.SampleUint(name, v)
}

// CounterFloat writes a family with one unlabelled counter sample that is
// not a whole number (seconds of CPU time, say).
func (w *Writer) CounterFloat(name, help string, v float64) {
	w.Family(name, help, CounterType)
	w.Sample(name, v)
}

// Gauge writes a family with one unlabelled gauge sample.
func (w *Writer) Gauge(name, help string, v float64) {
	w.Family(name, help, GaugeType)
	w.Sample(name, v)
}

// GaugeInt writes a family with one unlabelled integer gauge sample.
func (w *Writer) GaugeInt(name, help string, v int64) {
	w.Family(name, help, GaugeType)
	w.head(name, nil)
	w.buf = strconv.AppendInt(w.buf, v, 10)
	w.buf = append(w.buf, '\n')
}

func (w *Writer) head(name string, labels []string) {
	if len(labels)%2 != 0 {
		panic("metrics: odd number of label strings for " + name)
	}
	w.buf = append(w.buf, name...)
	if len(labels) > 0 {
		w.buf = append(w.buf, '{')
		for i := 0; i < len(labels); i += 2 {
			if i > 0 {
				w.buf = append(w.buf, ',')
			}
			mustLabel(labels[i])
			w.buf = append(w.buf, labels[i]...)
			w.buf = append(w.buf, '=', '"')
			w.buf = appendEscaped(w.buf, labels[i+1], true)
			w.buf = append(w.buf, '"')
		}
		w.buf = append(w.buf, '}')
	}
	w.buf = append(w.buf, ' ')
}

// appendEscaped escapes a HELP text (backslash, newline) or a label value
// (also the double quote), as the text format specifies.
func appendEscaped(b []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, '\\', '\\')
		case c == '\n':
			b = append(b, '\\', 'n')
		case c == '"' && quote:
			b = append(b, '\\', '"')
		default:
			b = append(b, c)
		}
	}
	return b
}

func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case math.IsNaN(v):
		return append(b, "NaN"...)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// mustName panics unless s matches [a-zA-Z_:][a-zA-Z0-9_:]*.
func mustName(s string) {
	if !validName(s, true) {
		panic("metrics: invalid metric name " + strconv.Quote(s))
	}
}

// mustLabel panics unless s matches [a-zA-Z_][a-zA-Z0-9_]* and does not
// start with the reserved "__".
func mustLabel(s string) {
	if !validName(s, false) || (len(s) >= 2 && s[0] == '_' && s[1] == '_') {
		panic("metrics: invalid label name " + strconv.Quote(s))
	}
}

func validName(s string, colon bool) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (colon && c == ':') || (i > 0 && c >= '0' && c <= '9')
		if !ok {
			return false
		}
	}
	return true
}

// Handler serves GET /metrics: collect fills a Writer reused from scrape to
// scrape (scrapes are serialised, which also keeps two concurrent scrapes
// from doubling the work).
func Handler(collect func(*Writer)) http.Handler {
	h := &handler{collect: collect}
	return h
}

type handler struct {
	collect func(*Writer)
	mu      sync.Mutex
	w       Writer
}

func (h *handler) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		rw.Header().Set("Allow", "GET, HEAD")
		http.Error(rw, "use GET", http.StatusMethodNotAllowed)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.w.Reset()
	h.collect(&h.w)
	rw.Header().Set("Content-Type", ContentType)
	rw.Header().Set("Content-Length", strconv.Itoa(len(h.w.buf)))
	if r.Method == http.MethodHead {
		return
	}
	rw.Write(h.w.buf) //nolint:errcheck // the scraper may be gone
}
