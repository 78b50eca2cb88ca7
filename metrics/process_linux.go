package metrics

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// writeOS writes the process_* families Linux tells: CPU time, memory,
// descriptors and their limit, and the start time.
func (p *Process) writeOS(w *Writer) {
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
