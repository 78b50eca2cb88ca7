package metrics

import (
	"runtime"
	"runtime/metrics"
	"time"
)

// Process writes the process_* and go_* families that Prometheus's own
// client libraries export, under the same names, so that the usual
// dashboards for Go services work. It reads the kernel and the Go runtime
// without allocating (runtime/metrics, not runtime.ReadMemStats, so a
// scrape does not stop the world). It is not safe for concurrent use;
// Handler serialises scrapes.
type Process struct {
	start   time.Time
	samples []metrics.Sample
	dirent  []byte
	statm   []byte
	// NUL-terminated paths, built once.
	statmPath, fdPath []byte
}

// The runtime/metrics keys read, in the order of Process.samples.
const (
	rmGoroutines = iota
	rmHeapObjects
	rmTotalMemory
	rmAllocs
	rmTinyAllocs
	rmFrees
	rmGCCycles
	rmGOMAXPROCS
	rmCount
)

// NewProcess returns the collector; start is the process's start time.
func NewProcess(start time.Time) *Process {
	p := &Process{start: start, samples: make([]metrics.Sample, rmCount), dirent: make([]byte, 16<<10), statm: make([]byte, 128),
		statmPath: append([]byte("/proc/self/statm"), 0), fdPath: append([]byte("/proc/self/fd"), 0)}
	for i, name := range [rmCount]string{
		rmGoroutines:  "/sched/goroutines:goroutines",
		rmHeapObjects: "/memory/classes/heap/objects:bytes",
		rmTotalMemory: "/memory/classes/total:bytes",
		rmAllocs:      "/gc/heap/allocs:objects",
		rmTinyAllocs:  "/gc/heap/tiny/allocs:objects",
		rmFrees:       "/gc/heap/frees:objects",
		rmGCCycles:    "/gc/cycles/total:gc-cycles",
		rmGOMAXPROCS:  "/sched/gomaxprocs:threads",
	} {
		p.samples[i].Name = name
	}
	return p
}

// Write reads the process and the runtime and writes their families.
func (p *Process) Write(w *Writer) {
	metrics.Read(p.samples)
	u := func(i int) uint64 {
		if p.samples[i].Value.Kind() != metrics.KindUint64 {
			return 0
		}
		return p.samples[i].Value.Uint64()
	}
	w.Family("go_info", "Information about the Go environment.", GaugeType)
	w.SampleUint("go_info", 1, "version", runtime.Version())
	w.GaugeInt("go_goroutines", "Number of goroutines that currently exist.", int64(u(rmGoroutines)))
	w.GaugeInt("go_sched_gomaxprocs_threads", "The current runtime.GOMAXPROCS setting.", int64(u(rmGOMAXPROCS)))
	w.GaugeInt("go_memstats_heap_alloc_bytes", "Number of heap bytes allocated and still in use.", int64(u(rmHeapObjects)))
	w.GaugeInt("go_memstats_sys_bytes", "Number of bytes obtained from the system.", int64(u(rmTotalMemory)))
	w.Counter("go_memstats_mallocs_total", "Total number of heap objects allocated.", u(rmAllocs)+u(rmTinyAllocs))
	w.Counter("go_memstats_frees_total", "Total number of heap objects freed.", u(rmFrees)+u(rmTinyAllocs))
	w.Counter("go_gc_cycles_total", "Number of completed GC cycles.", u(rmGCCycles))

	p.writeOS(w)
}
