// Package pionlog routes the logs of pion modules (pion/sctp, pion/turn) to
// slog at debug level: what they report comes from untrusted peers and must
// not flood the node's log.
package pionlog

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// Factory is a pion logging.LoggerFactory writing to log.
type Factory struct{ Log *slog.Logger }

// NewLogger implements logging.LoggerFactory.
func (f Factory) NewLogger(scope string) logging.LeveledLogger {
	return logger{f.Log.With("pion", scope)}
}

type logger struct{ log *slog.Logger }

func (l logger) debug(msg string) { l.log.Debug(msg) }

func (l logger) debugf(f string, a ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug(fmt.Sprintf(f, a...))
	}
}

func (l logger) Trace(string)              {}
func (l logger) Tracef(string, ...any)     {}
func (l logger) Debug(msg string)          { l.debug(msg) }
func (l logger) Debugf(f string, a ...any) { l.debugf(f, a...) }
func (l logger) Info(msg string)           { l.debug(msg) }
func (l logger) Infof(f string, a ...any)  { l.debugf(f, a...) }
func (l logger) Warn(msg string)           { l.debug(msg) }
func (l logger) Warnf(f string, a ...any)  { l.debugf(f, a...) }
func (l logger) Error(msg string)          { l.debug(msg) }
func (l logger) Errorf(f string, a ...any) { l.debugf(f, a...) }
