package sdnotify

import (
	"net"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func read(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func TestNotifyPathAndAbstract(t *testing.T) {
	for _, name := range []string{filepath.Join(t.TempDir(), "notify"), "@hayate-test-" + strconv.FormatInt(time.Now().UnixNano(), 36)} {
		c := listen(t, name)
		n := New(name)
		if !n.Enabled() {
			t.Fatal("not enabled")
		}
		if err := n.Notify("READY=1\nSTATUS=serving"); err != nil {
			t.Fatal(err)
		}
		if got := read(t, c); got != "READY=1\nSTATUS=serving" {
			t.Fatalf("%s: got %q", name, got)
		}
	}
}

func TestNoSocket(t *testing.T) {
	n := New("")
	if n.Enabled() || n.Notify("READY=1") != nil {
		t.Fatal("a notifier without socket must do nothing")
	}
	if err := New(filepath.Join(t.TempDir(), "absent")).Notify("READY=1"); err == nil {
		t.Fatal("no error for a missing socket")
	}
}
