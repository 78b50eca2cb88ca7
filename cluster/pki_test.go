package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hayate-sfu/hayate/cluster/clustercert"
)

// testPKI is a cluster CA and its nodes' credential files, for tests.
type testPKI struct {
	t   testing.TB
	dir string
	ca  clustercert.PEMPair
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	ca, err := clustercert.NewCA(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &testPKI{t: t, dir: t.TempDir(), ca: ca}
}

// paths are where name's credential files are.
func (p *testPKI) paths(name string) (caFile, certFile, keyFile string) {
	dir := filepath.Join(p.dir, strings.NewReplacer("/", "_", ":", "_", "@", "_").Replace(name))
	return filepath.Join(dir, "ca.pem"), filepath.Join(dir, "node.pem"), filepath.Join(dir, "node-key.pem")
}

// files writes (or rewrites) name's credential files and returns their paths.
func (p *testPKI) files(name string) (caFile, certFile, keyFile string) {
	p.t.Helper()
	n, err := clustercert.NewNode(p.ca, name, time.Hour)
	if err != nil {
		p.t.Fatal(err)
	}
	caFile, certFile, keyFile = p.paths(name)
	for f, data := range map[string][]byte{caFile: p.ca.Cert, certFile: n.Cert, keyFile: n.Key} {
		replaceFile(p.t, f, data)
	}
	return caFile, certFile, keyFile
}

// creds writes name's files and loads them.
func (p *testPKI) creds(name string) *Credentials {
	p.t.Helper()
	c, err := LoadCredentials(p.files(name))
	if err != nil {
		p.t.Fatal(err)
	}
	return c
}

// replaceFile writes data to path the way an operator should: a new file
// renamed over the old one.
func replaceFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// forTransports runs f over plain loopback and over mutual TLS.
func forTransports(t *testing.T, f func(t *testing.T, tls bool)) {
	t.Run("plain", func(t *testing.T) { f(t, false) })
	t.Run("tls", func(t *testing.T) { f(t, true) })
}
