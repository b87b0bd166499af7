package contracts

import (
	"bytes"
	"encoding/json"
	"reflect"
	"sync"
)

// rawType is what the key walk needs to know of a target type, cached.
type rawType struct {
	opaque bool                    // decodes itself (json.Unmarshaler, encoding.TextUnmarshaler): no constraint
	kind   reflect.Kind            // of the type under its pointers
	fields map[string]reflect.Type // struct: field names as encoding/json spells them
	elem   reflect.Type            // map, slice, array: the element type
}

var rawTypeCache sync.Map // reflect.Type → *rawType

func rawTypeOf(t reflect.Type) *rawType {
	if rt, ok := rawTypeCache.Load(t); ok {
		return rt.(*rawType)
	}
	rt := &rawType{}
	u := t
	for u.Kind() == reflect.Pointer && !rt.opaque {
		if u.Implements(unmarshalerType) || u.Implements(textUnmarshalerType) {
			rt.opaque = true
		}
		u = u.Elem()
	}
	if !rt.opaque && (reflect.PointerTo(u).Implements(unmarshalerType) || reflect.PointerTo(u).Implements(textUnmarshalerType)) {
		rt.opaque = true
	}
	if !rt.opaque {
		rt.kind = u.Kind()
		switch rt.kind {
		case reflect.Struct:
			rt.fields = structFields(u)
		case reflect.Map, reflect.Slice, reflect.Array:
			rt.elem = u.Elem()
		}
	}
	rawTypeCache.Store(t, rt)
	return rt
}

// rawKeys walks the JSON value at raw[i] (valid JSON: CheckJSON has passed;
// whitespace allowed) and reports whether every object key names a field
// of t with exactly the same spelling, as caseSensitiveKeys(…, true) does
// on the decoded value, without decoding the document. t nil places no constraint. It
// returns the index after the value and the first offending key.
func rawKeys(raw []byte, i int, t reflect.Type) (int, string, bool) {
	i = skipSpace(raw, i)
	if i >= len(raw) {
		return i, "", true
	}
	var rt *rawType
	if t != nil {
		if rt = rawTypeOf(t); rt.opaque {
			rt = nil
		}
	}
	switch raw[i] {
	case '{':
		var fields map[string]reflect.Type
		var elem reflect.Type
		if rt != nil {
			switch rt.kind {
			case reflect.Struct:
				fields = rt.fields
			case reflect.Map:
				elem = rt.elem
			}
		}
		i = skipSpace(raw, i+1)
		if i < len(raw) && raw[i] == '}' {
			return i + 1, "", true
		}
		for i < len(raw) {
			end := stringEnd(raw, i+1)
			if end < i+2 || raw[end-1] != '"' {
				return 0, "", false // not a member name: CheckJSON has not passed
			}
			ft := elem
			if fields != nil {
				var found bool
				name := raw[i+1 : end-1]
				if bytes.IndexByte(name, '\\') < 0 {
					ft, found = fields[string(name)]
					if !found {
						return 0, string(name), false
					}
				} else {
					var k string
					if json.Unmarshal(raw[i:end], &k) != nil {
						return 0, string(name), false
					}
					if ft, found = fields[k]; !found {
						return 0, k, false
					}
				}
			}
			i = skipSpace(raw, end) + 1 // ':'
			var bad string
			var ok bool
			if i, bad, ok = rawKeys(raw, i, ft); !ok {
				return 0, bad, false
			}
			i = skipSpace(raw, i)
			if i >= len(raw) || raw[i] != ',' {
				return i + 1, "", true // '}'
			}
			i = skipSpace(raw, i+1)
		}
		return i, "", true
	case '[':
		var elem reflect.Type
		if rt != nil && (rt.kind == reflect.Slice || rt.kind == reflect.Array) {
			elem = rt.elem
		}
		i = skipSpace(raw, i+1)
		if i < len(raw) && raw[i] == ']' {
			return i + 1, "", true
		}
		for i < len(raw) {
			var bad string
			var ok bool
			if i, bad, ok = rawKeys(raw, i, elem); !ok {
				return 0, bad, false
			}
			i = skipSpace(raw, i)
			if i >= len(raw) || raw[i] != ',' {
				return i + 1, "", true // ']'
			}
			i++
		}
		return i, "", true
	case '"':
		return stringEnd(raw, i+1), "", true
	}
	// A number or a literal.
	for i < len(raw) {
		switch raw[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i, "", true
		}
		i++
	}
	return i, "", true
}

func skipSpace(raw []byte, i int) int {
	for i < len(raw) {
		switch raw[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// stringEnd returns the index after the closing quote of the string whose
// body starts at raw[i].
func stringEnd(raw []byte, i int) int {
	for i < len(raw) {
		switch raw[i] {
		case '\\':
			i += 2
		case '"':
			return i + 1
		default:
			i++
		}
	}
	return len(raw)
}
