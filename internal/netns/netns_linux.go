package netns

import (
	"errors"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// envTest names the test a child process runs inside its namespace.
const envTest = "HAYATE_NETNS_TEST"

// Isolate runs the calling top-level test again in a child process of the
// test binary, in a new network namespace whose loopback interface is up,
// and reports whether the caller is that child: the test body runs only
// there. In the parent, Isolate fails the test if the child failed (with
// its output) and returns false. env is added to the child's environment.
//
//	func TestDefaults(t *testing.T) {
//		if !netns.Isolate(t) {
//			return
//		}
//		... binds 127.0.0.1:5000 ...
//	}
func Isolate(t *testing.T, env ...string) bool {
	t.Helper()
	if os.Getenv(envTest) == t.Name() {
		if err := loopbackUp(); err != nil {
			t.Fatalf("bringing lo up in the test's network namespace: %v", err)
		}
		return true
	}
	args := []string{"-test.run=^" + regexp.QuoteMeta(t.Name()) + "$", "-test.count=1", "-test.v"}
	if d, ok := t.Deadline(); ok {
		args = append(args, "-test.timeout="+timeUntil(d))
	}
	run := func(flags uintptr, user bool) ([]byte, error) {
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(append(os.Environ(), envTest+"="+t.Name()), env...)
		attr := &syscall.SysProcAttr{Cloneflags: flags}
		if user {
			attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}}
			attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}}
		}
		cmd.SysProcAttr = attr
		return cmd.CombinedOutput()
	}
	out, err := run(syscall.CLONE_NEWNET, false)
	if err != nil && isPermission(err) {
		// Not root: a user namespace owns the network namespace.
		out, err = run(syscall.CLONE_NEWUSER|syscall.CLONE_NEWNET, true)
	}
	if err != nil {
		t.Fatalf("%s in its own network namespace: %v\n%s", t.Name(), err, out)
	}
	if !strings.Contains(string(out), "--- PASS: "+t.Name()) {
		t.Fatalf("%s did not pass in its network namespace:\n%s", t.Name(), out)
	}
	t.Logf("in its own network namespace:\n%s", out)
	return false
}

func isPermission(err error) bool {
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES)
}

// timeUntil is the time left to a test's deadline, less a margin, as a
// -test.timeout value for the child.
func timeUntil(d time.Time) string {
	return max(time.Until(d)-5*time.Second, time.Second).Round(time.Second).String()
}

// loopbackUp sets IFF_UP on lo (a new namespace starts with it down).
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}
