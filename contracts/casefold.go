package contracts

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// What is checked is what is forwarded. A gateway decides (authorizes,
// budgets, audits) on fields it decodes with encoding/json, which matches
// object keys to struct fields without regard to case and lets the last of
// two duplicates win, and then forwards the raw bytes to an upstream that
// may read them case-sensitively. {"model":"a","MODEL":"b"} is model "b" to
// encoding/json and model "a" to such an upstream. The functions below close
// that gap in one place:
//
//   - CheckCaseFold refuses any object, at any depth, holding two member
//     names equal under simple Unicode case folding;
//   - UnmarshalFields and UnmarshalFieldsKnown also refuse a key that names
//     a field of the target only under case folding ("MODEL" for "model").
//
// Folding is simple folding, exactly strings.EqualFold (and bytes.EqualFold,
// which is what encoding/json matches field names with): the rune orbits of
// unicode.SimpleFold, so "k", "K" and U+212A KELVIN SIGN are one key, as are
// "s", "S" and U+017F LONG S. Full folding (golang.org/x/text/cases) would
// also equate "ß" with "ss"; no decoder on our side confuses those, so
// refusing them would reject documents without closing any gap.

// maxKeyQuote bounds the bytes of an offending member name an error quotes.
const maxKeyQuote = 64

var foldedFieldsCache sync.Map // reflect.Type → map[string]struct{}

// CheckCaseFold returns nil when no JSON object in raw, at any depth, has
// two member names equal under simple Unicode case folding
// (strings.EqualFold), and otherwise an *Error with code TALOS_INVALID_INPUT
// naming one of them. It first applies the input rules of CheckJSON (not
// strict): size, depth, UTF-8, surrogates, exact duplicates.
func CheckCaseFold(raw []byte) error {
	if err := CheckJSON(raw, false); err != nil {
		return err
	}
	if key, dup := foldScan(raw); dup {
		return jsonError("object has two member names equal under case folding, one is " + quoteKey(key))
	}
	return nil
}

// foldScanPairwise is the number of member names of one object compared
// pairwise (bytes.EqualFold, no allocation); larger objects switch to a set
// of fold keys, so the work stays linear.
const foldScanPairwise = 16

// foldScan finds, in valid JSON (CheckJSON has passed), a member name equal
// under simple folding to another of the same object, without decoding the
// document.
func foldScan(raw []byte) (string, bool) {
	type frame struct {
		obj   bool
		start int                 // first key of this object in keys
		set   map[string]struct{} // fold keys, once the object is large
	}
	var stackBuf [16]frame
	var keysBuf [32][]byte
	stack, keys := stackBuf[:0], keysBuf[:0]
	expectKey := false
	for i := 0; i < len(raw); {
		switch raw[i] {
		case '{':
			stack = append(stack, frame{obj: true, start: len(keys)})
			expectKey = true
			i++
		case '[':
			stack = append(stack, frame{start: len(keys)})
			expectKey = false
			i++
		case '}', ']':
			keys = keys[:stack[len(stack)-1].start]
			stack = stack[:len(stack)-1]
			expectKey = false
			i++
		case ',':
			expectKey = len(stack) > 0 && stack[len(stack)-1].obj
			i++
		case '"':
			end, escaped := i+1, false
			for raw[end] != '"' {
				if raw[end] == '\\' {
					escaped = true
					end++
				}
				end++
			}
			if expectKey {
				key := raw[i+1 : end]
				if escaped {
					var s string
					if json.Unmarshal(raw[i:end+1], &s) != nil {
						return "", false // unreachable after CheckJSON
					}
					key = []byte(s)
				}
				f := &stack[len(stack)-1]
				if f.set == nil && len(keys)-f.start >= foldScanPairwise {
					f.set = make(map[string]struct{}, 2*foldScanPairwise)
					for _, k := range keys[f.start:] {
						f.set[foldKey(string(k))] = struct{}{}
					}
				}
				if f.set != nil {
					fk := foldKey(string(key))
					if _, dup := f.set[fk]; dup {
						return string(key), true
					}
					f.set[fk] = struct{}{}
				} else {
					for _, k := range keys[f.start:] {
						if bytes.EqualFold(k, key) {
							return string(key), true
						}
					}
				}
				keys = append(keys, key)
				expectKey = false
			}
			i = end + 1
		default:
			i++
		}
	}
	return "", false
}

// UnmarshalFields decodes one JSON document from outside the process into v
// so that the fields v receives are those a case-sensitive reader that lets
// the last duplicate win sees in the same bytes. It refuses, with an *Error
// of code TALOS_INVALID_INPUT, everything CheckCaseFold refuses, trailing
// data, and any object key that equals a field name of the target's type
// only under case folding. Keys naming no field are ignored (a proxy
// forwards fields it does not decide on); use UnmarshalFieldsKnown to refuse
// them. Floats are allowed (CheckJSON's non-strict rules).
func UnmarshalFields(raw []byte, v any) error {
	return unmarshalFields(raw, v, false)
}

// UnmarshalFieldsKnown is UnmarshalFields that also refuses object keys
// naming no field of the target (for documents the service itself owns:
// configuration, admin requests).
func UnmarshalFieldsKnown(raw []byte, v any) error {
	return unmarshalFields(raw, v, true)
}

func unmarshalFields(raw []byte, v any, known bool) error {
	generic, err := checkedValue(raw)
	if err != nil {
		return err
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return jsonError("decode target must be a non-nil pointer")
	}
	if key, why := caseSensitiveKeys(generic, rv.Type(), known); why != "" {
		return jsonError(why + " " + quoteKey(key))
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if known {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return Wrap(CodeInvalidInput, "json: "+err.Error(), err)
	}
	return nil
}

// checkedValue applies CheckJSON and the case-fold rule and returns the
// generic value of raw (numbers as json.Number).
func checkedValue(raw []byte) (any, error) {
	if err := CheckJSON(raw, false); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var generic any
	if err := dec.Decode(&generic); err != nil {
		return nil, Wrap(CodeInvalidInput, "json: "+err.Error(), err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, jsonError("trailing data after value")
	}
	if key, dup := foldScan(raw); dup {
		return nil, jsonError("object has two member names equal under case folding, one is " + quoteKey(key))
	}
	return generic, nil
}

// foldKey maps s to a representative of its simple-folding class: every
// rune becomes the smallest rune of its unicode.SimpleFold orbit, so
// foldKey(a) == foldKey(b) exactly when strings.EqualFold(a, b) (for valid
// UTF-8, which CheckJSON guarantees).
func foldKey(s string) string {
	plain := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf || 'a' <= c && c <= 'z' {
			plain = false
			break
		}
	}
	if plain {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r < utf8.RuneSelf:
			if 'a' <= r && r <= 'z' {
				r -= 'a' - 'A'
			}
		default:
			min := r
			for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
				if f < min {
					min = f
				}
			}
			r = min
		}
		b.WriteRune(r)
	}
	return b.String()
}

// caseSensitiveKeys walks x alongside t and returns an offending key and
// why: a key matching a field of a struct only under case folding, or (with
// known) a key matching none.
func caseSensitiveKeys(x any, t reflect.Type, known bool) (string, string) {
	for t != nil && t.Kind() == reflect.Pointer {
		if t.Implements(unmarshalerType) || t.Implements(textUnmarshalerType) {
			return "", ""
		}
		t = t.Elem()
	}
	if t == nil || reflect.PointerTo(t).Implements(unmarshalerType) || reflect.PointerTo(t).Implements(textUnmarshalerType) {
		return "", ""
	}
	switch v := x.(type) {
	case map[string]any:
		switch t.Kind() {
		case reflect.Struct:
			fields := structFields(t)
			folded := foldedFields(t, fields)
			for k, e := range v {
				ft, ok := fields[k]
				if !ok {
					if _, near := folded[foldKey(k)]; near {
						return k, "mis-cased field"
					}
					if known {
						return k, "unknown field"
					}
					continue
				}
				if key, why := caseSensitiveKeys(e, ft, known); why != "" {
					return key, why
				}
			}
		case reflect.Map:
			for _, e := range v {
				if key, why := caseSensitiveKeys(e, t.Elem(), known); why != "" {
					return key, why
				}
			}
		}
	case []any:
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			for _, e := range v {
				if key, why := caseSensitiveKeys(e, t.Elem(), known); why != "" {
					return key, why
				}
			}
		}
	}
	return "", ""
}

// foldedFields returns the folded names of a struct's fields (cached).
func foldedFields(t reflect.Type, fields map[string]reflect.Type) map[string]struct{} {
	if m, ok := foldedFieldsCache.Load(t); ok {
		return m.(map[string]struct{})
	}
	m := make(map[string]struct{}, len(fields))
	for name := range fields {
		m[foldKey(name)] = struct{}{}
	}
	foldedFieldsCache.Store(t, m)
	return m
}

func quoteKey(k string) string {
	if len(k) > maxKeyQuote {
		cut := maxKeyQuote
		for cut > 0 && !utf8.RuneStart(k[cut]) {
			cut--
		}
		k = k[:cut] + "…"
	}
	return strconv.Quote(k)
}
