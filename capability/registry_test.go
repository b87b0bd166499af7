package capability

import (
	"encoding/json"
	"testing"

	"github.com/talosgo/talos/internal/testenv"
)

func TestToolRegistryVectors(t *testing.T) {
	var file struct {
		Valid []struct {
			Description string          `json:"description"`
			Data        json.RawMessage `json:"data"`
		} `json:"valid_cases"`
		Invalid []struct {
			Description string          `json:"description"`
			Data        json.RawMessage `json:"data"`
		} `json:"invalid_cases"`
	}
	if err := json.Unmarshal(testenv.ReadContract(t, "test_vectors/mcp/tool_registry_vectors.json"), &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Valid) == 0 || len(file.Invalid) == 0 {
		t.Fatal("no vectors")
	}
	for _, v := range file.Valid {
		r, err := ParseToolRegistry(v.Data)
		if err != nil {
			t.Errorf("%s: %v", v.Description, err)
			continue
		}
		if r.Len() == 0 {
			t.Errorf("%s: empty registry", v.Description)
		}
	}
	for _, v := range file.Invalid {
		if _, err := ParseToolRegistry(v.Data); err == nil {
			t.Errorf("%s: accepted", v.Description)
		}
	}
	// The schema form.
	r, err := ParseToolRegistry([]byte(`{"registry_version":"1.0.0","generated_at":"2026-01-01T00:00:00Z","tools":[
		{"tool_server":"postgres","tool_name":"execute_query","tool_class":"write","requires_idempotency_key":true},
		{"tool_server":"system","tool_name":"ping","tool_class":"read","requires_idempotency_key":false}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := r.Lookup("postgres", "execute_query"); !ok || e.Class != ClassWrite {
		t.Fatal("lookup")
	}
	if _, ok := r.Lookup("postgres", "drop"); ok {
		t.Fatal("unknown action found")
	}
	if _, err := ParseToolRegistry([]byte(`{"registry_version":"1.0.0","tools":[{"tool_server":"a","tool_name":"b","tool_class":"write","requires_idempotency_key":false}]}`)); err == nil {
		t.Fatal("write without idempotency key accepted")
	}
}
