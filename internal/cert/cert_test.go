package cert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"regexp"
	"testing"
)

func TestGenerate(t *testing.T) {
	c, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^([0-9A-F]{2}:){31}[0-9A-F]{2}$`).MatchString(c.Fingerprint) {
		t.Fatalf("fingerprint %q is not upper-case sha-256 hex pairs", c.Fingerprint)
	}
	key, ok := c.TLS.PrivateKey.(*ecdsa.PrivateKey)
	if !ok || key.Curve != elliptic.P256() {
		t.Fatalf("key is %T, want ECDSA P-256", c.TLS.PrivateKey)
	}
	if Fingerprint(c.TLS.Certificate[0]) != c.Fingerprint {
		t.Fatal("fingerprint does not match the DER certificate")
	}
	other, _ := Generate()
	if other.Fingerprint == c.Fingerprint {
		t.Fatal("two certificates with one fingerprint")
	}
}
