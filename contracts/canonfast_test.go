package contracts

import (
	"bytes"
	"testing"

	"github.com/gowebpki/jcs"
)

var canonFastSeeds = []string{
	`{}`, `[]`, `{"a":1,"b":[true,false,null],"c":{"d":"e"}}`, `{"b":1,"a":2}`, `{"a":1,"a":2}`,
	`{"a":-0}`, `{"a":0}`, `{"a":-12}`, `{"a":1.5}`, `{"a":1e2}`, `{"a":01}`, `{ "a":1}`,
	`"\u001f"`, `"\u0041"`, `"\n\t\"\\"`, `"\/"`, `"\u000a"`, `"é€𝄞"`, `"\ud834\udd1e"`,
	"\"\x7f\"", "\"\u2028\"", `{"\n":1}`, `{"é":1}`, `{"A":1,"a":2}`, `[1,]`, `{"a":}`,
	`{"a":1}x`, `tru`, `"abc`, "\"\xff\"", `{"a":{"b":{"c":[1,[2,[3]]]}}}`, `[9007199254740991]`,
	`{"a":"b","aa":"c","ab":"d"}`, `{"aa":1,"a":2}`,
}

// FuzzCanonicalFastPath: every input the fast path accepts is valid JSON
// that jcs.Transform accepts and prints byte for byte as the input, and
// canonicalize (which takes the fast path) agrees with jcs on every input
// that passes the literal rules.
func FuzzCanonicalFastPath(f *testing.F) {
	for _, s := range canonFastSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if len(raw) > 1<<16 {
			return
		}
		if scanLiterals(raw, false) != nil {
			return
		}
		ref, rerr := jcs.Transform(raw)
		if isCanonical(raw) {
			if rerr != nil {
				t.Fatalf("fast path accepted %q; jcs: %v", raw, rerr)
			}
			if !bytes.Equal(ref, raw) {
				t.Fatalf("fast path accepted %q; jcs prints %q", raw, ref)
			}
		}
		out, err := canonicalize(raw, false)
		if (err == nil) != (rerr == nil) || err == nil && !bytes.Equal(out, ref) {
			t.Fatalf("canonicalize(%q) = %q, %v; jcs = %q, %v", raw, out, err, ref, rerr)
		}
		if rerr == nil && !isCanonical(ref) && canonicalASCII(ref) {
			t.Fatalf("fast path refused jcs output %q", ref)
		}
	})
}

// canonicalASCII reports whether a canonical text is inside the fast path's
// subset: keys of printable ASCII, no fraction or exponent.
func canonicalASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x7f || c == '.' || c == 'e' || c == 'E' || c == '\\' {
			return false
		}
	}
	return true
}

func TestCanonicalFastPathCases(t *testing.T) {
	for _, tc := range []struct {
		in   string
		fast bool
	}{
		{`{"a":1,"b":[true,false,null],"c":{"d":"e"}}`, true},
		{`{"b":1,"a":2}`, false}, {`{"a":1,"a":2}`, false}, {`{"a":-0}`, false},
		{`{"a":1.5}`, false}, {`{ "a":1}`, false}, {`"\u001f"`, true}, {`"\u0041"`, false},
		{`"\/"`, false}, {`{"é":1}`, false}, {`"é€𝄞"`, true}, {`{"a":1}x`, false},
		{"\"\xff\"", false}, {`[]`, true}, {`{}`, true}, {`-7`, true}, {`007`, false},
	} {
		if got := isCanonical([]byte(tc.in)); got != tc.fast {
			t.Errorf("isCanonical(%s) = %v, want %v", tc.in, got, tc.fast)
		}
	}
}
