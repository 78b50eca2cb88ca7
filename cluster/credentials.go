package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// Credentials are a node's cluster credentials, read from three PEM files:
// the CA bundle (one or more CA certificates; a peer is accepted if its
// certificate chains to one of them), the node's certificate, whose Subject
// Common Name is the node's name, and the node's private key.
//
// The files are read again when they change (checked at each new
// handshake), so that an operator rotates credentials by replacing the
// files, with no restart (README, "Rotating the cluster credentials"). A
// replacement that cannot be used — a certificate and key that do not
// match, a certificate that does not chain to the bundle, another node
// name — leaves the previous credentials in force and is reported once.
type Credentials struct {
	caFile, certFile, keyFile string

	mu  sync.Mutex
	cur *identity
	// stamp identifies the files cur was read from; failed, the files of the
	// last reload that failed (so that it is reported once).
	stamp, failed [3]os.FileInfo
}

// identity is one consistent reading of the credential files.
type identity struct {
	cert  tls.Certificate
	roots *x509.CertPool
	name  string
}

// LoadCredentials reads a node's credentials. The certificate must chain
// to a CA of the bundle, for both server and client use, and be valid now.
func LoadCredentials(caFile, certFile, keyFile string) (*Credentials, error) {
	c := &Credentials{caFile: caFile, certFile: certFile, keyFile: keyFile}
	st, err := c.stat()
	if err != nil {
		return nil, err
	}
	id, err := readIdentity(caFile, certFile, keyFile)
	if err != nil {
		return nil, err
	}
	c.cur, c.stamp = id, st
	return c, nil
}

// Name is the node name the certificate carries.
func (c *Credentials) Name() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur.name
}

func (c *Credentials) stat() ([3]os.FileInfo, error) {
	var st [3]os.FileInfo
	for i, f := range []string{c.caFile, c.certFile, c.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return st, fmt.Errorf("%w: %w", ErrBadCredentials, err)
		}
		st[i] = fi
	}
	return st, nil
}

func sameFiles(a, b [3]os.FileInfo) bool {
	for i := range a {
		if a[i] == nil || b[i] == nil || !os.SameFile(a[i], b[i]) || !a[i].ModTime().Equal(b[i].ModTime()) || a[i].Size() != b[i].Size() {
			return false
		}
	}
	return true
}

// current returns the credentials for a new handshake, reading the files
// again if they changed. When a change cannot be used it returns the
// previous credentials and, the first time, the reason.
func (c *Credentials) current() (*identity, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, err := c.stat()
	if err != nil || sameFiles(st, c.stamp) || sameFiles(st, c.failed) {
		return c.cur, nil // a file being replaced right now is read at the next handshake
	}
	id, err := readIdentity(c.caFile, c.certFile, c.keyFile)
	if err == nil && id.name != c.cur.name {
		err = fmt.Errorf("%w: the new certificate names %q, this node is %q", ErrBadCredentials, id.name, c.cur.name)
	}
	if err != nil {
		c.failed = st
		return c.cur, err
	}
	c.cur, c.stamp = id, st
	return id, nil
}

func readIdentity(caFile, certFile, keyFile string) (*identity, error) {
	bad := func(f string, err error) error { return fmt.Errorf("%w: %s: %w", ErrBadCredentials, f, err) }
	data, err := os.ReadFile(caFile)
	if err != nil {
		return nil, bad(caFile, err)
	}
	roots := x509.NewCertPool()
	n := 0
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		if block.Type != "CERTIFICATE" {
			continue
		}
		ca, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, bad(caFile, err)
		}
		if !ca.IsCA {
			return nil, bad(caFile, fmt.Errorf("%q is not a CA certificate", ca.Subject.CommonName))
		}
		roots.AddCert(ca)
		n++
	}
	if n == 0 {
		return nil, bad(caFile, errors.New("no CA certificate in the file"))
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, bad(certFile, err)
	}
	id := &identity{cert: cert, roots: roots}
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		name, err := id.verifyPeer(chain(cert), usage)
		if err != nil {
			return nil, bad(certFile, err)
		}
		id.name = name
	}
	return id, nil
}

// chain parses a tls.Certificate's chain, leaf first.
func chain(cert tls.Certificate) []*x509.Certificate {
	out := make([]*x509.Certificate, 0, len(cert.Certificate))
	for _, der := range cert.Certificate {
		if c, err := x509.ParseCertificate(der); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// verifyPeer checks that certs (leaf first) chain to a CA of the bundle,
// are valid now and allow usage, and returns the node name of the leaf.
func (id *identity) verifyPeer(certs []*x509.Certificate, usage x509.ExtKeyUsage) (string, error) {
	if len(certs) == 0 {
		return "", ErrPeerNoCertificate
	}
	leaf := certs[0]
	name := leaf.Subject.CommonName
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots: id.roots, Intermediates: inter, CurrentTime: time.Now(), KeyUsages: []x509.ExtKeyUsage{usage},
	})
	if err != nil {
		return "", fmt.Errorf("%w: certificate of %q (issuer %q): %w", ErrPeerUntrusted, name, leaf.Issuer.CommonName, err)
	}
	if name == "" || len(name) > maxName || strings.ContainsAny(name, " \t\r\n/") {
		return "", fmt.Errorf("%w: certificate names %q, not a node name", ErrPeerUntrusted, name)
	}
	return name, nil
}
