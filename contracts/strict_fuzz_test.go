package contracts_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/talosgo/talos/contracts"
)

type strictDoc struct {
	Version string            `json:"version"`
	Count   int64             `json:"count"`
	Tags    []string          `json:"tags,omitempty"`
	Inner   *strictInner      `json:"inner,omitempty"`
	Meta    map[string]string `json:"meta,omitempty"`
}

type strictInner struct {
	Name string `json:"name"`
}

// FuzzUnmarshalStrict: UnmarshalStrict never panics; when it accepts, the
// input passes CheckJSON in strict mode, every key is spelled exactly as a
// field, and the decoded value re-encodes to JSON that decodes to the same
// value (nothing was silently dropped or case-folded).
func FuzzUnmarshalStrict(f *testing.F) {
	for _, s := range []string{
		`{"version":"1","count":3,"tags":["a"],"inner":{"name":"x"},"meta":{"k":"v"}}`,
		`{"Version":"1","count":3}`, `{"version":"1","count":1.5}`, `{"version":"1","count":null}`,
		`{"version":"1","version":"2"}`, `{"version":"1"} {}`, `{"inner":{"Name":"x"}}`, `[]`, `"x"`,
		`{"count":9007199254740992}`, `{"extra":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var d strictDoc
		if err := contracts.UnmarshalStrict(raw, &d); err != nil {
			if contracts.CodeOf(err) != contracts.CodeInvalidInput {
				t.Fatalf("error code %s: %v", contracts.CodeOf(err), err)
			}
			return
		}
		if err := contracts.CheckJSON(raw, true); err != nil {
			t.Fatalf("accepted input fails CheckJSON: %v", err)
		}
		again, err := json.Marshal(&d)
		if err != nil {
			t.Fatal(err)
		}
		var d2 strictDoc
		if err := contracts.UnmarshalStrict(again, &d2); err != nil {
			t.Fatalf("re-encoding %s rejected: %v", again, err)
		}
		a, _ := json.Marshal(&d2)
		if !bytes.Equal(a, again) {
			t.Fatalf("round trip changed the value: %s vs %s", a, again)
		}
		// Every key of an accepted object names a field exactly.
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) == nil {
			for k := range m {
				switch k {
				case "version", "count", "tags", "inner", "meta":
				default:
					t.Fatalf("accepted unknown or mis-cased key %q", k)
				}
			}
		}
	})
}

// FuzzUUIDv7Time: UUIDv7Time never panics, accepts exactly what IsUUIDv7
// accepts, and the time it returns is the id's millisecond timestamp.
func FuzzUUIDv7Time(f *testing.F) {
	f.Add(contracts.NewUUIDv7())
	f.Add("01890a5d-ac96-774b-bcce-b302099a8057")
	f.Add("01890A5D-AC96-774B-BCCE-B302099A8057")
	f.Add("not-a-uuid")
	f.Fuzz(func(t *testing.T, s string) {
		ts, err := contracts.UUIDv7Time(s)
		if (err == nil) != contracts.IsUUIDv7(s) {
			t.Fatalf("UUIDv7Time error %v, IsUUIDv7 %v", err, contracts.IsUUIDv7(s))
		}
		if err != nil {
			return
		}
		again := contracts.NewUUIDv7At(ts)
		if again[:13] != s[:13] {
			t.Fatalf("timestamp %v does not round-trip: %s vs %s", ts, again[:13], s[:13])
		}
		if ts.Location() != time.UTC && ts.Location() != time.Local {
			t.Fatalf("unexpected location %v", ts.Location())
		}
	})
}

// FuzzUnmarshalStrictFold: UnmarshalStrictFold accepts exactly what
// CheckCaseFold and UnmarshalStrict accept together, and decodes the same
// value.
func FuzzUnmarshalStrictFold(f *testing.F) {
	for _, s := range []string{
		`{"version":"1","count":3,"tags":["a"],"inner":{"name":"x"},"meta":{"k":"v"}}`,
		`{"version":"1","Version":"2"}`, `{"meta":{"k":"v","K":"w"}}`, `{"version":"1","count":null}`,
		`{"inner":{"Name":"x"}}`, `{"version":"1"} {}`, `{"count":1.0}`, `{ "version" : "1" }`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var got, want strictDoc
		err := contracts.UnmarshalStrictFold(raw, &got)
		werr := contracts.CheckCaseFold(raw)
		if werr == nil {
			werr = contracts.UnmarshalStrict(raw, &want)
		}
		if (err == nil) != (werr == nil) {
			t.Fatalf("UnmarshalStrictFold: %v; CheckCaseFold + UnmarshalStrict: %v", err, werr)
		}
		if err != nil {
			if contracts.CodeOf(err) != contracts.CodeInvalidInput {
				t.Fatalf("error code %s: %v", contracts.CodeOf(err), err)
			}
			return
		}
		a, _ := json.Marshal(&got)
		b, _ := json.Marshal(&want)
		if !bytes.Equal(a, b) {
			t.Fatalf("decoded %s, the two-call path %s", a, b)
		}
	})
}
