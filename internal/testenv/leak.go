package testenv

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"reflect"
	"strconv"
	"strings"
)

// LeakForms returns the texts by which key could show up in output: raw,
// hex (both cases), base64 (std and url, padded or not), quoted, and the
// decimal, octal, hex and binary slice forms fmt prints for byte slices
// and arrays. Tests of secret-holding types check that none of them appears
// in any of Renderings.
func LeakForms(key []byte) []string {
	forms := []string{
		string(key),
		hex.EncodeToString(key),
		strings.ToUpper(hex.EncodeToString(key)),
		base64.StdEncoding.EncodeToString(key),
		base64.URLEncoding.EncodeToString(key),
		base64.RawStdEncoding.EncodeToString(key),
		base64.RawURLEncoding.EncodeToString(key),
	}
	head := key[:min(len(key), 12)]
	q := strconv.Quote(string(head))
	forms = append(forms, q[1:len(q)-1])
	for _, verb := range []string{"%d", "%o", "%x", "%X", "%b", "%v", "%#v"} {
		s := fmt.Sprintf(verb, head)
		if verb == "%#v" {
			s = strings.TrimPrefix(s, "[]byte{")
		} else {
			s = strings.Trim(s, "[]")
		}
		forms = append(forms, strings.TrimSuffix(s, "}"))
	}
	return forms
}

// FormatVerbs are the fmt verbs Renderings prints with.
var FormatVerbs = []string{"%v", "%+v", "%#v", "%s", "%d", "%x", "%X", "%o", "%b", "%q", "% x", "%10.3v"}

// Renderings returns every way v is printed or encoded: each of
// FormatVerbs on v and on v inside an exported struct field, Sprint,
// Sprintln, slog's text and JSON handlers, and json.Marshal. With hidden
// set it also prints v inside an unexported field (fmt calls no method of a
// value reached that way) and, for a pointer, the dereferenced value: only
// types that keep their secrets behind a second pointer pass those.
func Renderings(v any, hidden bool) map[string]string {
	out := map[string]string{}
	for _, verb := range FormatVerbs {
		out[verb] = fmt.Sprintf(verb, v)
		out["wrapped "+verb] = fmt.Sprintf(verb, struct{ V any }{v})
		if hidden {
			out["unexported "+verb] = fmt.Sprintf(verb, struct{ v any }{v})
			if rv := reflect.ValueOf(v); rv.Kind() == reflect.Pointer {
				out["dereferenced "+verb] = fmt.Sprintf(verb, rv.Elem().Interface())
			}
		}
	}
	out["Sprint"] = fmt.Sprint(v)
	out["Sprintln"] = fmt.Sprintln(v)
	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("msg", "v", v)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("msg", "v", v)
	out["slog text"] = text.String()
	out["slog json"] = js.String()
	if b, err := json.Marshal(v); err == nil {
		out["json.Marshal"] = string(b)
	} else {
		out["json.Marshal"] = err.Error()
	}
	return out
}
