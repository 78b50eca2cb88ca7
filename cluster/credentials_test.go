package cluster

import (
	"errors"
	"testing"
	"time"

	"github.com/hayate-sfu/hayate/cluster/clustercert"
)

func TestLoadCredentials(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	ca, cert, key := pki.files("node-1@127.0.0.1:5690")
	c, err := LoadCredentials(ca, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	if c.Name() != "node-1@127.0.0.1:5690" {
		t.Fatalf("Name = %q", c.Name())
	}
	other := newTestPKI(t)
	otherCA, _, _ := other.files("x")
	for what, files := range map[string][3]string{
		"a certificate of another CA": {otherCA, cert, key},
		"a node certificate as CA":    {cert, cert, key},
		"a key of another node":       {ca, cert, func() string { _, _, k := pki.files("y"); return k }()},
		"a missing file":              {ca, cert, key + ".missing"},
	} {
		if _, err := LoadCredentials(files[0], files[1], files[2]); !errors.Is(err, ErrBadCredentials) {
			t.Errorf("%s: %v, want ErrBadCredentials", what, err)
		}
	}
}

// TestCredentialsReload: replaced files are used from the next handshake;
// a half-done or wrong replacement keeps the previous credentials and is
// reported once.
func TestCredentialsReload(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	ca, cert, key := pki.files("n")
	c, err := LoadCredentials(ca, cert, key)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := c.current()
	next, err := clustercert.NewNode(pki.ca, "n", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	replaceFile(t, key, next.Key) // the certificate does not match it yet
	if id, err := c.current(); id != first || !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("half-replaced: %v %v, want the old credentials and an error", id == first, err)
	}
	if id, err := c.current(); id != first || err != nil {
		t.Fatalf("half-replaced again: %v %v, want the old credentials, reported once", id == first, err)
	}
	replaceFile(t, cert, next.Cert)
	id, err := c.current()
	if err != nil || id == first || id.cert.Leaf.SerialNumber.Cmp(first.cert.Leaf.SerialNumber) == 0 {
		t.Fatalf("after replacement: %v, new certificate in use %v", err, id != first)
	}
	renamed, _ := clustercert.NewNode(pki.ca, "someone-else", time.Hour)
	replaceFile(t, key, renamed.Key)
	replaceFile(t, cert, renamed.Cert)
	if id2, err := c.current(); id2 != id || !errors.Is(err, ErrBadCredentials) {
		t.Fatalf("a certificate of another name: %v, kept %v", err, id2 == id)
	}
}
