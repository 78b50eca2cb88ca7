// Package promtest runs Debian's prometheus package in tests: promtool's
// check of an exposition, and a real Prometheus server scraping a target on
// loopback. `make test` installs the package; without it the tests fail
// with a message saying so (they are never skipped).
package promtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"
)

func tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install Debian's prometheus package (make test does: apt-get install prometheus)", name)
	}
	return p
}

// Check runs `promtool check metrics` on an exposition and fails the test
// with promtool's complaints, lint problems included.
func Check(t testing.TB, exposition []byte) {
	t.Helper()
	cmd := exec.Command(tool(t, "promtool"), "check", "metrics")
	cmd.Stdin = bytes.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// Server is a running Prometheus server.
type Server struct {
	URL  string // http://127.0.0.1:port
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  bytes.Buffer
	done chan struct{}
}

var listenRE = regexp.MustCompile(`msg="Listening on" address=(\S+)`)

// Start runs Prometheus on a free loopback port with a temporary data
// directory, scraping target (host:port) at path every second as job
// "hayate", with a bearer token when token is not empty. It is stopped when
// the test ends.
func Start(t testing.TB, target, path, token string) *Server {
	t.Helper()
	bin := tool(t, "prometheus")
	dir := t.TempDir()
	auth := ""
	if token != "" {
		if err := os.WriteFile(filepath.Join(dir, "token"), []byte(token), 0o600); err != nil {
			t.Fatal(err)
		}
		auth = "    authorization:\n      credentials_file: " + filepath.Join(dir, "token") + "\n"
	}
	conf := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
scrape_configs:
  - job_name: hayate
    metrics_path: %s
    static_configs:
      - targets: [%q]
%s`, path, target, auth)
	confPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	s := &Server{done: make(chan struct{})}
	s.cmd = exec.Command(bin, "--config.file="+confPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address=127.0.0.1:0", "--log.level=info")
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			s.mu.Lock()
			s.log.WriteString(line + "\n")
			s.mu.Unlock()
			if m := listenRE.FindStringSubmatch(line); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		_ = s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		<-s.done
		if t.Failed() {
			t.Logf("prometheus log:\n%s", s.Log())
		}
	})
	select {
	case a := <-addr:
		s.URL = "http://" + a
	case <-s.done:
		t.Fatalf("prometheus exited before listening:\n%s", s.Log())
	case <-time.After(30 * time.Second):
		t.Fatalf("prometheus did not listen within 30 s:\n%s", s.Log())
	}
	return s
}

// Log returns what Prometheus logged.
func (s *Server) Log() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// Sample is one series of an instant query's result.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Query runs an instant query through Prometheus's HTTP API.
func (s *Server) Query(expr string) ([]Sample, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/api/v1/query?query="+url.QueryEscape(expr), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("query %q: %w: %s", expr, err, body)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", expr, r.Error)
	}
	out := make([]Sample, 0, len(r.Data.Result))
	for _, res := range r.Data.Result {
		str, _ := res.Value[1].(string)
		v, err := strconv.ParseFloat(str, 64)
		if err != nil {
			return nil, fmt.Errorf("query %q: value %v", expr, res.Value[1])
		}
		out = append(out, Sample{Labels: res.Metric, Value: v})
	}
	return out, nil
}

// Value runs a query that must return exactly one series and returns its
// value; ok is false when it returns none or several.
func (s *Server) Value(expr string) (float64, bool) {
	r, err := s.Query(expr)
	if err != nil || len(r) != 1 {
		return 0, false
	}
	return r[0].Value, true
}
