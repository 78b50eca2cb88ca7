package datachan

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func TestDCEPRoundTrip(t *testing.T) {
	for _, o := range []Options{
		{Label: "signaling"},
		{Label: "#chat", Protocol: "json", Unordered: true, Priority: 256},
		{Label: "#r", MaxRetransmits: u32(3)},
		{Label: "#t", Unordered: true, MaxPacketLifeTime: u32(1000)},
		{},
	} {
		b := marshalOpen(o)
		got, open, err := parseDCEP(b)
		if err != nil || !open {
			t.Fatalf("%+v: open=%v err=%v", o, open, err)
		}
		if !bytes.Equal(marshalOpen(got), b) {
			t.Errorf("%+v did not round-trip: %+v", o, got)
		}
	}
	if _, open, err := parseDCEP(ackMessage); err != nil || open {
		t.Errorf("ACK: open=%v err=%v", open, err)
	}
}

func TestDCEPMalformed(t *testing.T) {
	open := marshalOpen(Options{Label: "ab", Protocol: "c"})
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"unknown type", []byte{0x09}, ErrUnknownMessage},
		{"short header", open[:11], ErrMalformed},
		{"label past the end", open[:len(open)-1], ErrMalformed},
		{"trailing bytes", append(append([]byte(nil), open...), 0), ErrMalformed},
		{"bad channel type", func() []byte { b := append([]byte(nil), open...); b[1] = 0x05; return b }(), ErrMalformed},
	} {
		if _, _, err := parseDCEP(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// FuzzParseDCEP: DCEP comes from the peer. Parsing never panics, and an
// OPEN that parses encodes to bytes that parse to the same options (the
// reliability parameter of a reliable channel is ignored, RFC 8832 §5.1,
// so bytes may differ there).
func FuzzParseDCEP(f *testing.F) {
	f.Add(marshalOpen(Options{Label: "#chat", Protocol: "x", Unordered: true, MaxRetransmits: u32(2)}))
	f.Add(marshalOpen(Options{Label: "signaling"}))
	f.Add(ackMessage)
	f.Add([]byte{0x03, 0x82, 0, 0, 0, 0, 0, 100, 0xff, 0xff, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		o, open, err := parseDCEP(b)
		if err != nil || !open {
			return
		}
		again, open, err := parseDCEP(marshalOpen(o))
		if err != nil || !open || !reflect.DeepEqual(again, o) {
			t.Fatalf("%+v re-parsed as %+v (%v), from %x", o, again, err, b)
		}
	})
}
