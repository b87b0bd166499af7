package contracts_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/talosgo/talos/contracts"
)

// FuzzValidate checks, for any bytes against any schema: Validate never
// panics; it answers nil or a *contracts.Error of code TALOS_INVALID_INPUT or
// SCHEMA_VALIDATION_ERROR; an accepted document is valid JSON whose canonical
// form is accepted too; a rejected one gets the same verdict in canonical
// form; and every violation's pointer resolves inside the document.
func FuzzValidate(f *testing.F) {
	names := contracts.SchemaNames()
	for i, name := range names {
		for _, doc := range schemaSeeds[name] {
			f.Add(uint8(i), []byte(doc))
			f.Add(uint8(i), []byte(strings.Replace(doc, `"`, `'`, 1)))
		}
		f.Add(uint8(i), []byte(`{}`))
	}
	f.Add(uint8(0), []byte(`{"a":1,"a":1}`))
	f.Fuzz(func(t *testing.T, idx uint8, doc []byte) {
		name := names[int(idx)%len(names)]
		err := contracts.Validate(name, doc)
		if err == nil {
			if !json.Valid(doc) {
				t.Fatalf("%s accepted invalid JSON %q", name, doc)
			}
			canon, cerr := contracts.Canonicalize(doc)
			if cerr != nil {
				t.Fatalf("%s accepted %q, which does not canonicalize: %v", name, doc, cerr)
			}
			if err := contracts.Validate(name, canon); err != nil {
				t.Fatalf("%s accepted %q but rejects its canonical form %q: %v", name, doc, canon, err)
			}
			return
		}
		var e *contracts.Error
		if !errors.As(err, &e) {
			t.Fatalf("error %v (%T) is not a *contracts.Error", err, err)
		}
		switch e.Code {
		case contracts.CodeInvalidInput:
			if contracts.CheckJSON(doc, false) == nil && json.Valid(doc) {
				t.Fatalf("%s: %q passes CheckJSON but Validate calls it invalid input: %v", name, doc, err)
			}
		case contracts.CodeSchemaValidationError:
			var ve *contracts.ValidationError
			if !errors.As(err, &ve) || len(ve.Violations) == 0 {
				t.Fatalf("schema error without violations: %v", err)
			}
			var v any
			dec := json.NewDecoder(bytes.NewReader(doc))
			dec.UseNumber()
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("schema verdict on undecodable %q: %v", doc, err)
			}
			for _, vi := range ve.Violations {
				if !pointerResolves(v, vi.Pointer) {
					t.Fatalf("%s: violation pointer %q does not resolve in %q", name, vi.Pointer, doc)
				}
			}
			canon, cerr := contracts.Canonicalize(doc)
			if cerr != nil {
				t.Fatalf("%q passed the input rules but does not canonicalize: %v", doc, cerr)
			}
			if contracts.CodeOf(contracts.Validate(name, canon)) != contracts.CodeSchemaValidationError {
				t.Fatalf("%s rejects %q but not its canonical form %q", name, doc, canon)
			}
		default:
			t.Fatalf("unexpected code %s: %v", e.Code, err)
		}
	})
}

// pointerResolves reports whether the RFC 6901 pointer p names a value in v.
func pointerResolves(v any, p string) bool {
	if p == "" {
		return true
	}
	if !strings.HasPrefix(p, "/") {
		return false
	}
	for _, tok := range strings.Split(p[1:], "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		switch c := v.(type) {
		case map[string]any:
			var ok bool
			if v, ok = c[tok]; !ok {
				return false
			}
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) {
				return false
			}
			v = c[i]
		default:
			return false
		}
	}
	return true
}
