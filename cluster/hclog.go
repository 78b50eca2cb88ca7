package cluster

import (
	"context"
	"io"
	"log"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// hclogAdapter routes raft's hclog output into the node's *slog.Logger.
// Raft is chatty about normal events (elections, failed appends to a peer
// that is down), so its Trace, Debug and Info go to slog's Debug, Warn to
// Info and Error to Warn: our own code reports what matters to an operator.
type hclogAdapter struct {
	log     *slog.Logger
	name    string
	args    []any
	level   hclog.Level
	repeats *repeats // shared by every adapter derived from one
}

// repeatWindow is how long a raft message logged at info or above is not
// logged again: a dead peer makes raft report the same failure several
// times a second until the node is purged.
const repeatWindow = 10 * time.Second

// repeats remembers when each message was last logged.
type repeats struct {
	mu   sync.Mutex
	last map[string]*repeat
}

type repeat struct {
	at         time.Time
	suppressed int
}

// allow reports whether msg may be logged at now, and how many times it was
// suppressed since it last was.
func (r *repeats) allow(msg string, now time.Time) (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.last[msg]
	if e == nil {
		r.last[msg] = &repeat{at: now}
		return true, 0
	}
	if now.Sub(e.at) < repeatWindow {
		e.suppressed++
		return false, 0
	}
	n := e.suppressed
	e.at, e.suppressed = now, 0
	return true, n
}

var _ hclog.Logger = (*hclogAdapter)(nil)

func newHclog(l *slog.Logger, name string) *hclogAdapter {
	return &hclogAdapter{log: l, name: name, level: hclog.Trace, repeats: &repeats{last: map[string]*repeat{}}}
}

func slogLevel(l hclog.Level) slog.Level {
	switch l {
	case hclog.Warn:
		return slog.LevelInfo
	case hclog.Error:
		return slog.LevelWarn
	default:
		return slog.LevelDebug
	}
}

func (h *hclogAdapter) Log(level hclog.Level, msg string, args ...any) {
	if level == hclog.NoLevel {
		level = hclog.Info
	}
	if level == hclog.Off || level < h.level {
		return
	}
	sl := slogLevel(level)
	ctx := context.Background()
	if !h.log.Enabled(ctx, sl) {
		return
	}
	suppressed := 0
	if sl >= slog.LevelInfo {
		ok, n := h.repeats.allow(msg, time.Now())
		if !ok {
			return
		}
		suppressed = n
	}
	attrs := make([]any, 0, len(h.args)+len(args)+4)
	if h.name != "" {
		attrs = append(attrs, "component", h.name)
	}
	if suppressed > 0 {
		attrs = append(attrs, "repeated_since_last", suppressed)
	}
	attrs = append(attrs, h.args...)
	attrs = append(attrs, args...)
	h.log.Log(ctx, sl, msg, attrs...)
}

func (h *hclogAdapter) Trace(msg string, args ...any) { h.Log(hclog.Trace, msg, args...) }
func (h *hclogAdapter) Debug(msg string, args ...any) { h.Log(hclog.Debug, msg, args...) }
func (h *hclogAdapter) Info(msg string, args ...any)  { h.Log(hclog.Info, msg, args...) }
func (h *hclogAdapter) Warn(msg string, args ...any)  { h.Log(hclog.Warn, msg, args...) }
func (h *hclogAdapter) Error(msg string, args ...any) { h.Log(hclog.Error, msg, args...) }

func (h *hclogAdapter) enabled(l hclog.Level) bool {
	return l >= h.level && h.log.Enabled(context.Background(), slogLevel(l))
}

func (h *hclogAdapter) IsTrace() bool { return h.enabled(hclog.Trace) }
func (h *hclogAdapter) IsDebug() bool { return h.enabled(hclog.Debug) }
func (h *hclogAdapter) IsInfo() bool  { return h.enabled(hclog.Info) }
func (h *hclogAdapter) IsWarn() bool  { return h.enabled(hclog.Warn) }
func (h *hclogAdapter) IsError() bool { return h.enabled(hclog.Error) }

func (h *hclogAdapter) ImpliedArgs() []any { return h.args }

func (h *hclogAdapter) With(args ...any) hclog.Logger {
	n := *h
	n.args = append(append([]any(nil), h.args...), args...)
	return &n
}

func (h *hclogAdapter) Name() string { return h.name }

func (h *hclogAdapter) Named(name string) hclog.Logger {
	n := *h
	if n.name != "" {
		n.name += "." + name
	} else {
		n.name = name
	}
	return &n
}

func (h *hclogAdapter) ResetNamed(name string) hclog.Logger {
	n := *h
	n.name = name
	return &n
}

func (h *hclogAdapter) SetLevel(level hclog.Level) { h.level = level }
func (h *hclogAdapter) GetLevel() hclog.Level      { return h.level }

func (h *hclogAdapter) StandardLogger(opts *hclog.StandardLoggerOptions) *log.Logger {
	return log.New(h.StandardWriter(opts), "", 0)
}

func (h *hclogAdapter) StandardWriter(*hclog.StandardLoggerOptions) io.Writer {
	return hclogWriter{h}
}

// hclogWriter turns lines written to a standard logger into debug records.
type hclogWriter struct{ h *hclogAdapter }

func (w hclogWriter) Write(p []byte) (int, error) {
	w.h.Log(hclog.Debug, strings.TrimSpace(string(p)))
	return len(p), nil
}
