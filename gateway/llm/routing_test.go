package llm

import (
	"testing"

	"github.com/talosgo/talos/contracts"
)

// TestSetRouting: a Dynamic proxy serves nothing until routes are set;
// SetRouting changes the routing of the next call without a restart, a
// bad table changes nothing, and an empty one stops serving again.
func TestSetRouting(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.Upstream, c.Dynamic = "", true })
	alice := f.agent("m1")
	body := `{"model":"m1","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`
	if _, _, eb := alice.chat(body); eb.Code != string(contracts.CodeModelNotAllowed) {
		t.Fatalf("before routes: %+v", eb)
	}
	up := []Upstream{{Name: "u1", URL: f.up.srv.URL + "/v1", APIKey: "sk-dyn"}}
	if err := f.proxy.SetRouting(up, []ModelRoute{{Model: "m1", Upstreams: []string{"u1"}, PromptPer1K: 1000, CompletionPer1K: 2000}}); err != nil {
		t.Fatal(err)
	}
	if got := f.proxy.Routed(); len(got) != 1 || got[0] != "m1" {
		t.Fatalf("routed %v", got)
	}
	resp, _, _ := alice.chat(body)
	if resp.StatusCode != 200 {
		t.Fatalf("after SetRouting: %d", resp.StatusCode)
	}
	if _, keys := f.up.received(); len(keys) != 1 || keys[0] != "Bearer sk-dyn" {
		t.Fatalf("upstream saw keys %v", keys)
	}
	for _, bad := range [][]ModelRoute{
		{{Model: "m1", Upstreams: []string{"nope"}}},
		{{Model: "m1", Upstreams: []string{"u1"}}, {Model: "m1", Upstreams: []string{"u1"}}},
		{{Model: "m1", Upstreams: []string{"u1"}, PromptPer1K: -1}},
	} {
		if err := f.proxy.SetRouting(up, bad); contracts.CodeOf(err) != contracts.CodeInvalidInput {
			t.Fatalf("bad routes %+v: %v", bad, err)
		}
	}
	if resp, _, _ := alice.chat(body); resp.StatusCode != 200 {
		t.Fatal("a refused table changed the routing")
	}
	if err := f.proxy.SetRouting(nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, _, eb := alice.chat(body); eb.Code != string(contracts.CodeModelNotAllowed) {
		t.Fatalf("after the routes were removed: %+v", eb)
	}
}
