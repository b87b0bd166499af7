package contracts

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v5"
)

// The JSON Schemas of this library, written for it and equivalent to the
// Talos contracts' schemas in what they accept and reject.
//
//go:embed schemas
var schemaFiles embed.FS

// SchemaBaseURL is the prefix of the $id of every embedded schema: the schema
// named "a2a/session" has the $id SchemaBaseURL + "a2a/session.json".
const SchemaBaseURL = "https://talosgo.dev/schemas/"

// definitionsOnly lists the embedded files that hold shared definitions
// only; they are not document schemas and Validate does not accept their names.
var definitionsOnly = map[string]bool{"common/defs": true}

// ErrUnknownSchema is the cause of the error Validate returns for a schema
// name that is not embedded (see SchemaNames). The error itself has code
// TALOS_INVALID_INPUT.
var ErrUnknownSchema = errors.New("contracts: unknown schema")

// A Violation is one reason a document does not match a schema.
type Violation struct {
	// Pointer is the RFC 6901 JSON pointer of the offending value in the
	// document: "" for the document itself, "/http/status_code" for a member.
	// For "required" and "additionalProperties" it points at the object.
	Pointer string `json:"pointer"`
	// Keyword is the JSON Schema keyword that failed, e.g. "required",
	// "pattern", "additionalProperties", "const", "not".
	Keyword string `json:"keyword"`
	// Message describes the failure. It never quotes string values of the
	// document (property names may appear), and is at most 256 bytes.
	Message string `json:"message"`
}

// A ValidationError lists why a document does not match a schema. Validate
// returns it as the Cause of a *Error with code SCHEMA_VALIDATION_ERROR, so
// errors.As finds it:
//
//	var ve *contracts.ValidationError
//	if errors.As(err, &ve) {
//		for _, v := range ve.Violations { ... }
//	}
type ValidationError struct {
	// Schema is the schema name, e.g. "audit/audit_event".
	Schema string
	// Violations holds at most 32 violations, sorted by pointer, then keyword.
	Violations []Violation
	// Omitted counts the violations left out beyond the first 32.
	Omitted int
}

// Error returns the schema name and the violations, one "pointer: message"
// after another.
func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("contracts: document does not match schema ")
	b.WriteString(e.Schema)
	for i, v := range e.Violations {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(pointerText(v.Pointer))
		b.WriteString(": ")
		b.WriteString(v.Message)
	}
	if e.Omitted > 0 {
		fmt.Fprintf(&b, " (and %d more)", e.Omitted)
	}
	return b.String()
}

func pointerText(p string) string {
	if p == "" {
		return "(document)"
	}
	return p
}

// Schemas returns the embedded schema files as a read-only file system: the
// schema named N is the file N + ".json" (with common/defs.json holding the
// shared definitions). Cross-file $refs are relative, so a validator given
// the whole tree under SchemaBaseURL resolves them.
func Schemas() fs.FS {
	sub, err := fs.Sub(schemaFiles, "schemas")
	if err != nil {
		panic("contracts: embedded schemas missing: " + err.Error()) // unreachable: the directory is embedded
	}
	return sub
}

// SchemaNames returns the names Validate accepts, sorted: the file paths
// under Schemas() without ".json", e.g. "a2a/session", "audit/audit_event",
// "secrets/envelope.v1", "tga/v1/tool_call". The slice is a fresh copy.
func SchemaNames() []string {
	return slices.Clone(schemaRegistryOnce().names)
}

// Validate checks the JSON document doc against the embedded schema called
// name (see SchemaNames).
//
// It returns nil when the document matches, and otherwise a *Error:
//   - code TALOS_INVALID_INPUT when name is not an embedded schema (its Cause
//     is ErrUnknownSchema), or when doc is not one JSON value under this
//     library's input rules (those of CheckJSON, non-strict: duplicate keys,
//     lone surrogates, invalid UTF-8, integers beyond ±MaxSafeInteger, more
//     than MaxJSONSize bytes or MaxJSONDepth levels of nesting are rejected);
//   - code SCHEMA_VALIDATION_ERROR when doc is JSON but does not match. Its
//     Cause is a *ValidationError, and Details holds "schema" (the name) and
//     "violations" (the []Violation).
//
// The schemas follow JSON Schema draft 2020-12 and are compiled once, on
// first use. The format keyword is asserted; the schemas use it only where
// the contracts assert it too (date-time in ai_gateway/budget and
// ai_gateway/usage_event, uri in config/v1/talos.config). Every other
// identifier, timestamp and encoding is checked by an explicit pattern, with
// Go (RE2) regular expressions. contentEncoding is not asserted.
//
// Validate is safe for concurrent use.
func Validate(name string, doc []byte) error {
	return schemaRegistryOnce().validate(name, doc)
}

func (r *schemaRegistry) validate(name string, doc []byte) error {
	e, ok := r.entries[name]
	if !ok {
		return Wrap(CodeInvalidInput, "contracts: unknown schema "+strconv.Quote(truncateUTF8(name, 100)), ErrUnknownSchema)
	}
	sch, err := e.compiled()
	if err != nil {
		return err
	}
	if err := CheckJSON(doc, false); err != nil {
		msg := "contracts: " + name + ": document is not acceptable JSON"
		var ce *Error
		if errors.As(err, &ce) && ce.Message != "" {
			msg += ": " + ce.Message
		}
		return Wrap(CodeInvalidInput, msg, err)
	}
	v, err := decodeJSONValue(doc)
	if err != nil {
		return Wrap(CodeInvalidInput, "contracts: "+name+": document is not acceptable JSON", err)
	}
	err = sch.Validate(v)
	if err == nil {
		return nil
	}
	var jve *jsonschema.ValidationError
	if !errors.As(err, &jve) {
		return Wrap(CodeInternal, "contracts: "+name+": validator failure", err)
	}
	ve := newValidationError(name, jve)
	return &Error{
		Code:    CodeSchemaValidationError,
		Message: ve.Error(),
		Details: map[string]any{"schema": name, "violations": ve.Violations},
		Cause:   ve,
	}
}

// decodeJSONValue decodes one JSON value with numbers kept as json.Number
// (so integers stay exact for the validator) and rejects trailing data.
func decodeJSONValue(doc []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON value")
	}
	return v, nil
}

// schemaRegistry holds the embedded schemas and compiles each on first use.
type schemaRegistry struct {
	names   []string
	entries map[string]*schemaEntry

	mu       sync.Mutex // guards compiler, which is not safe for concurrent use
	compiler *jsonschema.Compiler
}

type schemaEntry struct {
	reg  *schemaRegistry
	url  string
	once sync.Once
	sch  *jsonschema.Schema
	err  error
}

var schemaRegistryOnce = sync.OnceValue(newSchemaRegistry)

func newSchemaRegistry() *schemaRegistry {
	c := jsonschema.NewCompiler()
	c.Draft = jsonschema.Draft2020
	c.AssertFormat = true
	c.LoadURL = func(s string) (io.ReadCloser, error) {
		// Every $ref must resolve inside the embedded set, which is added
		// up front: nothing is ever fetched from the network or disk.
		return nil, fmt.Errorf("contracts: schema reference %q is outside the embedded schemas", s)
	}
	r := &schemaRegistry{entries: make(map[string]*schemaEntry), compiler: c}
	err := fs.WalkDir(schemaFiles, "schemas", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".json" {
			return err
		}
		rel := strings.TrimPrefix(p, "schemas/")
		b, err := schemaFiles.ReadFile(p)
		if err != nil {
			return err
		}
		url := SchemaBaseURL + rel
		if err := c.AddResource(url, bytes.NewReader(b)); err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		name := strings.TrimSuffix(rel, ".json")
		if !definitionsOnly[name] {
			r.names = append(r.names, name)
			r.entries[name] = &schemaEntry{reg: r, url: url}
		}
		return nil
	})
	if err != nil {
		panic("contracts: embedded schemas unreadable: " + err.Error()) // unreachable: the files are embedded and tested
	}
	slices.Sort(r.names)
	return r
}

// compiled returns the compiled schema, compiling it (and the schemas it
// references) on the first call.
func (e *schemaEntry) compiled() (*jsonschema.Schema, error) {
	e.once.Do(func() {
		e.reg.mu.Lock()
		defer e.reg.mu.Unlock()
		sch, err := e.reg.compiler.Compile(e.url)
		if err != nil {
			e.err = Wrap(CodeInternal, "contracts: embedded schema "+e.url+" does not compile", err)
			return
		}
		e.sch = sch
	})
	return e.sch, e.err
}

func newValidationError(name string, root *jsonschema.ValidationError) *ValidationError {
	var vs []Violation
	var walk func(*jsonschema.ValidationError)
	walk = func(ve *jsonschema.ValidationError) {
		if len(ve.Causes) > 0 {
			for _, c := range ve.Causes {
				walk(c)
			}
			return
		}
		kw := keywordOf(ve.KeywordLocation)
		vs = append(vs, Violation{
			Pointer: instancePointer(ve.InstanceLocation),
			Keyword: kw,
			Message: violationMessage(kw, ve.Message),
		})
	}
	walk(root)
	slices.SortFunc(vs, func(a, b Violation) int {
		if c := strings.Compare(a.Pointer, b.Pointer); c != 0 {
			return c
		}
		if c := strings.Compare(a.Keyword, b.Keyword); c != 0 {
			return c
		}
		return strings.Compare(a.Message, b.Message)
	})
	vs = slices.Compact(vs)
	ve := &ValidationError{Schema: name, Violations: vs}
	if len(vs) > maxViolations {
		ve.Violations = vs[:maxViolations:maxViolations]
		ve.Omitted = len(vs) - maxViolations
	}
	return ve
}

// assertionKeywords are the keywords a leaf violation can name.
var assertionKeywords = map[string]bool{
	"type": true, "const": true, "enum": true, "format": true,
	"minProperties": true, "maxProperties": true, "required": true,
	"additionalProperties": true, "dependentRequired": true, "dependencies": true,
	"propertyNames": true, "unevaluatedProperties": true, "unevaluatedItems": true,
	"minItems": true, "maxItems": true, "uniqueItems": true, "additionalItems": true,
	"items": true, "prefixItems": true, "contains": true, "minContains": true, "maxContains": true,
	"minLength": true, "maxLength": true, "pattern": true,
	"minimum": true, "exclusiveMinimum": true, "maximum": true, "exclusiveMaximum": true,
	"multipleOf": true, "not": true, "oneOf": true, "anyOf": true,
	"contentEncoding": true, "contentMediaType": true, "contentSchema": true,
}

// keywordOf returns the failing keyword named by a keyword location such as
// "/properties/principal/$ref/allOf/1/then/not" or
// "/properties/http/$ref/dependentRequired/client_ip_hash/0". A location
// ending in a false schema yields "false".
func keywordOf(loc string) string {
	segs := strings.Split(loc, "/")
	last := segs[len(segs)-1]
	if assertionKeywords[last] {
		return last
	}
	for i := len(segs) - 2; i >= 0 && i >= len(segs)-3; i-- {
		if s := segs[i]; s == "dependentRequired" || s == "dependencies" {
			return s
		}
	}
	return "false"
}

// instancePointer turns the validator's instance location (tokens escaped
// per RFC 6901, then percent-encoded) into a plain RFC 6901 pointer.
func instancePointer(loc string) string {
	if loc == "" {
		return ""
	}
	toks := strings.Split(strings.TrimPrefix(loc, "/"), "/")
	var b strings.Builder
	for _, t := range toks {
		b.WriteByte('/')
		b.WriteString(percentDecode(t))
	}
	return b.String()
}

// percentDecode decodes %XX escapes; a malformed escape is kept literally.
func percentDecode(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				out = append(out, byte(v))
				i += 2
				continue
			}
		}
		out = append(out, s[i])
	}
	return string(out)
}

// violationMessage returns the validator's message, without the document's
// value for "format" failures (values may be secrets), bounded in length.
func violationMessage(kw, msg string) string {
	switch kw {
	case "format":
		if i := strings.LastIndex(msg, " is not valid "); i >= 0 {
			msg = "not a valid " + strings.Trim(msg[i+len(" is not valid "):], "'")
		} else {
			msg = "not in the required format"
		}
	case "false":
		msg = "not allowed here"
	}
	return truncateUTF8(msg, maxViolationMessage)
}

// truncateUTF8 cuts s to at most n bytes on a rune boundary, marking the cut.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("...")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}
