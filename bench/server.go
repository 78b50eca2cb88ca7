//go:build linux

// Package bench is Hayate's load generator: it drives a real server process
// (the hayate binary, or the pion baseline in bench/baseline) over loopback
// with clients on Hayate's own stack (package loadpeer), and measures the
// server alone: its CPU time from /proc/PID/stat, its memory from
// /proc/PID/status, its allocations from GetStatsReport. The benchmarks are
// in this package's tests: go test -bench . ./bench/
package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Server is a server process under test.
type Server struct {
	Name      string
	cmd       *exec.Cmd
	Signaling string // ws://host:port/signaling
	API       string // http://host:port/ (Hayate only)
	mu        sync.Mutex
	log       bytes.Buffer
	done      chan struct{}
	err       error
}

// Build compiles a main package of this module into dir and returns the
// binary's path.
func Build(dir, pkg, name string) (string, error) {
	out := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", out, pkg)
	cmd.Dir = moduleRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return out, nil
}

func moduleRoot() string {
	dir, _ := os.Getwd()
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
	}
	return dir
}

// Limits pin a server: CPUs for taskset (empty: none) and GOMAXPROCS (0:
// unset); Nice, when not 0, runs it under nice(1) with that niceness.
type Limits struct {
	CPUs       string
	GOMAXPROCS int
	Nice       int
}

var readyLine = regexp.MustCompile(`(?:msg="hayate ready" signaling=(\S+) api=(\S+))|(?:baseline ready signaling=(\S+))`)

// Start runs binary with args under limits and waits for its ready line.
func Start(name, binary string, lim Limits, args ...string) (*Server, error) {
	argv := append([]string{binary}, args...)
	if lim.Nice != 0 {
		argv = append([]string{"nice", "-n", strconv.Itoa(lim.Nice)}, argv...)
	}
	if lim.CPUs != "" {
		argv = append([]string{"taskset", "-c", lim.CPUs}, argv...)
	}
	s := &Server{Name: name, cmd: exec.Command(argv[0], argv[1:]...), done: make(chan struct{})}
	s.cmd.Env = os.Environ()
	if lim.GOMAXPROCS > 0 {
		s.cmd.Env = append(s.cmd.Env, "GOMAXPROCS="+strconv.Itoa(lim.GOMAXPROCS))
	}
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	ready := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			if s.log.Len() < 1<<20 {
				s.log.WriteString(line + "\n")
			}
			s.mu.Unlock()
			if m := readyLine.FindStringSubmatch(line); m != nil {
				select {
				case ready <- m:
				default:
				}
			}
		}
		s.err = s.cmd.Wait()
		close(s.done)
	}()
	select {
	case m := <-ready:
		if m[1] != "" {
			s.Signaling, s.API = "ws://"+m[1]+"/signaling", "http://"+m[2]+"/"
		} else {
			s.Signaling = "ws://" + m[3] + "/signaling"
		}
		return s, nil
	case <-s.done:
		return nil, fmt.Errorf("%s exited before ready: %v\n%s", name, s.err, s.Log())
	case <-time.After(15 * time.Second):
		s.Kill()
		return nil, fmt.Errorf("%s: no ready line\n%s", name, s.Log())
	}
}

// Log returns what the server printed.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// PID is the process id (of the server itself, not of taskset or nice, which exec it).
func (s *Server) PID() int { return s.cmd.Process.Pid }

// clockTick is USER_HZ, the unit of /proc/PID/stat times (100 on Linux).
const clockTick = 100

// CPUTime is the process's CPU time in nanoseconds: the sum of its
// threads' run time from /proc/PID/task/*/schedstat (ns resolution; Go's
// threads live as long as the process). It falls back to utime+stime from
// /proc/PID/stat, which counts in 10 ms ticks.
func (s *Server) CPUTime() (time.Duration, error) {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", s.PID()))
	if err == nil {
		var total int64
		for _, t := range tasks {
			b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", s.PID(), t.Name()))
			if err != nil {
				continue
			}
			f := strings.Fields(string(b))
			if len(f) > 0 {
				v, _ := strconv.ParseInt(f[0], 10, 64)
				total += v
			}
		}
		if total > 0 {
			return time.Duration(total), nil
		}
	}
	return s.statCPUTime()
}

// ThreadTimes are, per thread of the server (by thread id), the time it
// ran and the time it waited on a run queue, runnable but not running
// (/proc/PID/task/*/schedstat, in ns).
func (s *Server) ThreadTimes() map[string][2]time.Duration {
	out := map[string][2]time.Duration{}
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", s.PID()))
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/schedstat", s.PID(), t.Name()))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) < 2 {
			continue
		}
		run, _ := strconv.ParseInt(f[0], 10, 64)
		wait, _ := strconv.ParseInt(f[1], 10, 64)
		out[t.Name()] = [2]time.Duration{time.Duration(run), time.Duration(wait)}
	}
	return out
}

// statCPUTime is utime+stime from /proc/PID/stat.
func (s *Server) statCPUTime() (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.PID()))
	if err != nil {
		return 0, err
	}
	// Fields after the ")" that closes the command name: state is field 3,
	// utime field 14, stime field 15 (proc(5)).
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("bench: short /proc stat")
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / clockTick, nil
}

// RSS is the process's resident set size in bytes.
func (s *Server) RSS() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.PID()))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10, nil
		}
	}
	return 0, errors.New("bench: no VmRSS")
}

// Stats calls Hayate's GetStatsReport.
func (s *Server) Stats() (map[string]any, error) {
	if s.API == "" {
		return nil, errors.New("bench: no API")
	}
	req, _ := http.NewRequest(http.MethodPost, s.API, nil)
	req.Header.Set("x-sora-target", "Sora_20171010.GetStatsReport")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// counters reads the GetStatsReport counters a window reports (Hayate
// only; empty for a server without the API).
func (s *Server) counters() map[string]float64 {
	out := map[string]float64{}
	m, err := s.Stats()
	if err != nil {
		return out
	}
	rt, _ := m["runtime"].(map[string]any)
	md, _ := m["media"].(map[string]any)
	f := func(src map[string]any, k string) float64 { v, _ := src[k].(float64); return v }
	out["mallocs"] = f(rt, "total_mallocs")
	out["recv_calls"] = f(md, "total_receive_calls")
	out["packets_in"] = f(md, "total_received_packets")
	out["send_calls"] = f(md, "total_send_calls")
	out["send_messages"] = f(md, "total_send_messages")
	out["packets_out"] = f(md, "total_sent_packets")
	out["handed_off"] = f(md, "total_handed_off_rtp")
	dropped, _ := md["dropped"].(map[string]any)
	out["handoff_full"] = f(dropped, "handoff_full")
	out["receive_buffer_full"] = f(dropped, "receive_buffer_full")
	// Drops on the way to TURN and ICE-TCP viewers: the core's links
	// and the TURN allocations' queues.
	lk, _ := md["links"].(map[string]any)
	out["link_queue_full"] = f(lk, "total_dropped_queue_full")
	tn, _ := m["turn"].(map[string]any)
	dr, _ := tn["dropped"].(map[string]any)
	out["turn_queue_full"] = f(dr, "queue_full")
	it, _ := m["ice_tcp"].(map[string]any)
	out["ice_tcp_queue_full"] = f(it, "total_dropped_queue_full")
	return out
}

// Mallocs is the server's cumulative allocation count (Hayate only).
func (s *Server) Mallocs() (float64, error) {
	m, err := s.Stats()
	if err != nil {
		return 0, err
	}
	rt, _ := m["runtime"].(map[string]any)
	v, _ := rt["total_mallocs"].(float64)
	return v, nil
}

// Stop sends SIGTERM and waits (up to d) for the exit.
func (s *Server) Stop(d time.Duration) error {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return nil
	case <-time.After(d):
		s.Kill()
		return fmt.Errorf("%s did not exit within %v", s.Name, d)
	}
}

// Kill stops the process at once.
func (s *Server) Kill() {
	_ = s.cmd.Process.Kill()
	<-s.done
}

// NiceSelf sets the niceness of every thread of this process (new threads
// inherit it from the thread that makes them).
func NiceSelf(n int) error {
	return eachThread(func(tid int) error { return unix.Setpriority(unix.PRIO_PROCESS, tid, n) })
}

// PinSelf restricts every thread of this process to cpus (new threads
// inherit it), so the load generator does not share the server's core.
func PinSelf(cpus ...int) error {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	return eachThread(func(tid int) error { return unix.SchedSetaffinity(tid, &set) })
}

// eachThread calls f with the id of every thread of this process.
func eachThread(f func(tid int) error) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := f(tid); err != nil {
			return err
		}
	}
	return nil
}
