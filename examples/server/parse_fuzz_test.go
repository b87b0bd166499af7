package main

import (
	"encoding/json"
	"testing"

	"github.com/talosgo/talos/contracts"
)

// FuzzGatewayBodies pins the gateway rule on the server's own parsers: for
// any body the LLM proxy accepts, the model, max_tokens and n it decides on
// are those a case-sensitive, last-wins upstream reads in the same bytes
// (encoding/json into a map), and the reservation covers one token per
// byte plus max_tokens per choice; checkJSONRPC accepts only bodies whose
// method a case-sensitive reader sees as the same string. Refusals are
// *contracts.Error.
func FuzzGatewayBodies(f *testing.F) {
	for _, s := range []string{
		`{"model":"gpt-cheap","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"gpt-expensive","MODEL":"gpt-cheap","max_tokens":1}`,
		`{"model":"m","max_tokens":128000,"Max_Tokens":1}`,
		`{"model":"m","n":3,"max_tokens":10}`, `{"Model":"m"}`, `{"model":"m","max_completion_tokens":5}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"files.read","arguments":{"path":"/a"}}}`,
		`{"jsonrpc":"2.0","id":1,"Method":"tools/call","method":"tools/list"}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, maxTokens, choices, err := parseChatRequest(body)
		if err != nil {
			if contracts.CodeOf(err) == contracts.CodeInternal {
				t.Fatalf("untyped refusal %v", err)
			}
		} else {
			var upstream map[string]any
			if err := json.Unmarshal(body, &upstream); err != nil {
				t.Fatalf("accepted a body the upstream cannot read: %q", body)
			}
			if upstream["model"] != req.Model {
				t.Fatalf("%q: decided on model %q, upstream reads %v", body, req.Model, upstream["model"])
			}
			if v, ok := upstream["max_tokens"]; ok && v != nil && int64(v.(float64)) != maxTokens {
				t.Fatalf("%q: budgeted max_tokens %d, upstream reads %v", body, maxTokens, v)
			}
			if v, ok := upstream["n"]; ok && v != nil && int64(v.(float64)) != choices {
				t.Fatalf("%q: budgeted n %d, upstream reads %v", body, choices, v)
			}
			if _, ok := upstream["max_completion_tokens"]; ok {
				t.Fatalf("%q: accepted a second completion bound", body)
			}
		}
		if err := checkJSONRPC(body); err == nil {
			var upstream map[string]any
			if json.Unmarshal(body, &upstream) != nil {
				t.Fatalf("accepted JSON-RPC the upstream cannot read: %q", body)
			}
			if _, ok := upstream["method"].(string); !ok || upstream["jsonrpc"] != "2.0" {
				t.Fatalf("%q: accepted, but a case-sensitive reader sees no method or version", body)
			}
		} else if contracts.CodeOf(err) == contracts.CodeInternal {
			t.Fatalf("untyped JSON-RPC refusal %v", err)
		}
	})
}
