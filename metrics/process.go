package metrics

import (
	"runtime"
	"runtime/metrics"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
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

	var ru unix.Rusage
	if unix.Getrusage(unix.RUSAGE_SELF, &ru) == nil {
		cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		w.CounterFloat("process_cpu_seconds_total", "Total user and system CPU time spent in seconds.", cpu.Seconds())
	}
	if vsz, rss, ok := p.memory(); ok {
		w.GaugeInt("process_virtual_memory_bytes", "Virtual memory size in bytes.", vsz)
		w.GaugeInt("process_resident_memory_bytes", "Resident memory size in bytes.", rss)
	}
	if n, ok := p.openFDs(); ok {
		w.GaugeInt("process_open_fds", "Number of open file descriptors.", n)
	}
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil {
		w.GaugeInt("process_max_fds", "Maximum number of open file descriptors.", int64(lim.Cur))
	}
	w.Gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.", float64(p.start.UnixNano())/1e9)
}

// memory reads /proc/self/statm (proc(5)): size and resident, in pages.
func (p *Process) memory() (vsz, rss int64, ok bool) {
	fd, err := open(p.statmPath, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return 0, 0, false
	}
	defer unix.Close(fd)
	n, err := unix.Read(fd, p.statm)
	if err != nil || n <= 0 {
		return 0, 0, false
	}
	b := p.statm[:n]
	size, b := parseField(b)
	res, _ := parseField(b)
	page := int64(unix.Getpagesize())
	return size * page, res * page, true
}

func parseField(b []byte) (int64, []byte) {
	for len(b) > 0 && b[0] == ' ' {
		b = b[1:]
	}
	var v int64
	for len(b) > 0 && b[0] >= '0' && b[0] <= '9' {
		v = v*10 + int64(b[0]-'0')
		b = b[1:]
	}
	return v, b
}

// openFDs counts the entries of /proc/self/fd with getdents64 into a reused
// buffer: a node with 10,000 connections has over 10,000 descriptors, and
// reading their names as strings would allocate each.
func (p *Process) openFDs() (int64, bool) {
	fd, err := open(p.fdPath, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return 0, false
	}
	defer unix.Close(fd)
	var count int64
	for {
		n, err := unix.Getdents(fd, p.dirent)
		if err != nil {
			return 0, false
		}
		if n <= 0 {
			break
		}
		// struct linux_dirent64: d_ino u64, d_off s64, d_reclen u16,
		// d_type u8, d_name (getdents64(2)).
		for off := 0; off+19 < n; {
			reclen := int(p.dirent[off+16]) | int(p.dirent[off+17])<<8
			if reclen == 0 {
				break
			}
			name := p.dirent[off+19:]
			if !(name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0))) {
				count++
			}
			off += reclen
		}
	}
	// The descriptor opened to read the directory is not the process's own.
	return count - 1, true
}

// open is openat(2) on a NUL-terminated path; unlike unix.Open it does not
// copy the path to the heap on every call.
func open(path []byte, flags int) (int, error) {
	fd, _, errno := unix.Syscall6(unix.SYS_OPENAT, atFDCWD(), uintptr(unsafe.Pointer(&path[0])), uintptr(flags), 0, 0, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}

// atFDCWD is AT_FDCWD (-100) as the syscall argument.
func atFDCWD() uintptr {
	v := unix.AT_FDCWD
	return uintptr(v)
}
