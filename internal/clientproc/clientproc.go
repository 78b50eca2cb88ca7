// Package clientproc runs a media client in a process of its own, for tests
// that stop or kill a client (SIGSTOP makes its TCP and UDP go silent
// without any close, which no in-process client can do). The process is the
// test binary run again: its TestMain calls Serve first.
package clientproc

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hayate-sfu/hayate/internal/loadpeer"
	"github.com/hayate-sfu/hayate/internal/poll"
)

// The environment that makes a test binary a client process.
const (
	envURL     = "HAYATE_TEST_CLIENT_URL"
	envChannel = "HAYATE_TEST_CLIENT_CHANNEL"
)

// Serve runs the client when the test binary was started as one (and then
// exits); otherwise it returns at once. Call it first in TestMain.
func Serve() {
	url := os.Getenv(envURL)
	if url == "" {
		return
	}
	os.Exit(run(url, os.Getenv(envChannel)))
}

// run joins channel as a sendrecv client on our own stack (VP8 video, ICE
// consent every 200 ms), prints "READY <connection_id>", and stays until
// its stdin closes or it is killed.
func run(url, channel string) int {
	msg := map[string]any{"type": "connect", "role": "sendrecv", "channel_id": channel, "video": map[string]any{"codec_type": "VP8"}}
	ctx, cancel := context.WithTimeout(context.Background(), poll.Patience)
	defer cancel()
	p, err := loadpeer.Dial(ctx, loadpeer.Options{URL: url, Connect: msg, ConsentInterval: 200 * time.Millisecond})
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	fmt.Println("READY", p.Offer.ConnectionID)
	io.Copy(io.Discard, os.Stdin) // until the parent closes stdin or kills us
	return 0
}

// Start starts a client process joining channel at the signaling URL and
// returns it with its connection_id once it is connected (ICE and DTLS
// up). The test's cleanup kills it.
func Start(t *testing.T, url, channel string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envURL+"="+url, envChannel+"="+channel)
	out, _ := cmd.StdoutPipe()
	stdin, _ := cmd.StdinPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line <- sc.Text()
		}
		close(line)
	}()
	select {
	case l := <-line:
		id, ok := strings.CutPrefix(l, "READY ")
		if !ok {
			t.Fatalf("client process: %s", l)
		}
		return cmd, id
	case <-time.After(poll.Patience):
		t.Fatal("client process never connected")
	}
	return nil, ""
}
