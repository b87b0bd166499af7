package contracts

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestSchemaNamesMatchFiles(t *testing.T) {
	names := SchemaNames()
	if !slices.IsSorted(names) {
		t.Errorf("SchemaNames not sorted: %q", names)
	}
	required := []string{
		"capability_token", "frame", "mcp_payload", "error", "common/errors", "audit/audit_event",
		"crypto/double_ratchet_header", "crypto/double_ratchet_message", "crypto/x3dh_prekey_bundle",
		"crypto/http_attestation", "a2a/session", "a2a/session_event", "a2a/encrypted_frame",
		"a2a/frame_send_request", "a2a/session_create_request", "a2a/session_accept_request",
		"a2a/session_rotate_request", "a2a/group", "a2a/group_event", "a2a/group_create_request",
		"a2a/group_member_add_request", "rbac/role", "rbac/binding", "rbac/principal", "rbac/org",
		"rbac/team", "secrets/envelope", "secrets/envelope.v1", "ai_gateway/budget",
		"ai_gateway/usage_event", "tga/v1/action_request", "tga/v1/supervisor_decision",
		"tga/v1/tool_call", "tga/v1/tool_effect", "tga/v1/execution_log_entry",
		"config/v1/talos.config",
	}
	for _, n := range required {
		if !slices.Contains(names, n) {
			t.Errorf("schema %s missing", n)
		}
	}
	if slices.Contains(names, "common/defs") {
		t.Error("definitions-only common/defs listed as a document schema")
	}
	// Every file is a draft 2020-12 schema whose $id is its name under SchemaBaseURL.
	files := 0
	err := fs.WalkDir(Schemas(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		files++
		b, err := fs.ReadFile(Schemas(), p)
		if err != nil {
			return err
		}
		var head struct {
			Schema string `json:"$schema"`
			ID     string `json:"$id"`
		}
		if err := json.Unmarshal(b, &head); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if err := CheckJSON(b, false); err != nil {
			t.Errorf("%s: %v", p, err)
		}
		if head.Schema != "https://json-schema.org/draft/2020-12/schema" {
			t.Errorf("%s: $schema %q", p, head.Schema)
		}
		if head.ID != SchemaBaseURL+p {
			t.Errorf("%s: $id %q, want %q", p, head.ID, SchemaBaseURL+p)
		}
		name := strings.TrimSuffix(p, ".json")
		if !definitionsOnly[name] && !slices.Contains(names, name) {
			t.Errorf("%s: not listed by SchemaNames", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files != len(names)+len(definitionsOnly) {
		t.Errorf("%d schema files, %d names", files, len(names))
	}
}

// TestValidateCompilesConcurrently compiles every schema from many goroutines
// at once on a fresh registry (run with -race).
func TestValidateCompilesConcurrently(t *testing.T) {
	r := newSchemaRegistry()
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range r.names {
				name := r.names[(i+g)%len(r.names)]
				err := r.validate(name, []byte(`{}`))
				if c := CodeOf(err); err != nil && c != CodeSchemaValidationError {
					t.Errorf("%s: %v", name, err)
				}
			}
		}()
	}
	wg.Wait()
	for _, name := range r.names {
		if e := r.entries[name]; e.sch == nil || e.err != nil {
			t.Errorf("%s: not compiled: %v", name, e.err)
		}
	}
}

func TestValidateInputErrors(t *testing.T) {
	deep := strings.Repeat("[", MaxJSONDepth+1) + strings.Repeat("]", MaxJSONDepth+1)
	big := `{"x":"` + strings.Repeat("a", MaxJSONSize) + `"}`
	for _, tc := range []struct{ name, doc string }{
		{"empty", ``},
		{"garbage", "\xde\xad\xbe\xef"},
		{"truncated", `{"version`},
		{"duplicate key", `{"version":1,"version":1,"type":"DATA","payload":""}`},
		{"trailing data", `{"version":1,"type":"DATA","payload":""} {}`},
		{"lone surrogate", `{"version":1,"type":"DATA","payload":"\ud800"}`},
		{"unsafe integer", `{"version":9007199254740993,"type":"DATA","payload":""}`},
		{"too deep", deep},
		{"too large", big},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Validate("frame", []byte(tc.doc))
			if !errors.Is(err, ErrInvalidInput) {
				t.Fatalf("Validate = %v, want TALOS_INVALID_INPUT", err)
			}
			var ve *ValidationError
			if errors.As(err, &ve) {
				t.Fatal("input error carries a ValidationError")
			}
		})
	}
	err := Validate("no/such", []byte(`{}`))
	if !errors.Is(err, ErrUnknownSchema) || !errors.Is(err, ErrInvalidInput) {
		t.Errorf("unknown schema: %v", err)
	}
	if err := Validate("common/defs", []byte(`{}`)); !errors.Is(err, ErrUnknownSchema) {
		t.Errorf("definitions-only schema: %v", err)
	}
	if err := Validate("frame", []byte(` {"version":1,"type":"DATA","payload":""}`+"\n")); err != nil {
		t.Errorf("valid frame with surrounding whitespace: %v", err)
	}
}

func TestValidationErrorReport(t *testing.T) {
	doc := `{"id":"b","scope_type":"team","scope_id":"t","reset_at":"hunter2-not-a-date","max_usd":-1,"extra~/ü":1}`
	err := Validate("ai_gateway/budget", []byte(doc))
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeSchemaValidationError {
		t.Fatalf("Validate = %v, want SCHEMA_VALIDATION_ERROR", err)
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatal("no *ValidationError in the chain")
	}
	if ve.Schema != "ai_gateway/budget" || e.Details["schema"] != "ai_gateway/budget" {
		t.Errorf("schema name: %q, details %v", ve.Schema, e.Details["schema"])
	}
	if got, ok := e.Details["violations"].([]Violation); !ok || !slices.Equal(got, ve.Violations) {
		t.Errorf("details violations %v, want %v", e.Details["violations"], ve.Violations)
	}
	want := []Violation{
		{Pointer: "", Keyword: "additionalProperties"},
		{Pointer: "/max_usd", Keyword: "minimum"},
		{Pointer: "/reset_at", Keyword: "format"},
	}
	if len(ve.Violations) != len(want) {
		t.Fatalf("violations %+v, want %d", ve.Violations, len(want))
	}
	for i, w := range want {
		if v := ve.Violations[i]; v.Pointer != w.Pointer || v.Keyword != w.Keyword {
			t.Errorf("violation %d = %+v, want %s at %q", i, v, w.Keyword, w.Pointer)
		}
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error quotes a document value: %v", err)
	}
	if !strings.Contains(err.Error(), "/reset_at: not a valid date-time") {
		t.Errorf("error %q lacks the pointer and reason", err)
	}
	if b, err := json.Marshal(e); err != nil || !strings.Contains(string(b), `"pointer":"/max_usd"`) {
		t.Errorf("JSON form %s (%v) lacks the violations", b, err)
	}
}

func TestValidationPointers(t *testing.T) {
	// Audit meta values must be scalars: a nested object is reported at its
	// member, with the member name escaped per RFC 6901.
	event := `{"schema_id":"talos.audit_event","schema_version":"v1","event_id":"01945533-3158-7c85-992d-9865f1715694",` +
		`"ts":"2026-01-11T18:00:00.000Z","request_id":"r","surface_id":"s","outcome":"success",` +
		`"principal":{"auth_mode":"anonymous","principal_id":"anonymous"},"http":{"method":"GET","path":"/x","status_code":200},` +
		`"meta":{"a/b c~ü%":{}},"event_hash":"0000000000000000000000000000000000000000000000000000000000000000"}`
	err := Validate("audit/audit_event", []byte(event))
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Violations) != 1 {
		t.Fatalf("Validate = %v", err)
	}
	if got, want := ve.Violations[0].Pointer, "/meta/a~1b c~0ü%"; got != want {
		t.Errorf("pointer %q, want %q", got, want)
	}
}

func TestValidationErrorBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"config_version":"1.0","global":{},"extensions":{},"mcp_connector":{"allowed_servers":[`)
	for i := range 50 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d", i)
	}
	b.WriteString(`]},"` + strings.Repeat("k", 2000) + `":1}`)
	err := Validate("config/v1/talos.config", []byte(b.String()))
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Validate = %v", err)
	}
	if len(ve.Violations) != maxViolations || ve.Omitted != 51-maxViolations {
		t.Errorf("%d violations, %d omitted; want %d and %d", len(ve.Violations), ve.Omitted, maxViolations, 51-maxViolations)
	}
	for _, v := range ve.Violations {
		if len(v.Message) > maxViolationMessage {
			t.Errorf("message of %d bytes", len(v.Message))
		}
	}
	if !strings.Contains(err.Error(), "(and 19 more)") {
		t.Errorf("error %q does not count the omitted violations", err)
	}
}

func TestKeywordOf(t *testing.T) {
	for loc, want := range map[string]string{
		"/required": "required",
		"/properties/principal/$ref/allOf/1/then/not":              "not",
		"/properties/http/$ref/dependentRequired/client_ip_hash/0": "dependentRequired",
		"/properties/type/enum":                                    "enum",
		"/properties/frame/$ref/properties/sender_seq/minimum":     "minimum",
		"/properties/meta/additionalProperties/maxLength":          "maxLength",
		"/properties/auth_mode/$ref/properties/principal_id/const": "const",
		"/properties/x/$ref":                                       "false",
	} {
		if got := keywordOf(loc); got != want {
			t.Errorf("keywordOf(%q) = %q, want %q", loc, got, want)
		}
	}
}

func TestTruncateUTF8(t *testing.T) {
	s := strings.Repeat("ü", 200) // 400 bytes
	got := truncateUTF8(s, 256)
	if len(got) > 256 || !strings.HasSuffix(got, "...") || !utf8ValidString(got) {
		t.Errorf("truncateUTF8 = %d bytes %q", len(got), got)
	}
	if truncateUTF8("short", 256) != "short" {
		t.Error("short string changed")
	}
}

func utf8ValidString(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

// TestErrorJSONMatchesSchema checks that the JSON form of *Error is the
// contract error envelope (common/errors) for every code that envelope lists.
func TestErrorJSONMatchesSchema(t *testing.T) {
	b, err := fs.ReadFile(Schemas(), "common/errors.json")
	if err != nil {
		t.Fatal(err)
	}
	var sch struct {
		Properties struct {
			Code struct {
				Enum []Code `json:"enum"`
			} `json:"code"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(b, &sch); err != nil {
		t.Fatal(err)
	}
	if len(sch.Properties.Code.Enum) == 0 {
		t.Fatal("no codes in common/errors")
	}
	for _, code := range sch.Properties.Code.Enum {
		e := New(code, "something failed").WithRetryable(code == CodeTransportTimeout)
		e.RequestID = "req-1"
		e.Details = map[string]any{"k": "v"}
		e.Cause = errors.New("never serialized")
		out, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		if err := Validate("common/errors", out); err != nil {
			t.Errorf("%s: %s: %v", code, out, err)
		}
	}
	// A schema violation report is itself a valid envelope once its code is
	// one the envelope knows.
	verr := Validate("frame", []byte(`{}`))
	var e *Error
	if !errors.As(verr, &e) {
		t.Fatal(verr)
	}
	c := *e
	c.Code = CodeInvalidInput
	out, _ := json.Marshal(&c)
	if err := Validate("common/errors", out); err != nil {
		t.Errorf("%s: %v", out, err)
	}
}
