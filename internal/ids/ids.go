// Package ids makes the identifiers Hayate hands out: Sora-style 26-character
// ids for connections, sessions and webhook events, and ICE credentials.
//
// Sora encodes a random UUIDv4 in base32 with the Crockford alphabet, which
// gives 26 characters such as "SCVC9JRZZ900F0KC32T3GY6FBR"
// (https://sora-doc.shiguredo.jp/SIGNALING). Hayate does the same with
// crypto/rand, so ids are unguessable (122 random bits).
package ids

import (
	"crypto/rand"
)

// crockford is Crockford's base32 alphabet: no I, L, O or U.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// Len is the length of an id from New.
const Len = 26

// New returns a fresh 26-character id: a random UUIDv4 in Crockford base32.
func New() string {
	var u [16]byte
	rand.Read(u[:])         //nolint:errcheck // crypto/rand.Read never fails (Go 1.24+).
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return encode(u)
}

// encode writes the 128 bits of u as 26 base32 digits, most significant
// bits first, the last digit padded with two zero bits (RFC 4648 §6 order).
func encode(u [16]byte) string {
	var out [Len]byte
	var acc uint32
	bits := 0
	n := 0
	for _, b := range u {
		acc = acc<<8 | uint32(b)
		bits += 8
		for bits >= 5 {
			bits -= 5
			out[n] = crockford[acc>>uint(bits)&31]
			n++
		}
	}
	out[n] = crockford[acc<<uint(5-bits)&31]
	return string(out[:])
}

// Valid reports whether s has the shape of an id from New.
func Valid(s string) bool {
	if len(s) != Len {
		return false
	}
	for i := 0; i < len(s); i++ {
		if indexOf(s[i]) < 0 {
			return false
		}
	}
	return true
}

func indexOf(c byte) int {
	for i := 0; i < len(crockford); i++ {
		if crockford[i] == c {
			return i
		}
	}
	return -1
}

// iceChars are the ice-char characters of RFC 8445 §5.3 (ALPHA / DIGIT / "+" / "/").
const iceChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// ICE returns n random ice-chars. RFC 8445 §5.3 asks for at least 24 bits of
// randomness in the ufrag and 128 in the password; each char carries 6 bits.
func ICE(n int) string {
	b := make([]byte, n)
	rand.Read(b) //nolint:errcheck // never fails
	for i := range b {
		b[i] = iceChars[b[i]&63]
	}
	return string(b)
}
