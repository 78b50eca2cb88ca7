package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

const ctlUsage = `usage: hayate ctl [-api URL] [-token TOKEN] mode get
       hayate ctl [-api URL] [-token TOKEN] mode set normal|block_new_session|block_new_connection
The token (api_token) may also come from the environment variable HAYATE_API_TOKEN,
which keeps it out of the process list.
`

// ctl is a small client of the node's HTTP API for operators.
func ctl(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hayate ctl", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, ctlUsage); fs.PrintDefaults() }
	api := fs.String("api", "http://127.0.0.1:3000/", "URL of the node's HTTP API")
	timeout := fs.Duration("timeout", 10*time.Second, "request timeout")
	token := fs.String("token", os.Getenv("HAYATE_API_TOKEN"), "the node's api_token, sent as Authorization: Bearer")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	rest := fs.Args()
	var target string
	var body any
	switch {
	case len(rest) == 2 && rest[0] == "mode" && rest[1] == "get":
		target = "Sora_20211215.GetMode"
	case len(rest) == 3 && rest[0] == "mode" && rest[1] == "set":
		target, body = "Sora_20211215.ChangeMode", map[string]string{"mode": rest[2]}
	default:
		fs.Usage()
		return 2
	}
	out, err := call(*api, *token, target, body, *timeout)
	if err != nil {
		fmt.Fprintln(stderr, "hayate ctl:", err)
		return 1
	}
	var m struct {
		Mode string `json:"mode"`
	}
	if json.Unmarshal(out, &m) != nil || m.Mode == "" {
		fmt.Fprintf(stderr, "hayate ctl: unexpected answer %s\n", out)
		return 1
	}
	fmt.Fprintln(stdout, m.Mode)
	return 0
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
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
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
