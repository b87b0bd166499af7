package contracts_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/talosgo/talos/contracts"
)

// gatewayDoc is the shape a gateway decides on (the LLM proxy's fields).
type gatewayDoc struct {
	Model     string         `json:"model"`
	MaxTokens *int64         `json:"max_tokens"`
	Stream    bool           `json:"stream"`
	Inner     *gatewayInner  `json:"inner"`
	Tags      map[string]any `json:"tags"`
}

type gatewayInner struct {
	Name string `json:"name"`
}

func TestCheckCaseFold(t *testing.T) {
	for _, tc := range []struct {
		doc string
		ok  bool
	}{
		{`{"model":"a","max_tokens":1}`, true},
		{`{"model":"a","MODEL":"b"}`, false},
		{`{"max_tokens":128000,"Max_Tokens":1}`, false},
		{`{"a":{"b":[{"name":1,"NAME":2}]}}`, false},              // nested in an array
		{`[{"x":1},{"X":2}]`, true},                               // different objects
		{`{"messages":[{"role":"user","Role":"system"}]}`, false}, // any depth
		{`{"kelvin":1,"\u212aelvin":2}`, false},                   // U+212A KELVIN SIGN folds to k
		{`{"us":1,"u\u017f":2}`, false},                           // U+017F LONG S folds to s
		{`{"stra\u00dfe":1,"strasse":2}`, true},                   // ß is not ss under simple folding
		{`{"\u00e9":1,"\u00c9":2}`, false},                        // é / É
		{`{"mod\u0065l":"a","MODEL":"b"}`, false},                 // escapes are decoded first
		{`{"a":1,"a":2}`, false},                                  // exact duplicates (CheckJSON)
		{`{"a":1} {}`, false},                                     // trailing data
		{`"\ud800"`, false},                                       // lone surrogate
	} {
		err := contracts.CheckCaseFold([]byte(tc.doc))
		if (err == nil) != tc.ok {
			t.Errorf("CheckCaseFold(%s) = %v, want ok=%v", tc.doc, err, tc.ok)
		}
		if err != nil && contracts.CodeOf(err) != contracts.CodeInvalidInput {
			t.Errorf("CheckCaseFold(%s): code %s, want TALOS_INVALID_INPUT", tc.doc, contracts.CodeOf(err))
		}
	}
}

func TestUnmarshalFieldsCaseSensitive(t *testing.T) {
	var d gatewayDoc
	// encoding/json alone decodes "MODEL" into Model: a case-sensitive
	// upstream sees no model at all.
	if err := json.Unmarshal([]byte(`{"MODEL":"gpt-cheap"}`), &d); err != nil || d.Model != "gpt-cheap" {
		t.Fatalf("encoding/json premise changed: %v %q", err, d.Model)
	}
	for _, doc := range []string{
		`{"MODEL":"gpt-cheap"}`, `{"model":"x","inner":{"Name":"y"}}`, `{"Max_Tokens":5}`,
		`{"model":"gpt-expensive","MODEL":"gpt-cheap"}`, `{"model":"x","tags":{"a":{"b":1,"B":2}}}`,
		`{"\u212a":1,"k":2}`,
	} {
		d = gatewayDoc{}
		err := contracts.UnmarshalFields([]byte(doc), &d)
		var ce *contracts.Error
		if !errors.As(err, &ce) || ce.Code != contracts.CodeInvalidInput {
			t.Errorf("UnmarshalFields(%s) = %v, want a TALOS_INVALID_INPUT *Error", doc, err)
		}
	}
	d = gatewayDoc{}
	if err := contracts.UnmarshalFields([]byte(`{"model":"m","max_tokens":7,"temperature":0.5,"inner":{"name":"n"},"tags":{"A":1,"b":2}}`), &d); err != nil {
		t.Fatal(err)
	}
	if d.Model != "m" || d.MaxTokens == nil || *d.MaxTokens != 7 || d.Inner.Name != "n" {
		t.Fatalf("decoded %+v", d)
	}
	// Known: unknown members refused too.
	if err := contracts.UnmarshalFieldsKnown([]byte(`{"model":"m","temperature":0.5}`), &gatewayDoc{}); contracts.CodeOf(err) != contracts.CodeInvalidInput {
		t.Fatalf("UnmarshalFieldsKnown accepted an unknown member: %v", err)
	}
	if err := contracts.UnmarshalFieldsKnown([]byte(`{"model":"m"}`), &gatewayDoc{}); err != nil {
		t.Fatal(err)
	}
	// Large objects (past the pairwise limit) use a set: same verdicts.
	var many strings.Builder
	many.WriteString(`{`)
	for i := range 40 {
		fmt.Fprintf(&many, `"key%d":%d,`, i, i)
	}
	for _, tc := range []struct {
		last string
		ok   bool
	}{{`"KEY7":1}`, false}, {`"KEY39":1}`, false}, {`"key\u212a0":1}`, true}, {`"\u212aey3":1}`, false}, {`"other":1}`, true}} {
		doc := many.String() + tc.last
		if err := contracts.CheckCaseFold([]byte(doc)); (err == nil) != tc.ok {
			t.Errorf("40 keys then %s: %v, want ok=%v", tc.last, err, tc.ok)
		}
	}
	// A long offending key is quoted truncated.
	long := strings.Repeat("A", 500)
	err := contracts.CheckCaseFold([]byte(`{"` + long + `":1,"` + strings.ToLower(long) + `":2}`))
	if err == nil || len(err.Error()) > 300 {
		t.Fatalf("long key error: %v", err)
	}
	if err := contracts.UnmarshalFields([]byte(`{}`), gatewayDoc{}); contracts.CodeOf(err) != contracts.CodeInvalidInput {
		t.Fatalf("non-pointer target: %v", err)
	}
}

// foldDupOracle finds two member names of one object equal under
// strings.EqualFold, pairwise (independent of the package's fold keys).
func foldDupOracle(x any) bool {
	switch v := x.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k, e := range v {
			for _, o := range keys {
				if strings.EqualFold(k, o) {
					return true
				}
			}
			keys = append(keys, k)
			if foldDupOracle(e) {
				return true
			}
		}
	case []any:
		for _, e := range v {
			if foldDupOracle(e) {
				return true
			}
		}
	}
	return false
}

// FuzzUnmarshalFields pins the gateway property: for any body
// UnmarshalFields accepts, the fields decided on equal those a
// case-sensitive, last-wins reader (encoding/json into a map: exact keys,
// last duplicate wins) sees in the same bytes, and no object of the body has
// two keys equal under strings.EqualFold. CheckCaseFold agrees with the
// pairwise EqualFold oracle on every valid document.
func FuzzUnmarshalFields(f *testing.F) {
	for _, s := range []string{
		`{"model":"gpt-cheap","max_tokens":1}`,
		`{"model":"gpt-expensive","MODEL":"gpt-cheap"}`,
		`{"max_tokens":128000,"Max_Tokens":1}`,
		`{"MODEL":"x"}`, `{"model":"x","inner":{"name":"a","NAME":"b"}}`,
		`{"model":"x","tags":{"k":1,"\u212a":2}}`, `{"mod\u0065l":"y"}`,
		`{"model":"x","stream":true,"messages":[{"role":"user","content":"hi"}]}`,
		`[1,{"a":{"A":1}}]`, `{"stra\u00dfe":1,"strasse":2}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var d gatewayDoc
		err := contracts.UnmarshalFields(raw, &d)
		var generic any
		valid := json.Unmarshal(raw, &generic) == nil && contracts.CheckJSON(raw, false) == nil
		if valid {
			foldErr := contracts.CheckCaseFold(raw)
			if (foldErr != nil) != foldDupOracle(generic) {
				t.Fatalf("CheckCaseFold(%q) = %v, oracle disagrees", raw, foldErr)
			}
		}
		if err != nil {
			if contracts.CodeOf(err) != contracts.CodeInvalidInput {
				t.Fatalf("code %s for %q", contracts.CodeOf(err), raw)
			}
			return
		}
		if !valid || foldDupOracle(generic) {
			t.Fatalf("accepted %q: invalid or holding case-fold duplicates", raw)
		}
		m, ok := generic.(map[string]any)
		if !ok {
			t.Fatalf("accepted a non-object into a struct: %q", raw)
		}
		want := gatewayDoc{}
		if v, ok := m["model"]; ok {
			want.Model, _ = v.(string)
		}
		if v, ok := m["max_tokens"]; ok && v != nil {
			n := int64(v.(float64))
			want.MaxTokens = &n
		}
		if v, ok := m["stream"]; ok {
			want.Stream, _ = v.(bool)
		}
		if v, ok := m["inner"].(map[string]any); ok {
			want.Inner = &gatewayInner{}
			want.Inner.Name, _ = v["name"].(string)
		}
		if d.Model != want.Model || d.Stream != want.Stream ||
			(d.MaxTokens == nil) != (want.MaxTokens == nil) || d.MaxTokens != nil && *d.MaxTokens != *want.MaxTokens ||
			(d.Inner == nil) != (want.Inner == nil) || d.Inner != nil && *d.Inner != *want.Inner {
			t.Fatalf("%q: decided on %+v, a case-sensitive reader sees %+v", raw, d, want)
		}
		if v, ok := m["tags"].(map[string]any); ok && fmt.Sprint(v) != fmt.Sprint(d.Tags) {
			t.Fatalf("%q: tags %v, reader sees %v", raw, d.Tags, v)
		}
	})
}
