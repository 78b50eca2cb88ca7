package datachan

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// pionLogs routes pion/sctp's logs to slog at debug level: what it reports
// comes from untrusted peers and must not flood the node's log.
type pionLogs struct{ log *slog.Logger }

func (p pionLogs) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{p.log.With("pion", scope)}
}

type pionLogger struct{ log *slog.Logger }

func (l pionLogger) debug(msg string) { l.log.Debug(msg) }

func (l pionLogger) debugf(f string, a ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug(fmt.Sprintf(f, a...))
	}
}

func (l pionLogger) Trace(string)              {}
func (l pionLogger) Tracef(string, ...any)     {}
func (l pionLogger) Debug(msg string)          { l.debug(msg) }
func (l pionLogger) Debugf(f string, a ...any) { l.debugf(f, a...) }
func (l pionLogger) Info(msg string)           { l.debug(msg) }
func (l pionLogger) Infof(f string, a ...any)  { l.debugf(f, a...) }
func (l pionLogger) Warn(msg string)           { l.debug(msg) }
func (l pionLogger) Warnf(f string, a ...any)  { l.debugf(f, a...) }
func (l pionLogger) Error(msg string)          { l.debug(msg) }
func (l pionLogger) Errorf(f string, a ...any) { l.debugf(f, a...) }
