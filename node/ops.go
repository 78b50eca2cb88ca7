package node

import (
	"net/http"
	"time"

	"github.com/hayate-sfu/hayate/control"
	"github.com/hayate-sfu/hayate/metrics"
	"github.com/hayate-sfu/hayate/mode"
	"github.com/hayate-sfu/hayate/statuspage"
)

// What an operator runs the node with besides the API: readiness, the
// drain's progress, /metrics and the status page.

// Drain reasons.
const (
	// DrainShutdown is the drain SIGTERM starts (Drain).
	DrainShutdown = "shutdown"
	// DrainOperator is a drain the operator starts by putting the node in a
	// block mode (ChangeMode or initial_mode); it ends when the operator
	// mode returns to normal.
	DrainOperator = "operator"
)

// drainRecord is the drain under way; guarded by Node.healthMu.
type drainRecord struct {
	reason            string // "" when none
	started, deadline time.Time
	conns, sessions   int
}

// DrainStatus returns the drain's progress.
func (n *Node) DrainStatus() control.DrainStatus {
	n.healthMu.Lock()
	d := n.drain
	n.healthMu.Unlock()
	st := control.DrainStatus{Active: d.reason != "", Reason: d.reason, ConnectionsAtStart: d.conns, SessionsAtStart: d.sessions,
		Connections: n.hub.Connections(), Sessions: n.hub.Sessions()}
	if st.Active {
		st.StartedAt = &d.started
		if !d.deadline.IsZero() {
			st.Deadline = &d.deadline
		}
	}
	return st
}

// startDrainLocked records a drain beginning now; healthMu held.
func (n *Node) startDrainLocked(reason string, timeout time.Duration) {
	now := time.Now()
	n.drain = drainRecord{reason: reason, started: now, conns: n.hub.Connections(), sessions: n.hub.Sessions()}
	if reason == DrainShutdown {
		n.drain.deadline = now.Add(timeout)
	}
}

// operatorModeChanged starts an operator drain when the operator puts the
// node in a block mode, and ends it when the operator returns to normal.
func (n *Node) operatorModeChanged() {
	n.healthMu.Lock()
	defer n.healthMu.Unlock()
	blocked := n.word.Operator().Blocking()
	switch {
	case blocked && n.drain.reason == "":
		n.startDrainLocked(DrainOperator, 0)
	case !blocked && n.drain.reason == DrainOperator:
		n.drain = drainRecord{}
	}
}

// Ready says whether this node should get new connections, and if not, why:
// not while the effective mode blocks (read from the mode word that
// admission reads, so /readyz changes with ChangeMode and with a drain's
// start), nor in a cluster while the node holds no lease.
func (n *Node) Ready() (bool, string) {
	m := n.word.Load()
	if m != mode.Normal {
		n.healthMu.Lock()
		reason := n.drain.reason
		n.healthMu.Unlock()
		if reason == DrainShutdown {
			return false, "draining for shutdown"
		}
	}
	if n.cl != nil {
		if held, _ := n.cl.c.Lease(); !held {
			return false, "no cluster lease"
		}
	}
	if m != mode.Normal {
		return false, "mode " + m.String()
	}
	return true, ""
}

// apiHandler is the API port's handler: the API, /metrics, /healthz,
// /readyz, the status page and (debug_pprof) the profiles.
func (n *Node) apiHandler(api *control.API) http.Handler {
	proc := metrics.NewProcess(time.Now())
	return api.Handler(control.Ops{
		Metrics: metrics.Handler(func(w *metrics.Writer) { n.WriteMetrics(w); proc.Write(w) }),
		Ready:   n.Ready,
		Status:  statuspage.Handler(),
		Pprof:   n.cfg.DebugPprof,
	})
}

// signalingHandler is the signaling port's handler: /signaling, and
// /healthz and /readyz for the load balancer in front of it.
func (n *Node) signalingHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/", n.hub)
	control.Health(mux, n.Ready)
	return mux
}
