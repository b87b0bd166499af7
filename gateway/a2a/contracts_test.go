package a2a

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v5"
)

// contractsDir is the talos-contracts reference data: $TALOS_CONTRACTS_DIR
// or ../shared/reference/talos-contracts beside the repository. Missing
// data skips, or fails under TALOS_REQUIRE_CONTRACTS=1 (the root module's
// internal/testenv rule, copied: it is internal to that module).
func contractsDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("TALOS_CONTRACTS_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "..", "shared", "reference", "talos-contracts")
	}
	if _, err := os.Stat(filepath.Join(dir, "schemas")); err != nil {
		msg := "talos-contracts reference data not found at " + dir + " (set TALOS_CONTRACTS_DIR)"
		if os.Getenv("TALOS_REQUIRE_CONTRACTS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// schemaBase is the $id prefix of the reference schemas.
const schemaBase = "https://talos.network/schemas/"

var (
	schemaMu    sync.Mutex
	schemaCache = map[string]*jsonschema.Schema{}
)

// schema compiles a reference schema by its path under schemas/.
func schema(t testing.TB, rel string) *jsonschema.Schema {
	t.Helper()
	schemaMu.Lock()
	defer schemaMu.Unlock()
	if s, ok := schemaCache[rel]; ok {
		return s
	}
	base := filepath.Join(contractsDir(t), "schemas")
	c := jsonschema.NewCompiler()
	c.AssertFormat = true
	c.LoadURL = func(u string) (io.ReadCloser, error) {
		for _, b := range []string{schemaBase, "https://talosprotocol.com/schemas/"} {
			if rest, ok := strings.CutPrefix(u, b); ok {
				return os.Open(filepath.Join(base, filepath.FromSlash(rest)))
			}
		}
		return jsonschema.LoadURL(u)
	}
	s, err := c.Compile(schemaBase + rel)
	if err != nil {
		t.Fatalf("compile %s: %v", rel, err)
	}
	schemaCache[rel] = s
	return s
}

func validate(t testing.TB, rel string, doc []byte) error {
	t.Helper()
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatalf("%s: not JSON: %v", rel, err)
	}
	return schema(t, rel).Validate(v)
}

// knownBad are the reference vectors that fail their own schema (the
// contracts digest, section 6: "version" required but absent).
var knownBad = map[string]bool{
	"cancel_task.response": true, "get_task.response": true, "list_tasks.response": true, "send_message.response": true,
}

// TestV1Vectors validates every test_vectors/a2a/v1 method document against
// its method schema, and the card against agent_card: the vectors and our
// schema reading agree (the four known-inconsistent responses must fail).
func TestV1Vectors(t *testing.T) {
	dir := filepath.Join(contractsDir(t), "test_vectors", "a2a", "v1")
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil || len(files) < 23 {
		t.Fatalf("v1 vectors: %d files, %v", len(files), err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		doc, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel := "a2a/v1/methods/" + name + ".schema.json"
		if name == "agent_card_authenticated" {
			rel = "a2a/v1/agent_card.schema.json"
		}
		err = validate(t, rel, doc)
		if knownBad[name] {
			if err == nil {
				t.Errorf("%s: expected to fail its schema (version), passed", name)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
		// Every request vector names a method of the table.
		if strings.HasSuffix(name, ".request") {
			var env struct{ Method string }
			_ = json.Unmarshal(doc, &env)
			if _, ok := LookupMethod(env.Method); !ok {
				t.Errorf("%s: method %q not in Methods", name, env.Method)
			}
			if _, perr := parseEnvelope(doc); perr != nil {
				t.Errorf("%s: our parser refuses it: %v", name, perr.Message)
			}
		}
	}
}

// TestLegacyVectors checks test_vectors/a2a JSON-RPC documents through our
// envelope parser: the invalid ones are refused with the contract's code.
func TestLegacyVectors(t *testing.T) {
	dir := filepath.Join(contractsDir(t), "test_vectors", "a2a")
	read := func(n string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, n := range []string{"invalid_jsonrpc_version.json", "invalid_missing_id.json"} {
		doc := read(n)
		var probe map[string]any
		_ = json.Unmarshal(doc, &probe)
		if _, isReq := probe["method"]; !isReq {
			continue
		}
		if _, perr := parseEnvelope(doc); perr == nil || perr.Code != RPCInvalidRequest {
			t.Errorf("%s: accepted", n)
		}
	}
	// The error mapping vectors are shaped as our domain errors.
	for _, n := range []string{"error_mapping_domain.json", "error_protocol_invalid_params.json"} {
		if err := validate(t, "a2a/jsonrpc_response.schema.json", read(n)); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
	for _, n := range []string{"invalid_jsonrpc_version.json", "invalid_missing_id.json", "invalid_result_and_error.json"} {
		doc := read(n)
		var probe map[string]any
		_ = json.Unmarshal(doc, &probe)
		rel := "a2a/jsonrpc_response.schema.json"
		if _, isReq := probe["method"]; isReq {
			rel = "a2a/jsonrpc_request.schema.json"
		}
		if err := validate(t, rel, doc); err == nil {
			t.Errorf("%s: valid against %s", n, rel)
		}
	}
	for _, n := range []string{"agent_card_minimal.json", "agent_card_with_x_talos.json"} {
		if err := validate(t, "a2a/agent_card.schema.json", read(n)); err != nil {
			t.Errorf("%s: %v", n, err)
		}
	}
}

// TestRemainingA2AVectors covers the other test_vectors/a2a files against
// the reference schemas: the profile, the resubscribe request, the SSE
// event shapes, the bad timestamp, and the relay's session / frame / group
// vectors (valid_* must pass, invalid_* must fail; the relay itself is a
// later move into this package, its documents are checked here so that no
// vector of the directory goes unread).
func TestRemainingA2AVectors(t *testing.T) {
	dir := filepath.Join(contractsDir(t), "test_vectors", "a2a")
	read := func(n string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if err := validate(t, "a2a/profile.schema.json", read("profile_minimal.json")); err != nil {
		t.Error(err)
	}
	if err := validate(t, "a2a/methods/tasks_resubscribe.request.schema.json", read("tasks_resubscribe.json")); err != nil {
		t.Error(err)
	}
	if err := validate(t, "a2a/task.schema.json", read("invalid_timestamp_format.json")); err == nil {
		t.Error("invalid_timestamp_format.json valid")
	}
	var events []json.RawMessage
	if err := json.Unmarshal(read("tasks_send_subscribe_sse_events.json"), &events); err != nil || len(events) != 4 {
		t.Fatalf("sse events: %d %v", len(events), err)
	}
	for i, e := range events {
		if err := validate(t, "a2a/sse_event.schema.json", e); err != nil {
			t.Errorf("sse event %d: %v", i, err)
		}
	}
	schemaOf := map[string]string{
		"session_create_requests": "session_create_request", "session_accept_requests": "session_accept_request",
		"frame_send_requests": "frame_send_request", "group_create_requests": "group_create_request",
		"group_member_add_requests": "group_member_add_request", "sessions": "session", "session_events": "session_event",
		"encrypted_frames": "encrypted_frame", "groups": "group", "group_events": "group_event",
	}
	n := 0
	for _, f := range []string{"request_vectors.json", "session_vectors.json"} {
		var doc map[string]json.RawMessage
		if err := json.Unmarshal(read(f), &doc); err != nil {
			t.Fatal(err)
		}
		for key, raw := range doc {
			if key == "description" {
				continue
			}
			valid := strings.HasPrefix(key, "valid_")
			base := strings.TrimPrefix(strings.TrimPrefix(key, "valid_"), "invalid_")
			sch, ok := schemaOf[base]
			if !ok {
				t.Errorf("%s: unmapped group %s", f, key)
				continue
			}
			var cases []struct {
				Description string          `json:"description"`
				Input       json.RawMessage `json:"input"`
			}
			if err := json.Unmarshal(raw, &cases); err != nil {
				t.Fatal(err)
			}
			for _, c := range cases {
				n++
				err := validate(t, "a2a/"+sch+".schema.json", c.Input)
				if valid && err != nil {
					t.Errorf("%s %s (%s): %v", f, key, c.Description, err)
				}
				if !valid && err == nil {
					t.Errorf("%s %s (%s): valid", f, key, c.Description)
				}
			}
		}
	}
	if n != 20 {
		t.Fatalf("%d relay vectors, want 20", n)
	}
}
