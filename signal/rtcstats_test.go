package signal

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// TestParseRTCStats: a report is kept when it is a JSON array of objects
// within the size limit, and refused with the matching error otherwise.
func TestParseRTCStats(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want error
	}{
		{`[]`, nil},
		{` [{"id":"P","type":"peer-connection","timestamp":1.5}] `, nil},
		{`[{},{"a":[1,{"b":null}]}]`, nil},
		{`[1]`, ErrRTCStatsMalformed},
		{`[{}, "x"]`, ErrRTCStatsMalformed},
		{`[null]`, ErrRTCStatsMalformed},
		{`{"a":1}`, ErrRTCStatsMalformed},
		{`"[{}]"`, ErrRTCStatsMalformed},
		{`[{}`, ErrRTCStatsMalformed},
		{`[{}] x`, ErrRTCStatsMalformed},
		{``, ErrRTCStatsMalformed},
		{`[{"big":"` + strings.Repeat("x", 100) + `"}]`, ErrRTCStatsTooLarge},
	} {
		got, err := ParseRTCStats([]byte(tc.in), 64)
		if !errors.Is(err, tc.want) {
			t.Errorf("%.40q: %v, want %v", tc.in, err, tc.want)
		}
		if err == nil && string(got) != strings.TrimSpace(tc.in) {
			t.Errorf("%q: kept %q", tc.in, got)
		}
	}
}

// FuzzParseRTCStats: whatever a client sends, a report that is kept is a
// JSON array of objects within the limit, byte for byte what was sent
// (less surrounding white space).
func FuzzParseRTCStats(f *testing.F) {
	for _, s := range []string{`[]`, `[{"id":"RTCAudioSource_1","kind":"audio","timestamp":1636808733258.573,"type":"media-source"}]`,
		`[{}, {"a": {"b": [1, 2, "c"]}}]`, `[1]`, `{}`, `[{}`, `null`, " [ { } ] ", `[{"a":"\u00e9"}]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		const max = 4096
		got, err := ParseRTCStats(in, max)
		if err != nil {
			if !errors.Is(err, ErrRTCStatsMalformed) && !errors.Is(err, ErrRTCStatsTooLarge) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if len(got) > max || !bytes.Equal(got, bytes.TrimSpace(in)) {
			t.Fatalf("kept %q of %q", got, in)
		}
		var objs []map[string]any
		if err := json.Unmarshal(got, &objs); err != nil {
			t.Fatalf("kept %q, which is not an array of objects: %v", got, err)
		}
		for _, o := range objs {
			if o == nil {
				t.Fatalf("kept %q with a null element", got)
			}
		}
	})
}
