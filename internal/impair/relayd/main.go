// Command relayd runs an impairment relay (package impair) for tests that
// are not written in Go (e2e/): it prints "relay <addr>" and then obeys
// one command per line on stdin, answering each with one line of JSON:
//
//	server <addr:port>             forward to this server
//	default <up-json> <down-json>  profiles of the flows created from now on
//	down <flow> <json>             a flow's server-to-client profile
//	up <flow> <json>               its client-to-server profile
//	flows                          every flow's counters
//
// Flows are numbered in the order their clients first sent. Profiles are
// impair.Profile in JSON, durations in nanoseconds. It exits when stdin
// closes.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/hayate-sfu/hayate/internal/impair"
)

func main() {
	r, err := impair.New(netip.AddrPort{}, 7)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	defer r.Close()
	fmt.Println("relay", r.Addr())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		fmt.Println(handle(r, strings.Fields(sc.Text())))
	}
}

func handle(r *impair.Relay, f []string) string {
	fail := func(err error) string {
		b, _ := json.Marshal(map[string]string{"error": err.Error()})
		return string(b)
	}
	if len(f) == 0 {
		return fail(fmt.Errorf("empty command"))
	}
	switch f[0] {
	case "server":
		if len(f) != 2 {
			return fail(fmt.Errorf("server <addr>"))
		}
		ap, err := netip.ParseAddrPort(f[1])
		if err != nil {
			return fail(err)
		}
		r.SetServer(ap)
	case "default":
		var up, down impair.Profile
		if len(f) != 3 || json.Unmarshal([]byte(f[1]), &up) != nil || json.Unmarshal([]byte(f[2]), &down) != nil {
			return fail(fmt.Errorf("default <up-json> <down-json>"))
		}
		r.SetDefault(up, down)
	case "down", "up":
		var p impair.Profile
		if len(f) != 3 || json.Unmarshal([]byte(f[2]), &p) != nil {
			return fail(fmt.Errorf("%s <flow> <json>", f[0]))
		}
		i, err := strconv.Atoi(f[1])
		flows := r.Flows()
		if err != nil || i < 0 || i >= len(flows) {
			return fail(fmt.Errorf("no flow %s", f[1]))
		}
		if f[0] == "down" {
			flows[i].SetDown(p)
		} else {
			flows[i].SetUp(p)
		}
	case "flows":
		var out []map[string]any
		for _, fl := range r.Flows() {
			out = append(out, map[string]any{"client": fl.Client.String(), "up": fl.Up(), "down": fl.Down()})
		}
		b, _ := json.Marshal(out)
		return string(b)
	default:
		return fail(fmt.Errorf("unknown command %q", f[0]))
	}
	return `{"ok":true}`
}
