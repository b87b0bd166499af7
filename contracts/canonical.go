package contracts

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"io"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/gowebpki/jcs"
)

// MaxSafeInteger is the largest integer every Talos SDK represents exactly
// (2^53 − 1, JavaScript's Number.MAX_SAFE_INTEGER). Canonical JSON rejects
// integers outside ±MaxSafeInteger.
const MaxSafeInteger = 1<<53 - 1

// Canonicalize returns the RFC 8785 (JCS) canonical form of the JSON text raw.
//
// Beyond RFC 8785 it rejects, with a *Error of code TALOS_INVALID_INPUT:
// duplicate object keys, lone surrogates and invalid UTF-8, nesting deeper
// than MaxJSONDepth, inputs longer than MaxJSONSize, and integral values
// outside ±MaxSafeInteger in any notation (9007199254740992, 1e16, 1e300).
// Numbers with a zero fraction are written as integers (1.0 → 1); other
// numbers use the ECMAScript shortest form. Keys are sorted
// by UTF-16 code units, as RFC 8785 requires. null is kept.
func Canonicalize(raw []byte) ([]byte, error) {
	return canonicalize(raw, false)
}

// AppendCanonical appends the canonical JSON of raw (Canonicalize's rules)
// to dst and returns the extended buffer: for input already in canonical
// form, without an intermediate copy.
func AppendCanonical(dst, raw []byte) ([]byte, error) {
	return appendTransform(dst, raw, false, true)
}

// CanonicalizeStrict is Canonicalize for signed and hashed objects
// (capability tokens, MCP frames): it also rejects null and any number
// written with a fraction or an exponent, and -0, so that one value has
// exactly one accepted encoding of its numbers.
func CanonicalizeStrict(raw []byte) ([]byte, error) {
	return canonicalize(raw, true)
}

// CheckJSON applies the input rules of Canonicalize (strict=false) or
// CanonicalizeStrict (strict=true) to raw without keeping the output.
func CheckJSON(raw []byte, strict bool) error {
	_, err := transform(raw, strict, false)
	return err
}

// Marshal returns the canonical JSON of v: encoding/json's output passed
// through Canonicalize. Invalid UTF-8 in Go strings is replaced with U+FFFD by
// encoding/json before canonicalization.
func Marshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, Wrap(CodeInvalidInput, "canonical json: cannot encode value", err)
	}
	return Canonicalize(b)
}

// MarshalStrict is Marshal with the rules of CanonicalizeStrict.
func MarshalStrict(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, Wrap(CodeInvalidInput, "canonical json: cannot encode value", err)
	}
	return CanonicalizeStrict(b)
}

func jsonError(msg string) *Error {
	return New(CodeInvalidInput, "canonical json: "+msg)
}

func canonicalize(raw []byte, strict bool) ([]byte, error) {
	return transform(raw, strict, true)
}

// transform applies the input rules and returns the canonical form when
// wantOut is set. Input already in canonical form (isCanonical: what our
// encoders and the other SDKs send) is checked in one pass without
// building a tree; everything else goes through jcs.Transform.
func transform(raw []byte, strict, wantOut bool) ([]byte, error) {
	return appendTransform(nil, raw, strict, wantOut)
}

// appendTransform is transform appending the canonical form to dst.
func appendTransform(dst, raw []byte, strict, wantOut bool) ([]byte, error) {
	if len(raw) > MaxJSONSize {
		return nil, jsonError("input too large")
	}
	if err := scanLiterals(raw, strict); err != nil {
		return nil, err
	}
	if isCanonical(raw) {
		if !wantOut {
			return nil, nil
		}
		return append(dst, raw...), nil
	}
	out, err := jcs.Transform(raw)
	if err != nil {
		return nil, Wrap(CodeInvalidInput, "canonical json: "+err.Error(), err)
	}
	if dst == nil {
		return out, nil
	}
	return append(dst, out...), nil
}

// scanLiterals walks raw outside of strings and checks number and null
// literals and nesting depth. jcs.Transform checks everything else
// (grammar, duplicate keys, surrogates, UTF-8).
func scanLiterals(raw []byte, strict bool) error {
	depth := 0
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c == '"':
			i++
			for i < len(raw) && raw[i] != '"' {
				if raw[i] == '\\' {
					i++
				}
				i++
			}
			i++
		case c == '{' || c == '[':
			depth++
			if depth > MaxJSONDepth {
				return jsonError("nesting too deep")
			}
			i++
		case c == '}' || c == ']':
			depth--
			i++
		case c == '-' || (c >= '0' && c <= '9'):
			j := i
			for j < len(raw) && strings.IndexByte("+-.0123456789eE", raw[j]) >= 0 {
				j++
			}
			if err := checkNumber(raw[i:j], strict); err != nil {
				return err
			}
			i = j
		case c == 'n':
			if strict {
				return jsonError("null is not allowed in a signed object")
			}
			i++
		default:
			i++
		}
	}
	return nil
}

func checkNumber(lit []byte, strict bool) error {
	if !bytes.ContainsAny(lit, ".eE") {
		if strict && len(lit) == 2 && lit[0] == '-' && lit[1] == '0' {
			// -0 is 0 to every reader and canonicalizes to 0: a signed
			// object has one accepted spelling of each number.
			return jsonError("-0 in a signed object (write 0)")
		}
		n, err := strconv.ParseInt(string(lit), 10, 64)
		if err != nil || n > MaxSafeInteger || n < -MaxSafeInteger {
			return jsonError("integer outside ±(2^53−1)")
		}
		return nil
	}
	if strict {
		return jsonError("non-integer number in a signed object")
	}
	f, err := strconv.ParseFloat(string(lit), 64)
	if err != nil {
		// Out of float64 range, or malformed: jcs reports malformed ones.
		var ne *strconv.NumError
		if errors.As(err, &ne) && ne.Err == strconv.ErrRange {
			return jsonError("number out of range")
		}
		return nil
	}
	// An integral value beyond ±(2^53−1) is rejected in every notation
	// (1e16, 9007199254740992.0, 1e300): JCS would print some as integers that
	// Canonicalize itself rejects, and the Python reference turns integral
	// floats into ints, so no two implementations would agree on its bytes.
	if f == math.Trunc(f) && math.Abs(f) > MaxSafeInteger {
		return jsonError("integer outside ±(2^53−1)")
	}
	return nil
}

// UnmarshalStrict decodes raw into v under the rules for signed objects:
// CheckJSON(raw, true) must pass, every object key must name a field of the
// target exactly (case-sensitive; encoding/json alone matches keys without
// regard to case), unknown fields are rejected, and nothing may follow the
// value. Errors are *Error with code TALOS_INVALID_INPUT.
func UnmarshalStrict(raw []byte, v any) error {
	if err := CheckJSON(raw, true); err != nil {
		return err
	}
	return decodeExact(raw, v)
}

// UnmarshalStrictFold is UnmarshalStrict with CheckCaseFold's rule as
// well (no two member names of one object equal under case folding), with
// the input rules checked once: what a server applies to a request body.
// Errors are *Error with code TALOS_INVALID_INPUT.
func UnmarshalStrictFold(raw []byte, v any) error {
	if err := CheckJSON(raw, true); err != nil {
		return err
	}
	if key, dup := foldScan(raw); dup {
		return jsonError("object has two member names equal under case folding, one is " + quoteKey(key))
	}
	return decodeExact(raw, v)
}

// decodeExact decodes raw, which has passed CheckJSON, into v: every
// object key must name a field exactly (checked on the bytes, without
// decoding the document a second time), unknown fields are rejected, and
// nothing may follow the value.
func decodeExact(raw []byte, v any) error {
	if t := reflect.TypeOf(v); t != nil {
		if _, key, ok := rawKeys(raw, 0, t); !ok {
			return jsonError("unknown or mis-cased field " + strconv.Quote(key))
		}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return Wrap(CodeInvalidInput, "json: "+err.Error(), err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return jsonError("trailing data after value")
	}
	return nil
}

var (
	unmarshalerType     = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
	fieldNamesCache     sync.Map // reflect.Type → map[string]reflect.Type
)

func structFields(t reflect.Type) map[string]reflect.Type {
	if m, ok := fieldNamesCache.Load(t); ok {
		return m.(map[string]reflect.Type)
	}
	m := map[string]reflect.Type{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			if f.Anonymous && name == "" {
				ft := f.Type
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if ft.Kind() == reflect.Struct {
					walk(ft)
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			m[name] = f.Type
		}
	}
	walk(t)
	fieldNamesCache.Store(t, m)
	return m
}
