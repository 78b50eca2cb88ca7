package clustercert

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestCANodeChain(t *testing.T) {
	dir := t.TempDir()
	caDir, nodeDir := filepath.Join(dir, "ca"), filepath.Join(dir, "n1")
	if err := WriteCA(caDir, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := WriteNode(caDir, "hayate-1@10.0.0.1:5690", nodeDir, time.Hour); err != nil {
		t.Fatal(err)
	}
	kp, err := tls.LoadX509KeyPair(filepath.Join(nodeDir, NodeFile), filepath.Join(nodeDir, NodeKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	caPEM, _ := os.ReadFile(filepath.Join(nodeDir, CAFile))
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("no CA in the node directory")
	}
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := kp.Leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
			t.Fatalf("usage %v: %v", u, err)
		}
	}
	if kp.Leaf.Subject.CommonName != "hayate-1@10.0.0.1:5690" {
		t.Fatalf("CN %q", kp.Leaf.Subject.CommonName)
	}
	if _, err := os.Stat(filepath.Join(nodeDir, CAKeyFile)); !os.IsNotExist(err) {
		t.Fatal("the CA key was copied into the node directory")
	}
	for _, f := range []string{filepath.Join(caDir, CAKeyFile), filepath.Join(nodeDir, NodeKeyFile)} {
		if st, _ := os.Stat(f); st.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v", f, st.Mode().Perm())
		}
	}
	if err := WriteCA(caDir, time.Hour); !errors.Is(err, ErrExists) {
		t.Errorf("second WriteCA: %v", err)
	}
	if err := WriteNode(caDir, "x", nodeDir, time.Hour); !errors.Is(err, ErrExists) {
		t.Errorf("second WriteNode: %v", err)
	}
	if err := WriteNode(caDir, "bad name", filepath.Join(dir, "n2"), time.Hour); !errors.Is(err, ErrBadName) {
		t.Errorf("bad name: %v", err)
	}
	if err := WriteNode(nodeDir, "n3", filepath.Join(dir, "n3"), time.Hour); !errors.Is(err, ErrNoCA) {
		t.Errorf("a node directory as CA: %v", err)
	}
}
