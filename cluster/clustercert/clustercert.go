// Package clustercert makes the credentials of a Hayate cluster: a cluster
// certificate authority and, signed by it, one certificate per node whose
// Subject Common Name is the node's cluster name (cluster_node_name). Keys
// are ECDSA P-256; everything is PEM, written with the standard library.
//
// The cluster accepts a peer only if its certificate chains to the cluster
// CA and, where a request acts for a node, the certificate names that node
// (see cluster/doc.go, "Security").
package clustercert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File names inside a CA directory and a node directory.
const (
	CAFile      = "ca.pem"
	CAKeyFile   = "ca-key.pem"
	NodeFile    = "node.pem"
	NodeKeyFile = "node-key.pem"
)

// Default lifetimes.
const (
	DefaultCAValidity   = 10 * 365 * 24 * time.Hour
	DefaultNodeValidity = 2 * 365 * 24 * time.Hour
)

// PEMPair is a certificate and its private key, PEM encoded.
type PEMPair struct {
	Cert, Key []byte
}

// NewCA makes a self-signed cluster CA valid for validity. Its name carries
// a random tag, so that two clusters' CAs are told apart in logs.
func NewCA(validity time.Duration) (PEMPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return PEMPair{}, err
	}
	tag := make([]byte, 4)
	if _, err := rand.Read(tag); err != nil {
		return PEMPair{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "Hayate cluster CA " + hex.EncodeToString(tag)},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return PEMPair{}, err
	}
	return encode(der, key)
}

// NewNode makes a certificate for the node called name, signed by ca, for
// both ends of a mutual TLS connection (server and client auth).
func NewNode(ca PEMPair, name string, validity time.Duration) (PEMPair, error) {
	if !ValidName(name) {
		return PEMPair{}, fmt.Errorf("%w: %q", ErrBadName, name)
	}
	caCert, err := tls.X509KeyPair(ca.Cert, ca.Key)
	if err != nil {
		return PEMPair{}, fmt.Errorf("%w: %w", ErrNoCA, err)
	}
	if caCert.Leaf == nil || !caCert.Leaf.IsCA {
		return PEMPair{}, fmt.Errorf("%w: the certificate is not a CA", ErrNoCA)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return PEMPair{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(validity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert.Leaf, &key.PublicKey, caCert.PrivateKey)
	if err != nil {
		return PEMPair{}, err
	}
	return encode(der, key)
}

// ValidName reports whether name can be a cluster node name: 1 to 255
// bytes, no white space, no slash (the rule of cluster.Config.NodeName).
func ValidName(name string) bool {
	return name != "" && len(name) <= 255 && !strings.ContainsAny(name, " \t\r\n/")
}

// WriteCA makes a CA and writes ca.pem and ca-key.pem (mode 0600) into dir.
func WriteCA(dir string, validity time.Duration) error {
	ca, err := NewCA(validity)
	if err != nil {
		return err
	}
	return write(dir, map[string][]byte{CAFile: ca.Cert, CAKeyFile: ca.Key})
}

// ReadCA reads the CA of a directory WriteCA made.
func ReadCA(dir string) (PEMPair, error) {
	c, err := os.ReadFile(filepath.Join(dir, CAFile))
	if err != nil {
		return PEMPair{}, fmt.Errorf("%w: %w", ErrNoCA, err)
	}
	k, err := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err != nil {
		return PEMPair{}, fmt.Errorf("%w: %w", ErrNoCA, err)
	}
	return PEMPair{Cert: c, Key: k}, nil
}

// WriteNode makes a certificate for name signed by the CA in caDir and
// writes node.pem, node-key.pem (mode 0600) and a copy of the CA
// certificate (ca.pem, without its key) into dir.
func WriteNode(caDir, name, dir string, validity time.Duration) error {
	ca, err := ReadCA(caDir)
	if err != nil {
		return err
	}
	n, err := NewNode(ca, name, validity)
	if err != nil {
		return err
	}
	return write(dir, map[string][]byte{CAFile: ca.Cert, NodeFile: n.Cert, NodeKeyFile: n.Key})
}

// write creates every file of files in dir, none of which may exist yet.
func write(dir string, files map[string][]byte) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for name := range files {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return fmt.Errorf("%w: %s", ErrExists, filepath.Join(dir, name))
		}
	}
	for name, data := range files {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, "-key.pem") {
			mode = 0o600
		}
		f, err := os.OpenFile(filepath.Join(dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if err != nil {
			return err
		}
		_, err = f.Write(data)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func encode(der []byte, key *ecdsa.PrivateKey) (PEMPair, error) {
	kd, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return PEMPair{}, err
	}
	return PEMPair{
		Cert: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		Key:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}),
	}, nil
}

// serial is a random 127-bit serial number (RFC 5280 4.1.2.2: positive, at
// most 20 octets; random so that two certificates never share one).
func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return n
}
