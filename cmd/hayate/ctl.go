package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hayate-sfu/hayate/control"
)

const ctlUsage = `usage: hayate ctl [-api URL] [-token TOKEN] [-json] COMMAND
commands:
  mode get                            the node's effective mode
  mode set MODE                       change it: normal, block_new_session, block_new_connection
  stats                               every counter of GetStatsReport
  connections [CHANNEL]               live connections, of one channel or all
  disconnect CHANNEL [CONNECTION]     close a channel's connections, or one
  cluster nodes                       the cluster's nodes (ListClusterNodes)
  cluster channels                    the cluster's channels and owners (ListClusterChannels)
  drain                               the drain's progress
Tables by default; -json prints the API's answer as JSON, for scripts.
The token (api_token) may also come from the environment variable
HAYATE_API_TOKEN, which keeps it out of the process list.
`

// ctlCommand is one ctl command: the API operation it calls, its body, and
// how its answer is shown as a table.
type ctlCommand struct {
	target string
	body   any
	show   func(w io.Writer, answer []byte) error
}

// ctl is a small client of the node's HTTP API for operators.
func ctl(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hayate ctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, ctlUsage); fs.PrintDefaults() }
	api := fs.String("api", "http://127.0.0.1:3000/", "URL of the node's HTTP API")
	timeout := fs.Duration("timeout", 10*time.Second, "request timeout")
	token := fs.String("token", os.Getenv("HAYATE_API_TOKEN"), "the node's api_token, sent as Authorization: Bearer")
	asJSON := fs.Bool("json", false, "print the API's JSON answer instead of a table")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cmd, err := parseCtl(fs.Args())
	if err != nil {
		fs.Usage()
		return 2
	}
	out, err := call(*api, *token, cmd.target, cmd.body, *timeout)
	if err != nil {
		fmt.Fprintln(stderr, "hayate ctl:", err)
		return 1
	}
	if *asJSON {
		var buf bytes.Buffer
		if json.Indent(&buf, out, "", "  ") != nil {
			buf.Reset()
			buf.Write(out)
		}
		buf.WriteByte('\n')
		stdout.Write(buf.Bytes()) //nolint:errcheck // stdout
		return 0
	}
	if err := cmd.show(stdout, out); err != nil {
		fmt.Fprintf(stderr, "hayate ctl: unexpected answer: %v: %s\n", err, out)
		return 1
	}
	return 0
}

func parseCtl(a []string) (ctlCommand, error) {
	switch {
	case len(a) == 2 && a[0] == "mode" && a[1] == "get":
		return ctlCommand{target: "Sora_20211215.GetMode", show: showMode}, nil
	case len(a) == 3 && a[0] == "mode" && a[1] == "set":
		return ctlCommand{target: "Sora_20211215.ChangeMode", body: map[string]string{"mode": a[2]}, show: showMode}, nil
	case len(a) == 1 && a[0] == "stats":
		return ctlCommand{target: "Sora_20171010.GetStatsReport", show: showStats}, nil
	case len(a) == 1 && a[0] == "connections":
		return ctlCommand{target: "Sora_20201013.ListConnections", show: showConnections}, nil
	case len(a) == 2 && a[0] == "connections":
		return ctlCommand{target: "Sora_20201013.ListChannelConnections", body: map[string]string{"channel_id": a[1]}, show: showConnections}, nil
	case len(a) == 2 && a[0] == "disconnect":
		return ctlCommand{target: "Sora_20151104.DisconnectChannel", body: map[string]string{"channel_id": a[1]}, show: showDisconnected}, nil
	case len(a) == 3 && a[0] == "disconnect":
		return ctlCommand{target: "Sora_20151104.DisconnectConnection", body: map[string]string{"channel_id": a[1], "connection_id": a[2]}, show: showDisconnected}, nil
	case len(a) == 2 && a[0] == "cluster" && a[1] == "nodes":
		return ctlCommand{target: "Sora_20211215.ListClusterNodes", show: showClusterNodes}, nil
	case len(a) == 2 && a[0] == "cluster" && a[1] == "channels":
		return ctlCommand{target: "Sora_20211215.ListClusterChannels", show: showClusterChannels}, nil
	case len(a) == 1 && a[0] == "drain":
		return ctlCommand{target: "Sora_20171010.GetStatsReport", show: showDrain}, nil
	}
	return ctlCommand{}, errUsage
}

func showMode(w io.Writer, answer []byte) error {
	var m struct {
		Mode string `json:"mode"`
	}
	if err := json.Unmarshal(answer, &m); err != nil || m.Mode == "" {
		return errors.New("no mode")
	}
	fmt.Fprintln(w, m.Mode)
	return nil
}

// table writes rows aligned in columns, the first row a header.
func table(w io.Writer, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

// showStats flattens GetStatsReport into sorted "key value" rows (nested
// objects as dotted keys), so that every counter shows and none can be
// forgotten here.
func showStats(w io.Writer, answer []byte) error {
	var v map[string]any
	if err := json.Unmarshal(answer, &v); err != nil {
		return err
	}
	rows := [][]string{{"KEY", "VALUE"}}
	var flat func(prefix string, v any)
	flat = func(prefix string, v any) {
		if m, ok := v.(map[string]any); ok {
			for k, x := range m {
				flat(prefix+k+".", x)
			}
			return
		}
		rows = append(rows, []string{strings.TrimSuffix(prefix, "."), scalar(v)})
	}
	flat("", v)
	slices.SortFunc(rows[1:], func(a, b []string) int { return strings.Compare(a[0], b[0]) })
	table(w, rows)
	return nil
}

func scalar(v any) string {
	switch x := v.(type) {
	case nil:
		return "-"
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	default:
		b, _ := json.Marshal(x)
		return string(b)
	}
}

// connRow is what the connections table shows of a ListConnections entry.
type connRow struct {
	ChannelID    string `json:"channel_id"`
	ConnectionID string `json:"connection_id"`
	ClientID     string `json:"client_id"`
	Role         string `json:"role"`
	Audio        any    `json:"audio"`
	Video        any    `json:"video"`
	Created      int64  `json:"created_time"`
}

func showConnections(w io.Writer, answer []byte) error {
	var conns []connRow
	if err := json.Unmarshal(answer, &conns); err != nil {
		return err
	}
	slices.SortStableFunc(conns, func(a, b connRow) int { return strings.Compare(a.ChannelID, b.ChannelID) })
	rows := [][]string{{"CHANNEL", "CONNECTION", "ROLE", "CLIENT", "AUDIO", "VIDEO", "SINCE"}}
	for _, c := range conns {
		rows = append(rows, []string{c.ChannelID, c.ConnectionID, c.Role, orDash(c.ClientID), codec(c.Audio), codec(c.Video),
			time.UnixMicro(c.Created).UTC().Format(time.RFC3339)})
	}
	table(w, rows)
	fmt.Fprintf(w, "%d connections\n", len(conns))
	return nil
}

// codec shows an audio or video field: {"codec_type": "VP9"} or false.
func codec(v any) string {
	if m, ok := v.(map[string]any); ok {
		if s, ok := m["codec_type"].(string); ok {
			return s
		}
	}
	return "-"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func showDisconnected(w io.Writer, answer []byte) error {
	var r struct {
		ChannelID    string `json:"channel_id"`
		ConnectionID string `json:"connection_id"`
	}
	if err := json.Unmarshal(answer, &r); err != nil || r.ChannelID == "" {
		return errors.New("no channel_id")
	}
	if r.ConnectionID != "" {
		fmt.Fprintf(w, "disconnected connection %s of channel %s\n", r.ConnectionID, r.ChannelID)
	} else {
		fmt.Fprintf(w, "disconnected channel %s\n", r.ChannelID)
	}
	return nil
}

func showClusterNodes(w io.Writer, answer []byte) error {
	var nodes []struct {
		Name        string `json:"cluster_node_name"`
		Mode        string `json:"mode"`
		Connected   bool   `json:"connected"`
		Connections int    `json:"connections"`
		Epoch       uint64 `json:"epoch"`
		Temporary   bool   `json:"temporary_node"`
		Signaling   string `json:"cluster_signaling_url"`
	}
	if err := json.Unmarshal(answer, &nodes); err != nil {
		return err
	}
	rows := [][]string{{"NODE", "MODE", "CONNECTED", "CONNECTIONS", "EPOCH", "TYPE", "SIGNALING"}}
	for _, n := range nodes {
		typ := "regular"
		if n.Temporary {
			typ = "temporary"
		}
		rows = append(rows, []string{n.Name, n.Mode, strconv.FormatBool(n.Connected), strconv.Itoa(n.Connections),
			strconv.FormatUint(n.Epoch, 10), typ, orDash(n.Signaling)})
	}
	table(w, rows)
	return nil
}

func showClusterChannels(w io.Writer, answer []byte) error {
	var chans []struct {
		ChannelID string `json:"channel_id"`
		Owner     string `json:"cluster_node_name"`
		Epoch     uint64 `json:"epoch"`
		Claim     uint64 `json:"claim_index"`
	}
	if err := json.Unmarshal(answer, &chans); err != nil {
		return err
	}
	rows := [][]string{{"CHANNEL", "OWNER", "EPOCH", "CLAIM_INDEX"}}
	for _, c := range chans {
		rows = append(rows, []string{c.ChannelID, c.Owner, strconv.FormatUint(c.Epoch, 10), strconv.FormatUint(c.Claim, 10)})
	}
	table(w, rows)
	fmt.Fprintf(w, "%d channels\n", len(chans))
	return nil
}

func showDrain(w io.Writer, answer []byte) error {
	var r struct {
		Mode  string               `json:"mode"`
		Ready bool                 `json:"ready"`
		Drain *control.DrainStatus `json:"drain"`
	}
	if err := json.Unmarshal(answer, &r); err != nil || r.Drain == nil {
		return errors.New("no drain object")
	}
	d := r.Drain
	if !d.Active {
		fmt.Fprintf(w, "no drain: mode %s, ready %v, %d connections, %d sessions\n", r.Mode, r.Ready, d.Connections, d.Sessions)
		return nil
	}
	rows := [][]string{
		{"reason", d.Reason},
		{"mode", r.Mode},
		{"connections", fmt.Sprintf("%d left of %d (%s drained)", d.Connections, d.ConnectionsAtStart, percent(d.ConnectionsAtStart-d.Connections, d.ConnectionsAtStart))},
		{"sessions", fmt.Sprintf("%d left of %d", d.Sessions, d.SessionsAtStart)},
	}
	if d.StartedAt != nil {
		rows = append(rows, []string{"started", d.StartedAt.UTC().Format(time.RFC3339) + " (" + time.Since(*d.StartedAt).Round(time.Second).String() + " ago)"})
	}
	if d.Deadline != nil {
		rows = append(rows, []string{"deadline", d.Deadline.UTC().Format(time.RFC3339) + " (in " + max(time.Until(*d.Deadline), 0).Round(time.Second).String() + ")"})
	}
	table(w, rows)
	return nil
}

func percent(part, whole int) string {
	if whole <= 0 {
		return "100%"
	}
	return strconv.Itoa(max(part, 0)*100/whole) + "%"
}

// call posts one API operation and returns the body of a 2xx answer; any
// other answer becomes an error carrying its error_type.
func call(url, token, target string, body any, timeout time.Duration) ([]byte, error) {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return nil, err
		}
	}
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Sora-Target", target)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := (&http.Client{Timeout: timeout}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Type    string `json:"error_type"`
			Message string `json:"message"`
		}
		_ = json.Unmarshal(data, &e)
		return nil, fmt.Errorf("%s: HTTP %d %s: %s", target, resp.StatusCode, e.Type, e.Message)
	}
	return data, nil
}
