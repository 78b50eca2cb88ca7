package rtpcore

import (
	"log/slog"
	"sync/atomic"
	"time"
)

// Liveness is judged on the node's own listening time, not on the wall
// clock. A connection fails when its peer has sent nothing for
// FailedTimeout while the node was able to receive (RFC 7675 consent
// freshness asks the same of the sender's side: silence it could observe).
// When the node itself stops listening (SIGSTOP, a long GC pause, a
// starved CPU, a receive loop stuck), the gap is not the peers' fault: the
// janitor notices it and credits it to every connection, counting and
// logging a node stall instead.
//
// The liveness clock is wall time minus the stall time credited so far.
// The receive loops stamp a transport with it when a batch arrives; the
// janitor compares that stamp with the clock's present value. A stall
// credited after the fact (the janitor learns of it when it wakes) only
// ever makes a silence look shorter, never longer.

// stallThreshold is how late the janitor may wake, or how long a receive
// loop may stay away beyond its receive deadline, before the node counts
// as stalled. Below it, lateness is ordinary scheduling and is not
// credited.
const stallThreshold = 250 * time.Millisecond

// recvWait is the receive deadline of a shard's loop: an idle loop comes
// back at least this often.
const recvWait = 250 * time.Millisecond

// liveClock is the liveness clock. credit is read by the receive loops;
// the other fields belong to the janitor.
type liveClock struct {
	// credit is the node stall time credited so far, in nanoseconds.
	credit atomic.Int64
	// stalls counts node stalls and longest is the longest, in
	// nanoseconds (GetStatsReport: total_node_stalls,
	// longest_node_stall_ms).
	stalls  atomic.Uint64
	longest atomic.Int64

	lastWake time.Time
	stalled  bool
	since    time.Time // start of the stall in progress
}

// at is the liveness clock's value at wall time wall (ns since the epoch).
func (c *liveClock) at(wall int64) int64 { return wall - c.credit.Load() }

// now is the liveness clock's value now.
func (c *liveClock) now() int64 { return c.at(time.Now().UnixNano()) }

// start begins observing at wall time now.
func (c *liveClock) start(now time.Time) { c.lastWake = now }

// observe is called by the janitor each time it wakes, expecting to have
// slept tick since its last wake. beats are the wall times (ns) at which
// each receive loop last came back from a receive. observe credits what
// the node missed since its last wake: the time after the janitor's due
// wake if it woke stallThreshold late, and the time a loop has stayed away
// beyond recvWait if it stayed away stallThreshold longer. It logs the
// start and the end of a stall.
func (c *liveClock) observe(now time.Time, tick time.Duration, beats []int64, log *slog.Logger) {
	from := now // the earliest moment the node stopped listening, if it did
	if late := now.Sub(c.lastWake) - tick; late > stallThreshold {
		from = c.lastWake.Add(tick)
	}
	for _, b := range beats {
		away := time.Unix(0, b).Add(recvWait)
		if now.Sub(away) > stallThreshold && away.Before(from) {
			from = away
		}
	}
	if from.Before(c.lastWake) {
		from = c.lastWake // credited at an earlier wake
	}
	c.lastWake = now
	if !from.Before(now) {
		if c.stalled {
			c.stalled = false
			log.Warn("node stall ended: peers were not failed for it",
				"stall", now.Sub(c.since).Round(time.Millisecond).String(), "total_node_stalls", c.stalls.Load())
		}
		return
	}
	c.credit.Add(int64(now.Sub(from)))
	if !c.stalled {
		c.stalled = true
		c.since = from
		c.stalls.Add(1)
		log.Warn("node stalled: not listening, so its peers' silence is not held against them",
			"late", now.Sub(from).Round(time.Millisecond).String(), "total_node_stalls", c.stalls.Load())
	}
	if d := int64(now.Sub(c.since)); d > c.longest.Load() {
		c.longest.Store(d)
	}
}
