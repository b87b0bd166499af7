package contracts_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v5"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/internal/testenv"
)

// Schema conformance over the talos-contracts reference data: every schema
// vector (documents the contracts declare valid or invalid against one of
// our schemas) must get the declared verdict from contracts.Validate, and
// every document anywhere in the vectors, plus systematic mutations of the
// valid ones, must get the same verdict from our schema as from the
// contract's own schema compiled by the same library.

// A schemaCase is one document with the verdict the contracts declare.
type schemaCase struct {
	source  string // vector file and location
	schema  string // our schema name
	doc     []byte
	valid   bool
	keyword string   // for invalid cases: the keyword the vector names (error_code), if any
	onlyAt  []string // for invalid cases: if set, every violation must be at one of these pointers
	skip    string   // known-bad vector: why it is skipped
}

// schemaKnownBad lists the vectors whose declared verdict contradicts
// the contract's own schema (contracts-digest.md sections 3.3, 6, 8.3, 9).
var schemaKnownBad = map[string]string{
	"test_vectors/rbac/rbac_vectors.json#invalid_bindings/Principal ID Uppercase UUID": "expects a pattern error, but rbac/binding.schema.json puts no pattern on principal_id: the document is valid under the contract schema (digest 3.3)",
}

// schemaKnownBadGroups lists whole vector groups, by source prefix, that
// contradict the contract schemas.
var schemaKnownBadGroups = map[string]string{
	"test_vectors/tga/tga_vectors.json#valid_": "pre-v1 artifact shape (schema_version \"v1\", proposal.tool/action, risk_tier, lowercase decisions): every \"valid\" document fails the tga.v1 schemas; the file is obsolete (digest 8.3, 9)",
}

// schemaVectorGroups maps the "valid_*"/"invalid_*" groups of the A2A and
// RBAC vector files to our schema names. A group missing here fails the test,
// so a new group in the contracts is never silently ignored.
var schemaVectorGroups = map[string]map[string]string{
	"test_vectors/rbac/rbac_vectors.json": {
		"roles":    "rbac/role",
		"bindings": "rbac/binding",
	},
	"test_vectors/a2a/session_vectors.json": {
		"sessions":         "a2a/session",
		"session_events":   "a2a/session_event",
		"encrypted_frames": "a2a/encrypted_frame",
		"groups":           "a2a/group",
		"group_events":     "a2a/group_event",
	},
	"test_vectors/tga/tga_vectors.json": {
		"action_requests":      "tga/v1/action_request",
		"supervisor_decisions": "tga/v1/supervisor_decision",
		"tool_calls":           "tga/v1/tool_call",
	},
	"test_vectors/a2a/request_vectors.json": {
		"session_create_requests":   "a2a/session_create_request",
		"session_accept_requests":   "a2a/session_accept_request",
		"frame_send_requests":       "a2a/frame_send_request",
		"group_create_requests":     "a2a/group_create_request",
		"group_member_add_requests": "a2a/group_member_add_request",
	},
}

func schemaDecode(t testing.TB, b []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		t.Fatal(err)
	}
}

func schemaReadContract(t testing.TB, rel string, v any) {
	t.Helper()
	schemaDecode(t, testenv.ReadContract(t, rel), v)
}

func schemaMarshal(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type schemaVectorDoc struct {
	Description string          `json:"description"`
	Name        string          `json:"name"`
	Input       json.RawMessage `json:"input"`
	Data        json.RawMessage `json:"data"`
	ErrorCode   string          `json:"error_code"`
}

// schemaCases collects every schema vector of the reference data.
func schemaCases(t *testing.T) []schemaCase {
	t.Helper()
	var cases []schemaCase
	add := func(c schemaCase) {
		if reason, ok := schemaKnownBad[c.source]; ok {
			c.skip = reason
		}
		for prefix, reason := range schemaKnownBadGroups {
			if strings.HasPrefix(c.source, prefix) {
				c.skip = reason
			}
		}
		if strings.HasPrefix(c.source, "test_vectors/tga/tga_vectors.json#invalid_") {
			// Pre-v1 documents: still rejected, but their error_code names
			// a keyword of the obsolete pre-v1 schema, not of tga.v1.
			c.keyword = ""
		}
		cases = append(cases, c)
	}

	// sdk/identity_vectors.json: {principal|org|team: {valid|invalid: [{name, data, error_code}]}}.
	{
		const rel = "test_vectors/sdk/identity_vectors.json"
		var groups map[string]map[string][]schemaVectorDoc
		schemaReadContract(t, rel, &groups)
		for g, kinds := range groups {
			for kind, docs := range kinds {
				if kind != "valid" && kind != "invalid" {
					t.Fatalf("%s: unexpected group %s/%s", rel, g, kind)
				}
				for _, d := range docs {
					add(schemaCase{source: rel + "#" + g + "/" + d.Name, schema: "rbac/" + g, doc: d.Data, valid: kind == "valid", keyword: d.ErrorCode})
				}
			}
		}
	}

	// rbac and a2a: {valid_X|invalid_X: [{description, input, error_code}]}.
	for rel, groups := range schemaVectorGroups {
		var file map[string]json.RawMessage
		schemaReadContract(t, rel, &file)
		for key, raw := range file {
			var valid bool
			var group string
			switch {
			case strings.HasPrefix(key, "valid_"):
				valid, group = true, strings.TrimPrefix(key, "valid_")
			case strings.HasPrefix(key, "invalid_"):
				group = strings.TrimPrefix(key, "invalid_")
			default:
				continue // description
			}
			schema, ok := groups[group]
			if !ok {
				t.Fatalf("%s: group %q has no schema mapping", rel, key)
			}
			var docs []schemaVectorDoc
			schemaDecode(t, raw, &docs)
			for _, d := range docs {
				add(schemaCase{source: rel + "#" + key + "/" + d.Description, schema: schema, doc: d.Input, valid: valid, keyword: d.ErrorCode})
			}
		}
	}

	// tga/adversarial_vectors.json: every group is invalid against the v1 action request.
	{
		const rel = "test_vectors/tga/adversarial_vectors.json"
		var file map[string][]schemaVectorDoc
		schemaReadContract(t, rel, &file)
		for key, docs := range file {
			for _, d := range docs {
				add(schemaCase{source: rel + "#" + key + "/" + d.Description, schema: "tga/v1/action_request", doc: d.Input, keyword: d.ErrorCode})
			}
		}
	}

	// secrets/envelope_vectors.json (hex form) and secrets/envelope_v1.json (base64url form).
	{
		const rel = "test_vectors/secrets/envelope_vectors.json"
		var file map[string][]schemaVectorDoc
		schemaReadContract(t, rel, &file)
		for key, docs := range file {
			for _, d := range docs {
				add(schemaCase{source: rel + "#" + key + "/" + d.Description, schema: "secrets/envelope", doc: d.Input, valid: key == "valid", keyword: d.ErrorCode})
			}
		}
		var v1 []struct {
			Title    string          `json:"title"`
			Envelope json.RawMessage `json:"envelope"`
		}
		schemaReadContract(t, "test_vectors/secrets/envelope_v1.json", &v1)
		for _, d := range v1 {
			add(schemaCase{source: "test_vectors/secrets/envelope_v1.json#" + d.Title, schema: "secrets/envelope.v1", doc: d.Envelope, valid: true})
		}
	}

	// audit_event_vectors.json: each event with its event_hash is a valid
	// audit event; without it, it lacks a required member.
	{
		const rel = "test_vectors/audit_event_vectors.json"
		var file struct {
			Tests []struct {
				Name      string         `json:"name"`
				Event     map[string]any `json:"event_without_hash"`
				EventHash string         `json:"event_hash"`
			} `json:"tests"`
		}
		schemaReadContract(t, rel, &file)
		for _, c := range file.Tests {
			add(schemaCase{source: rel + "#" + c.Name + "/without_hash", schema: "audit/audit_event", doc: schemaMarshal(t, c.Event), keyword: "required", onlyAt: []string{""}})
			c.Event["event_hash"] = c.EventHash
			add(schemaCase{source: rel + "#" + c.Name, schema: "audit/audit_event", doc: schemaMarshal(t, c.Event), valid: true})
		}
	}

	// tga/golden_trace_chain.json: the artifacts carry hex digests, which the
	// v1 schemas reject (they demand base64url): digest 8.3. They must be
	// rejected exactly there and nowhere else.
	{
		const rel = "test_vectors/tga/golden_trace_chain.json"
		var file map[string]json.RawMessage
		schemaReadContract(t, rel, &file)
		hexDigests := map[string][]string{
			"action_request":      {"/_digest"},
			"supervisor_decision": {"/_digest", "/action_request_digest"},
			"tool_call":           {"/_digest", "/supervisor_decision_digest", "/capability_digest", "/args_digest"}, // the last two are 47-character placeholders
			"tool_effect":         {"/_digest", "/tool_call_digest"},
		}
		for name, at := range hexDigests {
			raw, ok := file[name]
			if !ok {
				t.Fatalf("%s: no %s", rel, name)
			}
			add(schemaCase{source: rel + "#" + name, schema: "tga/v1/" + name, doc: raw, keyword: "pattern", onlyAt: at})
		}
	}

	// sdk/frame_codec.json: encoded frames are valid frames; the unknown type is not.
	{
		const rel = "test_vectors/sdk/frame_codec.json"
		var file struct {
			Vectors []struct {
				TestID string `json:"test_id"`
				Inputs struct {
					Encoded string `json:"encoded_base64url"`
				} `json:"inputs"`
				Expected struct {
					Encoded string `json:"encoded_base64url"`
				} `json:"expected"`
			} `json:"vectors"`
			Negative []struct {
				TestID string `json:"test_id"`
				Inputs struct {
					Encoded string `json:"encoded_base64url"`
				} `json:"inputs"`
			} `json:"negative_cases"`
		}
		schemaReadContract(t, rel, &file)
		for _, v := range file.Vectors {
			enc := v.Inputs.Encoded + v.Expected.Encoded
			add(schemaCase{source: rel + "#" + v.TestID, schema: "frame", doc: schemaB64u(t, enc), valid: true})
		}
		for _, v := range file.Negative {
			if v.TestID == "decode_invalid_type" {
				add(schemaCase{source: rel + "#" + v.TestID, schema: "frame", doc: schemaB64u(t, v.Inputs.Encoded), keyword: "enum", onlyAt: []string{"/type"}})
			}
		}
	}

	// sdk/mcp_sign_verify.json: the canonical payload is a valid MCP payload.
	{
		const rel = "test_vectors/sdk/mcp_sign_verify.json"
		var file struct {
			Vectors []struct {
				TestID   string `json:"test_id"`
				Expected struct {
					Payload string `json:"payload_canonical"`
				} `json:"expected"`
			} `json:"vectors"`
		}
		schemaReadContract(t, rel, &file)
		for _, v := range file.Vectors {
			add(schemaCase{source: rel + "#" + v.TestID, schema: "mcp_payload", doc: []byte(v.Expected.Payload), valid: true})
		}
	}

	// Ratchet v1.1 trace and micro-vectors: headers and wire messages are valid.
	{
		const rel = "test_vectors/sdk/ratchet/v1_1_0_roundtrip.json"
		var file struct {
			Bob struct {
				Bundle json.RawMessage `json:"prekey_bundle"`
			} `json:"bob"`
			Steps []struct {
				Step   json.Number     `json:"step"`
				Header json.RawMessage `json:"header"`
				Wire   string          `json:"wire_message_b64u"`
			} `json:"steps"`
		}
		schemaReadContract(t, rel, &file)
		for _, s := range file.Steps {
			if s.Header != nil {
				add(schemaCase{source: rel + "#steps/" + s.Step.String() + "/header", schema: "crypto/double_ratchet_header", doc: s.Header, valid: true})
			}
			if s.Wire != "" {
				add(schemaCase{source: rel + "#steps/" + s.Step.String() + "/wire_message_b64u", schema: "crypto/double_ratchet_message", doc: schemaB64u(t, s.Wire), valid: true})
			}
		}
		// The trace writes the unused one-time prekey as null; the contract
		// schema types it as a string, so the bundle as written is rejected
		// there, and only there (the ratchet package reads bundles itself).
		add(schemaCase{source: rel + "#bob/prekey_bundle", schema: "crypto/x3dh_prekey_bundle", doc: file.Bob.Bundle, keyword: "type", onlyAt: []string{"/one_time_prekey"}})

		var hdr struct {
			Cases []struct {
				ID     string          `json:"id"`
				Header json.RawMessage `json:"input_header"`
			} `json:"test_cases"`
		}
		schemaReadContract(t, "test_vectors/sdk/ratchet/header_canonical_bytes.json", &hdr)
		for _, c := range hdr.Cases {
			add(schemaCase{source: "test_vectors/sdk/ratchet/header_canonical_bytes.json#" + c.ID, schema: "crypto/double_ratchet_header", doc: c.Header, valid: true})
		}
		var wire struct {
			Cases []struct {
				ID      string          `json:"id"`
				Message json.RawMessage `json:"input_message"`
			} `json:"test_cases"`
		}
		schemaReadContract(t, "test_vectors/sdk/ratchet/wire_message_canonical.json", &wire)
		for _, c := range wire.Cases {
			add(schemaCase{source: "test_vectors/sdk/ratchet/wire_message_canonical.json#" + c.ID, schema: "crypto/double_ratchet_message", doc: c.Message, valid: true})
		}
	}

	// tga/v1 governance fixtures: requests and responses of the governance API.
	// Several fixtures carry placeholder digests longer than the schema's 44
	// characters, or non-UUID idempotency keys (digest 8.3); those documents
	// are rejected by the contract schemas, at exactly the listed members.
	for _, fx := range schemaTGAFixtures {
		rel := "test_vectors/tga/v1/" + fx.file
		var file map[string]json.RawMessage
		schemaReadContract(t, rel, &file)
		raw, ok := file[fx.member]
		if !ok {
			t.Fatalf("%s: no %s", rel, fx.member)
		}
		if fx.sub != "" {
			var inner map[string]json.RawMessage
			schemaDecode(t, raw, &inner)
			raw = inner[fx.sub]
		}
		if fx.index >= 0 {
			var items []json.RawMessage
			schemaDecode(t, raw, &items)
			raw = items[fx.index]
		}
		add(schemaCase{source: rel + "#" + fx.member + fx.subPath(), schema: fx.schema, doc: raw, valid: fx.invalidAt == nil, keyword: fx.keyword, onlyAt: fx.invalidAt})
	}
	return cases
}

type schemaTGAFixture struct {
	file, member, sub string
	index             int
	schema            string
	keyword           string
	invalidAt         []string
}

func (f schemaTGAFixture) subPath() string {
	s := ""
	if f.sub != "" {
		s += "/" + f.sub
	}
	if f.index >= 0 {
		s += fmt.Sprintf("/%d", f.index)
	}
	return s
}

const (
	schemaAuthReq  = "tga/v1/governance.authorize.v1.request"
	schemaAuthResp = "tga/v1/governance.authorize.v1.response"
)

// schemaPlaceholderDigests are the members of the fixtures' tool calls
// that hold 47-character placeholders (base64url of ASCII labels) where the
// schema wants a 43/44-character digest.
var schemaPlaceholderDigests = []string{"/tool_call/_digest", "/tool_call/args_digest", "/tool_call/capability_digest", "/tool_call/supervisor_decision_digest"}

var schemaTGAFixtures = []schemaTGAFixture{
	{file: "authorize_allow.json", member: "input", index: -1, schema: schemaAuthReq},
	{file: "authorize_allow.json", member: "expected", index: -1, schema: schemaAuthResp, keyword: "pattern", invalidAt: schemaPlaceholderDigests},
	{file: "authorize_session_cache_hit.json", member: "input", index: -1, schema: schemaAuthReq},
	{file: "authorize_session_cache_hit.json", member: "expected", index: -1, schema: schemaAuthResp, keyword: "pattern", invalidAt: schemaPlaceholderDigests},
	{file: "authorize_deny_expired.json", member: "input", index: -1, schema: schemaAuthReq},
	{file: "authorize_deny_expired.json", member: "expected", index: -1, schema: schemaAuthResp},
	{file: "authorize_deny_invalid_signature.json", member: "input", index: -1, schema: schemaAuthReq},
	{file: "authorize_deny_invalid_signature.json", member: "expected", index: -1, schema: schemaAuthResp},
	{file: "authorize_deny_constraint_mismatch_args.json", member: "input", index: -1, schema: schemaAuthReq},
	{file: "authorize_deny_constraint_mismatch_args.json", member: "expected", index: -1, schema: schemaAuthResp},
	{file: "authorize_deny_constraint_mismatch_server.json", member: "input", index: -1, schema: schemaAuthReq},
	{file: "authorize_deny_constraint_mismatch_server.json", member: "expected", index: -1, schema: schemaAuthResp},
	{file: "log_redaction.json", member: "input", index: -1, schema: "tga/v1/governance.log.v1.request", keyword: "pattern", invalidAt: []string{"/prev_entry_digest"}},
	{file: "log_redaction.json", member: "expected", index: -1, schema: "tga/v1/governance.log.v1.response", keyword: "pattern", invalidAt: []string{"/entry/prev_entry_digest", "/entry/artifact_digest", "/entry/entry_digest"}},
	{file: "recover_divergence.json", member: "input", index: -1, schema: "tga/v1/governance.recover.v1.request"},
	{file: "recover_divergence.json", member: "expected", index: -1, schema: "tga/v1/governance.recover.v1.response"},
	{file: "recover_divergence.json", member: "fixtures", sub: "entries", index: 0, schema: "tga/v1/execution_log_entry", keyword: "pattern", invalidAt: []string{"/artifact_digest"}},
}

func schemaB64u(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		t.Fatalf("base64url %q: %v", s, err)
	}
	return b
}

func schemaViolations(t testing.TB, err error) []contracts.Violation {
	t.Helper()
	var ve *contracts.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T) does not wrap a *contracts.ValidationError", err, err)
	}
	if contracts.CodeOf(err) != contracts.CodeSchemaValidationError {
		t.Fatalf("error code %s, want %s", contracts.CodeOf(err), contracts.CodeSchemaValidationError)
	}
	return ve.Violations
}

// schemaVectorCounts is the number of schema vectors each file holds
// (digest section 9), so that none is silently dropped.
var schemaVectorCounts = map[string]int{
	"test_vectors/sdk/identity_vectors.json":     14,
	"test_vectors/rbac/rbac_vectors.json":        14,
	"test_vectors/a2a/session_vectors.json":      13,
	"test_vectors/a2a/request_vectors.json":      7,
	"test_vectors/tga/adversarial_vectors.json":  3,
	"test_vectors/tga/tga_vectors.json":          8,
	"test_vectors/secrets/envelope_vectors.json": 4,
	"test_vectors/secrets/envelope_v1.json":      1,
	"test_vectors/audit_event_vectors.json":      10, // 5 events, with and without event_hash
	"test_vectors/tga/golden_trace_chain.json":   4,
}

func TestSchemaVectors(t *testing.T) {
	cases := schemaCases(t)
	counts := map[string]int{}
	for _, c := range cases {
		counts[c.source[:strings.IndexByte(c.source, '#')]]++
	}
	for file, want := range schemaVectorCounts {
		if counts[file] != want {
			t.Errorf("%s: %d schema vectors, want %d", file, counts[file], want)
		}
	}
	seen := map[string]bool{}
	for _, c := range cases {
		if seen[c.source] {
			t.Fatalf("duplicate case source %s", c.source)
		}
		seen[c.source] = true
		t.Run(c.source, func(t *testing.T) {
			t.Parallel()
			if c.skip != "" {
				t.Skip("known-bad vector: " + c.skip)
			}
			err := contracts.Validate(c.schema, c.doc)
			if c.valid {
				if err != nil {
					t.Fatalf("Validate(%s) = %v, want valid", c.schema, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate(%s) accepted an invalid document", c.schema)
			}
			vs := schemaViolations(t, err)
			if c.keyword != "" && !slices.ContainsFunc(vs, func(v contracts.Violation) bool { return v.Keyword == c.keyword }) {
				t.Errorf("no %q violation among %+v", c.keyword, vs)
			}
			for _, v := range vs {
				if c.onlyAt != nil && !slices.Contains(c.onlyAt, v.Pointer) {
					t.Errorf("violation at %q (%s: %s), want only at %q", v.Pointer, v.Keyword, v.Message, c.onlyAt)
				}
			}
		})
	}
	t.Logf("%d schema vectors", len(cases))
}

// TestSchemaVectorsRejectNonJSON checks the frame_codec negatives that are not
// JSON at all: Validate answers TALOS_INVALID_INPUT, not a schema verdict.
func TestSchemaVectorsRejectNonJSON(t *testing.T) {
	var file struct {
		Negative []struct {
			TestID string `json:"test_id"`
			Inputs struct {
				Encoded string `json:"encoded_base64url"`
				Hex     string `json:"encoded_hex"`
			} `json:"inputs"`
		} `json:"negative_cases"`
	}
	schemaReadContract(t, "test_vectors/sdk/frame_codec.json", &file)
	n := 0
	for _, v := range file.Negative {
		var doc []byte
		switch v.TestID {
		case "decode_truncated":
			doc = schemaB64u(t, v.Inputs.Encoded)
		case "decode_garbage":
			doc = []byte{0xde, 0xad, 0xbe, 0xef}
		default:
			continue
		}
		n++
		err := contracts.Validate("frame", doc)
		if contracts.CodeOf(err) != contracts.CodeInvalidInput {
			t.Errorf("%s: Validate = %v, want code %s", v.TestID, err, contracts.CodeInvalidInput)
		}
	}
	if n != 2 {
		t.Fatalf("found %d non-JSON negatives, want 2", n)
	}
}

func TestSchemaSeedsValid(t *testing.T) {
	names := contracts.SchemaNames()
	for _, name := range names {
		if len(schemaSeeds[name]) == 0 {
			t.Errorf("schema %s has no seed document", name)
		}
	}
	for name, docs := range schemaSeeds {
		for i, doc := range docs {
			if err := contracts.Validate(name, []byte(doc)); err != nil {
				t.Errorf("%s seed %d: %v", name, i, err)
			}
		}
	}
}

// schemaReferencePath returns the contract schema a schema of ours mirrors,
// relative to the contracts' schemas/ directory.
func schemaReferencePath(name string) string {
	switch name {
	case "capability_token", "frame", "mcp_payload":
		return name + ".json"
	}
	return name + ".schema.json"
}

// schemaReferences compiles the contracts' own schemas with the library our
// validator uses, in its default configuration (formats asserted for
// draft-07 only, as the library does by default). Cross-file references
// under the contracts' $id hosts are served from the reference directory.
func schemaReferences(t testing.TB) func(name string) *jsonschema.Schema {
	t.Helper()
	dir := filepath.Join(testenv.ContractsDir(t), "schemas")
	c := jsonschema.NewCompiler()
	c.LoadURL = func(s string) (io.ReadCloser, error) {
		for _, host := range []string{"https://talosprotocol.com/schemas/", "https://talosprotocol.org/schemas/"} {
			if rest, ok := strings.CutPrefix(s, host); ok {
				return os.Open(filepath.Join(dir, filepath.FromSlash(rest)))
			}
		}
		if strings.HasPrefix(s, "file://") {
			return jsonschema.LoadURL(s)
		}
		return nil, fmt.Errorf("reference schema %s: no network access in tests", s)
	}
	cache := map[string]*jsonschema.Schema{}
	return func(name string) *jsonschema.Schema {
		t.Helper()
		if s, ok := cache[name]; ok {
			return s
		}
		s, err := c.Compile(filepath.Join(dir, filepath.FromSlash(schemaReferencePath(name))))
		if err != nil {
			t.Fatalf("reference schema for %s: %v", name, err)
		}
		cache[name] = s
		return s
	}
}

// schemaVectorCorpus returns every JSON value found in the reference test vectors
// (objects and strings at any depth, plus decoded base64url wire messages
// and frames), deduplicated, as JSON text.
func schemaVectorCorpus(t testing.TB) [][]byte {
	t.Helper()
	root := filepath.Join(testenv.ContractsDir(t), "test_vectors")
	seen := map[string]bool{}
	var out [][]byte
	addValue := func(v any) {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if !seen[string(b)] {
			seen[string(b)] = true
			out = append(out, b)
		}
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			addValue(v)
			for _, k := range schemaSortedKeys(v) {
				walk(v[k])
			}
		case []any:
			for _, e := range v {
				walk(e)
			}
		case string:
			addValue(v)
			// Wire messages and frames travel base64url-wrapped in the vectors.
			if b, err := base64.RawURLEncoding.DecodeString(v); err == nil && len(b) > 1 && b[0] == '{' {
				var inner any
				dec := json.NewDecoder(bytes.NewReader(b))
				dec.UseNumber()
				if dec.Decode(&inner) == nil {
					walk(inner)
				}
			}
		}
	}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(p) != ".json" {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var v any
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		walk(v)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// schemaReferenceProperties returns the member names the contract schema
// declares at its top level when it is an object schema, and nil otherwise
// (the schema then sees every document). Objects with none of these names
// form one class for every schema here (each requires at least one of its
// members, directly or through oneOf); schemaNonObjects holds
// representatives of that class, so the corpus is filtered to objects that
// hold at least one of the names.
func schemaReferenceProperties(t testing.TB, name string) map[string]bool {
	t.Helper()
	var sch struct {
		Type       string                     `json:"type"`
		Properties map[string]json.RawMessage `json:"properties"`
	}
	schemaReadContract(t, "schemas/"+schemaReferencePath(name), &sch)
	if sch.Type != "object" {
		return nil
	}
	props := map[string]bool{}
	for k := range sch.Properties {
		props[k] = true
	}
	return props
}

// schemaRelevantTo reports whether doc must be compared for a schema with the
// given top-level properties: any document when props is nil, else objects
// holding at least one of the names. Non-objects are rejected by every object
// schema on type; schemaNonObjects covers that once per schema.
func schemaRelevantTo(doc any, props map[string]bool) bool {
	if props == nil {
		return true
	}
	m, ok := doc.(map[string]any)
	if !ok {
		return false
	}
	for k := range m {
		if props[k] {
			return true
		}
	}
	return false
}

// schemaNonObjects are compared against every schema: values of each
// non-object type, and objects holding none of a schema's members.
var schemaNonObjects = []string{`null`, `true`, `0`, `-1.5`, `""`, `"01946896-1234-7567-89ab-000000000010"`, `[]`, `[{}]`, `{}`, `{"zz":1}`, `{"zz":1,"yy":{}}`}

func schemaSortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func schemaDecodeAny(t testing.TB, b []byte) any {
	t.Helper()
	var v any
	schemaDecode(t, b, &v)
	return v
}

// schemaMaxMutated bounds the accepted documents mutated per schema
// (seeds come first), keeping the test within the CI time budget.
const schemaMaxMutated = 3

// TestSchemaReferenceEquivalence runs every document of the vector corpus,
// every seed, and systematic mutations of every document the reference
// accepts, through our schema and the contract's schema, and requires the
// same verdict.
func TestSchemaReferenceEquivalence(t *testing.T) {
	ref := schemaReferences(t)
	var corpus []schemaCorpusDoc
	for _, b := range schemaVectorCorpus(t) {
		corpus = append(corpus, schemaCorpusDoc{b, schemaDecodeAny(t, b)})
	}
	if len(corpus) < 500 {
		t.Fatalf("vector corpus has only %d documents; is the reference data complete?", len(corpus))
	}
	for _, name := range contracts.SchemaNames() {
		rs := ref(name) // compiled here: the reference compiler is not safe for concurrent use
		props := schemaReferenceProperties(t, name)
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var docs []schemaCorpusDoc
			for _, s := range schemaSeeds[name] {
				docs = append(docs, schemaCorpusDoc{[]byte(s), schemaDecodeAny(t, []byte(s))})
			}
			for _, d := range corpus {
				if schemaRelevantTo(d.value, props) {
					docs = append(docs, d)
				}
			}
			for _, s := range schemaNonObjects {
				docs = append(docs, schemaCorpusDoc{[]byte(s), schemaDecodeAny(t, []byte(s))})
			}
			var valid []any
			for _, d := range docs {
				ours := contracts.Validate(name, d.text) == nil
				theirs := rs.Validate(d.value) == nil
				if ours != theirs {
					t.Errorf("ours valid=%v, reference valid=%v for %s", ours, theirs, d.text)
				}
				if theirs && len(valid) < schemaMaxMutated {
					valid = append(valid, d.value) // seeds first, then vector documents
				}
			}
			if len(valid) == 0 {
				t.Fatalf("no document accepted by the reference schema to mutate")
			}
			n, accepted := 0, 0
			done := map[string]bool{}
			for _, v := range valid {
				for _, m := range schemaMutations(v) {
					mb, err := json.Marshal(m)
					if err != nil {
						t.Fatal(err)
					}
					if done[string(mb)] {
						continue
					}
					done[string(mb)] = true
					n++
					// Mutations are json.Marshal output of decoded values, so
					// they pass the input rules: compare the schemas directly.
					ours := contracts.ValidateDecodedForTest(name, m) == nil
					theirs := rs.Validate(m) == nil
					if theirs {
						accepted++
					}
					if ours != theirs {
						t.Errorf("mutation: ours valid=%v, reference valid=%v for %s", ours, theirs, mb)
					}
				}
			}
			t.Logf("%d documents and %d mutations compared (%d mutations accepted)", len(docs), n, accepted)
		})
	}
}

type schemaCorpusDoc struct {
	text  []byte
	value any
}

// schemaMutations returns variants of v: at every member and element (up to depth
// 3) the value is deleted, replaced by values of every JSON type and by
// near-misses of itself (case, padding, length, sign), and every object gains
// an unknown member.
func schemaMutations(v any) []any {
	var out []any
	var visit func(path []any, cur any, depth int)
	visit = func(path []any, cur any, depth int) {
		if depth > 0 { // whole-document replacements are schemaNonObjects
			for _, r := range schemaReplacements(cur) {
				out = append(out, schemaReplaceAt(v, path, r, false))
			}
		}
		if depth >= 3 {
			return
		}
		switch c := cur.(type) {
		case map[string]any:
			out = append(out, schemaReplaceAt(v, append(slices.Clone(path), "zz_unknown"), "x", false))
			for _, k := range schemaSortedKeys(c) {
				p := append(slices.Clone(path), k)
				out = append(out, schemaReplaceAt(v, p, nil, true))
				visit(p, c[k], depth+1)
			}
		case []any:
			if len(c) > 0 {
				out = append(out, schemaReplaceAt(v, path, append(slices.Clone(c), schemaDeepCopy(c[0])), false))
			}
			for i, e := range c {
				visit(append(slices.Clone(path), i), e, depth+1)
			}
		}
	}
	visit(nil, v, 0)
	return out
}

func schemaReplacements(cur any) []any {
	// A value of another type, of every JSON type.
	rs := []any{nil, true, json.Number("0"), "x", map[string]any{}, []any{}}
	switch c := cur.(type) {
	case string:
		// Near misses for patterns, enums, consts and length limits
		// (the contracts use 1, 3, 8, 10, 16, 36, 43/44, 64, 100-255, 500, 1024).
		long := strings.Repeat("a", 300)
		rs = append(rs, "", long, long+long+long+long, strings.ToUpper(c), c+"\n", c+"=")
		if len(c) > 0 {
			rs = append(rs, c[:len(c)-1])
		}
	case json.Number:
		rs = append(rs, json.Number("-1"), json.Number("1.5"))
		if !strings.ContainsAny(string(c), ".eE") {
			rs = append(rs, json.Number(string(c)+".0"), json.Number(string(c)+"e2"))
		}
		if !strings.HasPrefix(string(c), "-") {
			rs = append(rs, json.Number("-"+string(c)))
		}
	}
	return rs
}

// schemaReplaceAt returns a deep copy of root with the value at path replaced by
// r (or deleted), creating a missing last member of an object.
func schemaReplaceAt(root any, path []any, r any, del bool) any {
	if len(path) == 0 {
		return schemaDeepCopy(r)
	}
	cp := schemaDeepCopy(root)
	parent := cp
	for _, p := range path[:len(path)-1] {
		switch k := p.(type) {
		case string:
			parent = parent.(map[string]any)[k]
		case int:
			parent = parent.([]any)[k]
		}
	}
	switch k := path[len(path)-1].(type) {
	case string:
		m := parent.(map[string]any)
		if del {
			delete(m, k)
		} else {
			m[k] = schemaDeepCopy(r)
		}
	case int:
		a := parent.([]any)
		if del {
			return cp // element deletion is covered by the array-level mutations
		}
		a[k] = schemaDeepCopy(r)
	}
	return cp
}

func schemaDeepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[k] = schemaDeepCopy(e)
		}
		return m
	case []any:
		a := make([]any, len(v))
		for i, e := range v {
			a[i] = schemaDeepCopy(e)
		}
		return a
	}
	return v
}
