package rtpcore

import (
	"log/slog"
	"sort"
	"sync/atomic"
	"time"
)

// Liveness is judged on the node's own listening time, not on the wall
// clock. A connection fails when its peer has sent nothing for
// FailedTimeout while the node was able to receive (RFC 7675 consent
// freshness asks the same of the sender's side: silence it could observe).
// When the node itself stops listening (SIGSTOP, a long GC pause, a
// starved CPU, a receive loop stuck), the gap is not the peers' fault: the
// janitor notices it, records it as a stall interval, logs and counts it.
//
// The receive loops stamp a transport with the wall time at which a batch
// arrived. The janitor measures a peer's silence as the wall time since
// that stamp minus the node's stall time in between (stallLog.silence).
// Only stall time after the stamp is deducted: a peer heard just after a
// stall, and silent since, is judged on its own silence.

// stallThreshold is how late the janitor may wake, or how long a receive
// loop may stay away beyond its receive deadline, before the node counts
// as stalled. Below it, lateness is ordinary scheduling and is not
// deducted.
const stallThreshold = 250 * time.Millisecond

// recvWait is the receive deadline of a shard's loop: an idle loop comes
// back at least this often.
const recvWait = 250 * time.Millisecond

// maxStalls bounds the stall intervals kept. A peer silent since before
// the oldest one kept is judged without the older stalls (it has been
// silent for at least maxStalls stalls: it is gone either way).
const maxStalls = 256

// stallInterval is a span of wall time (ns) in which the node was not
// listening; before is the total stall time of the intervals before it.
type stallInterval struct {
	from, to, before int64
}

// stallLog is the node's stall history. The intervals and the fields
// below them belong to the janitor; stalls and longest are read by Stats.
type stallLog struct {
	// stalls counts node stalls and longest is the longest, in
	// nanoseconds (GetStatsReport: total_node_stalls,
	// longest_node_stall_ms).
	stalls  atomic.Uint64
	longest atomic.Int64

	ivs      []stallInterval // in time order, not overlapping
	lastWake time.Time
	stalled  bool
	since    time.Time // start of the stall in progress
}

// start begins observing at wall time now.
func (l *stallLog) start(now time.Time) { l.lastWake = now }

// stalledBefore is the stall time recorded up to wall time t (ns), counted
// from the oldest interval kept.
func (l *stallLog) stalledBefore(t int64) int64 {
	i := sort.Search(len(l.ivs), func(i int) bool { return l.ivs[i].to > t })
	if i == len(l.ivs) {
		if i == 0 {
			return 0
		}
		last := l.ivs[i-1]
		return last.before + last.to - last.from
	}
	iv := l.ivs[i]
	if t > iv.from {
		return iv.before + t - iv.from
	}
	return iv.before
}

// silence is how long a peer last heard at wall time last (ns) has been
// silent at wall time now, in time the node was listening.
func (l *stallLog) silence(last, now int64) time.Duration {
	return time.Duration(now - last - (l.stalledBefore(now) - l.stalledBefore(last)))
}

// observe is called by the janitor each time it wakes, expecting to have
// slept tick since its last wake. beats are the wall times (ns) at which
// each receive loop last came back from a receive. observe records what
// the node missed since its last wake: the time after the janitor's due
// wake if it woke stallThreshold late, and the time a loop has stayed away
// beyond recvWait if it stayed away stallThreshold longer. It logs the
// start and the end of a stall.
func (l *stallLog) observe(now time.Time, tick time.Duration, beats []int64, log *slog.Logger) {
	from := now // the earliest moment the node stopped listening, if it did
	if late := now.Sub(l.lastWake) - tick; late > stallThreshold {
		from = l.lastWake.Add(tick)
	}
	for _, b := range beats {
		away := time.Unix(0, b).Add(recvWait)
		if now.Sub(away) > stallThreshold && away.Before(from) {
			from = away
		}
	}
	if from.Before(l.lastWake) {
		from = l.lastWake // recorded at an earlier wake
	}
	l.lastWake = now
	if !from.Before(now) {
		if l.stalled {
			l.stalled = false
			log.Warn("node stall ended: peers were not failed for it",
				"stall", now.Sub(l.since).Round(time.Millisecond).String(), "total_node_stalls", l.stalls.Load())
		}
		return
	}
	l.record(from.UnixNano(), now.UnixNano())
	if !l.stalled {
		l.stalled = true
		l.since = from
		l.stalls.Add(1)
		log.Warn("node stalled: not listening, so its peers' silence is not held against them",
			"late", now.Sub(from).Round(time.Millisecond).String(), "total_node_stalls", l.stalls.Load())
	}
	if d := int64(now.Sub(l.since)); d > l.longest.Load() {
		l.longest.Store(d)
	}
}

// record appends the stall interval [from, to), merging it with the last
// one when they touch, and forgets the oldest beyond maxStalls.
func (l *stallLog) record(from, to int64) {
	if n := len(l.ivs); n > 0 {
		last := &l.ivs[n-1]
		if from <= last.to {
			last.to = max(last.to, to)
			return
		}
		l.ivs = append(l.ivs, stallInterval{from: from, to: to, before: last.before + last.to - last.from})
	} else {
		l.ivs = append(l.ivs, stallInterval{from: from, to: to})
	}
	if len(l.ivs) > maxStalls {
		l.ivs = append(l.ivs[:0], l.ivs[len(l.ivs)-maxStalls:]...)
	}
}
