package llm

import (
	"encoding/json"
	"testing"

	"github.com/talosgo/talos/contracts"
)

// FuzzParseChatRequest pins the proxy rule: for any body ParseChatRequest
// accepts, the model, max_tokens and n it decides on are those a
// case-sensitive, last-wins upstream reads in the same bytes (encoding/json
// into a map), and no second completion bound is accepted. Refusals are
// typed.
func FuzzParseChatRequest(f *testing.F) {
	for _, s := range []string{
		`{"model":"gpt-cheap","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"gpt-expensive","MODEL":"gpt-cheap","max_tokens":1}`,
		`{"model":"m","max_tokens":128000,"Max_Tokens":1}`,
		`{"model":"m","n":3,"max_tokens":10}`, `{"Model":"m"}`, `{"model":"m","max_completion_tokens":5}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, maxTokens, choices, err := ParseChatRequest(body)
		if err != nil {
			if contracts.CodeOf(err) == contracts.CodeInternal {
				t.Fatalf("untyped refusal %v", err)
			}
			return
		}
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
		if maxTokens < 1 || maxTokens > MaxMaxTokens || choices < 1 || choices > MaxChoices {
			t.Fatalf("%q: bounds out of range: %d × %d", body, choices, maxTokens)
		}
	})
}
