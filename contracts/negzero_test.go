package contracts_test

import (
	"testing"

	"github.com/talosgo/talos/contracts"
)

// TestStrictRefusesNegativeZero: "exp":-0 and "exp":0 are one value with two
// spellings; a signed object accepts only the canonical one. The non-strict
// canonicalizer normalizes -0 to 0, as RFC 8785 does.
func TestStrictRefusesNegativeZero(t *testing.T) {
	for _, doc := range []string{`{"exp":-0}`, `[-0]`, `{"a":{"b":[1,-0]}}`} {
		if _, err := contracts.CanonicalizeStrict([]byte(doc)); contracts.CodeOf(err) != contracts.CodeInvalidInput {
			t.Errorf("CanonicalizeStrict(%s) = %v, want TALOS_INVALID_INPUT", doc, err)
		}
		var v any
		if err := contracts.UnmarshalStrict([]byte(doc), &v); contracts.CodeOf(err) != contracts.CodeInvalidInput {
			t.Errorf("UnmarshalStrict(%s) = %v, want TALOS_INVALID_INPUT", doc, err)
		}
	}
	for _, doc := range []string{`{"exp":0}`, `{"exp":-1}`, `{"exp":-10}`} {
		if _, err := contracts.CanonicalizeStrict([]byte(doc)); err != nil {
			t.Errorf("CanonicalizeStrict(%s): %v", doc, err)
		}
	}
	got, err := contracts.Canonicalize([]byte(`{"exp":-0}`))
	if err != nil || string(got) != `{"exp":0}` {
		t.Errorf("Canonicalize(-0) = %s, %v; want {\"exp\":0}", got, err)
	}
}
