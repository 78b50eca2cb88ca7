//go:build !linux

package metrics

// writeOS writes the process_* families that need no Linux interface: the
// start time. CPU, memory and descriptors are read from Linux's /proc and
// getrusage, so elsewhere they are absent rather than wrong.
func (p *Process) writeOS(w *Writer) {
	w.Gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", float64(p.start.UnixNano())/1e9)
}
