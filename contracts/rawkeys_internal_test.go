package contracts

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"
)

type rkInner struct {
	B string `json:"b"`
	C []int  `json:"c,omitempty"`
}

type rkEmbed struct {
	E string `json:"e"`
}

type rkOuter struct {
	rkEmbed
	A    string             `json:"a"`
	In   *rkInner           `json:"in,omitempty"`
	List []rkInner          `json:"list,omitempty"`
	M    map[string]rkInner `json:"m,omitempty"`
	Any  any                `json:"any,omitempty"`
	When time.Time          `json:"when,omitzero"`
	Raw  json.RawMessage    `json:"raw,omitempty"`
	Arr  [2]rkInner         `json:"arr,omitzero"`
	Skip string             `json:"-"`
	Name string
}

// FuzzRawKeys: the key walk on the bytes agrees with the walk over the
// decoded document (caseSensitiveKeys, which UnmarshalFields uses), for every input CheckJSON accepts and several target
// types, and never panics.
func FuzzRawKeys(f *testing.F) {
	for _, s := range []string{
		`{"a":"x","in":{"b":"y","c":[1,2]},"e":"z"}`,
		`{"A":"x"}`,
		`{"a":"x","in":{"B":"y"}}`,
		`{"list":[{"b":"1"},{"b":"2","x":1}]}`,
		`{"m":{"k":{"b":"1"},"j":{"B":1}}}`,
		`{"any":{"Whatever":[{"x":1}]},"raw":{"X":1},"when":"2026-01-01T00:00:00Z"}`,
		`{"arr":[{"b":"1"},{"b":"2","q":3}]}`,
		`{ "a" : "x" , "in" : { "b" : "y" } }`,
		`{"\u0061":"x","Name":"n","-":1}`,
		`[{"a":1}]`,
		`{}`, `[]`, `"s"`, `1`, `true`,
	} {
		f.Add([]byte(s))
	}
	types := []reflect.Type{
		reflect.TypeFor[*rkOuter](), reflect.TypeFor[*[]rkOuter](), reflect.TypeFor[*map[string]rkInner](),
		reflect.TypeFor[*any](), reflect.TypeFor[*rkInner](),
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if CheckJSON(raw, false) != nil {
			return
		}
		var generic any
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		if dec.Decode(&generic) != nil {
			return
		}
		for _, typ := range types {
			wantKey, why := caseSensitiveKeys(generic, typ, true)
			want := why == ""
			_, gotKey, got := rawKeys(raw, 0, typ)
			if got != want {
				t.Fatalf("%s: rawKeys %v (%q), caseSensitiveKeys %v (%q)", typ, got, gotKey, want, wantKey)
			}
		}
	})
}
