package a2a

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestOpenRPCDocument: openrpc.json describes exactly the method table
// (names, aliases, scopes, streaming), the compat dispatcher's methods,
// and names contract schemas that exist.
func TestOpenRPCDocument(t *testing.T) {
	raw, err := os.ReadFile("openrpc.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenRPC string `json:"openrpc"`
		Methods []struct {
			Name      string   `json:"name"`
			Aliases   []string `json:"x-talos-aliases"`
			Scopes    []string `json:"x-talos-scopes"`
			Streaming bool     `json:"x-talos-streaming"`
			Params    []struct {
				Name   string         `json:"name"`
				Schema map[string]any `json:"schema"`
			} `json:"params"`
			Result struct {
				Schema map[string]any `json:"schema"`
			} `json:"result"`
		} `json:"methods"`
		Compat struct {
			Scope   string `json:"scope"`
			Methods []struct {
				Name string `json:"name"`
				V1   string `json:"v1"`
			} `json:"methods"`
		} `json:"x-talos-compat"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil || doc.OpenRPC == "" {
		t.Fatalf("openrpc.json: %v", err)
	}
	if len(doc.Methods) != len(Methods) {
		t.Fatalf("%d methods described, %d served", len(doc.Methods), len(Methods))
	}
	var schemas []string
	for i, m := range doc.Methods {
		want := Methods[i]
		if m.Name != want.Name || !slices.Equal(m.Aliases, want.Aliases) || !slices.Equal(m.Scopes, want.Scopes) || m.Streaming != want.Stream {
			t.Errorf("method %d: described %+v, served %+v", i, m, want)
		}
		for _, p := range m.Params {
			if s, ok := p.Schema["x-talos-contract-schema"].(string); ok {
				schemas = append(schemas, s)
			}
		}
		if s, ok := m.Result.Schema["x-talos-contract-schema"].(string); ok {
			schemas = append(schemas, s)
		}
	}
	if doc.Compat.Scope != "a2a.invoke" || len(doc.Compat.Methods) != len(compatMethods) {
		t.Fatalf("compat: %+v", doc.Compat)
	}
	for _, m := range doc.Compat.Methods {
		if compatMethods[m.Name] != m.V1 {
			t.Errorf("compat %s → %s, served → %s", m.Name, m.V1, compatMethods[m.Name])
		}
	}
	dir := contractsDir(t)
	for _, s := range schemas {
		if _, err := os.Stat(filepath.Join(dir, s)); err != nil {
			t.Errorf("openrpc.json names %s: %v", s, err)
		}
	}
}
