package mcp

import (
	"context"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
)

func listNames(t *testing.T, cs *sdk.ClientSession) map[string]bool {
	t.Helper()
	res, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, tl := range res.Tools {
		out[tl.Name] = true
	}
	return out
}

// TestAddRemoveUpstream: an upstream added at run time is listed and
// callable at once (the derived registry and the Kernel follow); once
// removed, its tools are not listed and calls are refused (UNKNOWN_TOOL,
// audited) without reaching it.
func TestAddRemoveUpstream(t *testing.T) {
	f := newFixture(t)
	alice := f.agent("t")
	tok, err := capability.Issue(f.root.Signer(), alice.DID(), []capability.Grant{
		{Tool: "files", Actions: []string{"read_file"}}, {Tool: "notes", Actions: []string{"read_file"}}},
		time.Now().Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	cs := f.session(alice, tok.Encode())
	notes := newFileServer()
	if err := f.gw.AddUpstream(t.Context(), "notes", InMemoryUpstream(notes.server)); err != nil {
		t.Fatal(err)
	}
	if got := f.gw.Upstreams(); len(got) != 2 || got[1] != "notes" {
		t.Fatalf("upstreams %v", got)
	}
	if l := listNames(t, cs); !l["notes.read_file"] || !l["files.read_file"] {
		t.Fatalf("listed %v", l)
	}
	call := &sdk.CallToolParams{Name: "notes.read_file", Arguments: map[string]any{"path": "/n"}}
	if res, err := cs.CallTool(t.Context(), call); err != nil || textOf(res) != "contents of /n" {
		t.Fatalf("call the added upstream: %v %v", res, err)
	}
	if err := f.gw.RemoveUpstream("notes"); err != nil {
		t.Fatal(err)
	}
	if l := listNames(t, cs); l["notes.read_file"] || !l["files.read_file"] {
		t.Fatalf("listed after removal %v", l)
	}
	before := f.auditSize()
	if _, err := cs.CallTool(t.Context(), call); talosCode(t, err) != string(contracts.CodeDenied) {
		t.Fatalf("call a removed upstream: %v", err)
	}
	if f.auditSize() != before+1 || f.lastEvent().Event.Meta["decision_reason"] != string(capability.ReasonUnknownTool) || notes.reads.Load() != 1 {
		t.Fatal("the refusal was not audited, or reached the removed upstream")
	}
	if err := f.gw.RemoveUpstream("notes"); contracts.CodeOf(err) != contracts.CodeNotFound {
		t.Fatalf("remove twice: %v", err)
	}
	// An unreachable upstream is not added; bad names are refused.
	bad := func(context.Context) (sdk.Transport, error) { return nil, context.DeadlineExceeded }
	if err := f.gw.AddUpstream(t.Context(), "gone", bad); contracts.CodeOf(err) != contracts.CodeUpstream5xx || f.gw.hasUpstream("gone") {
		t.Fatalf("unreachable upstream: %v", err)
	}
	for _, n := range []string{"", "a.b", "a b", "x/y"} {
		if err := f.gw.AddUpstream(t.Context(), n, InMemoryUpstream(notes.server)); contracts.CodeOf(err) != contracts.CodeInvalidInput {
			t.Fatalf("name %q: %v", n, err)
		}
	}
}

// TestDynamicEmpty: a Dynamic gateway starts without upstreams and lists
// nothing until one is added.
func TestDynamicEmpty(t *testing.T) {
	f := newFixture(t, func(c *Config, _ *map[string]budget.Limit) { c.Upstreams, c.Dynamic = nil, true })
	alice := f.agent("t")
	cs := f.session(alice, f.issue(alice, false, "read_file"))
	if l := listNames(t, cs); len(l) != 0 {
		t.Fatalf("listed %v", l)
	}
	if err := f.gw.AddUpstream(t.Context(), "files", InMemoryUpstream(f.files.server)); err != nil {
		t.Fatal(err)
	}
	if res, err := cs.CallTool(t.Context(), read); err != nil || textOf(res) != "contents of /a" {
		t.Fatalf("call: %v %v", res, err)
	}
}
