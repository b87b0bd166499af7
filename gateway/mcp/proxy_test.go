package mcp

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// TestResourcesAndPrompts: an upstream's resources and prompts are listed
// and proxied only for callers whose capability grants resources/read or
// prompts/get on it, one Kernel decision and audit event per request.
func TestResourcesAndPrompts(t *testing.T) {
	var reads, gets atomic.Int64
	f := newFixture(t, func(c *Config, _ *map[string]budget.Limit) {
		s := newFileServer().server
		s.AddResource(&sdk.Resource{URI: "file:///readme", Name: "readme", MIMEType: "text/plain"},
			func(_ context.Context, req *sdk.ReadResourceRequest) (*sdk.ReadResourceResult, error) {
				reads.Add(1)
				return &sdk.ReadResourceResult{Contents: []*sdk.ResourceContents{{URI: req.Params.URI, Text: "hello"}}}, nil
			})
		s.AddPrompt(&sdk.Prompt{Name: "review", Arguments: []*sdk.PromptArgument{{Name: "path"}}},
			func(_ context.Context, req *sdk.GetPromptRequest) (*sdk.GetPromptResult, error) {
				gets.Add(1)
				return &sdk.GetPromptResult{Messages: []*sdk.PromptMessage{{Role: "user", Content: &sdk.TextContent{Text: "review " + req.Params.Arguments["path"]}}}}, nil
			})
		c.Upstreams["docs"] = InMemoryUpstream(s)
	})
	alice, bob := f.agent("t"), f.agent("t")
	acs := f.session(alice, issueFor(t, f, alice, "docs", ActionReadResource, ActionGetPrompt))
	bcs := f.session(bob, issueFor(t, f, bob, "docs", "read_file"))

	before := f.auditSize()
	lr, err := acs.ListResources(t.Context(), nil)
	if err != nil || len(lr.Resources) != 1 || lr.Resources[0].URI != "file:///readme" {
		t.Fatalf("alice's resources: %+v %v", lr, err)
	}
	rr, err := acs.ReadResource(t.Context(), &sdk.ReadResourceParams{URI: "file:///readme"})
	if err != nil || rr.Contents[0].Text != "hello" {
		t.Fatalf("read: %+v %v", rr, err)
	}
	lp, err := acs.ListPrompts(t.Context(), nil)
	if err != nil || len(lp.Prompts) != 1 || lp.Prompts[0].Name != "docs.review" {
		t.Fatalf("alice's prompts: %+v %v", lp, err)
	}
	gp, err := acs.GetPrompt(t.Context(), &sdk.GetPromptParams{Name: "docs.review", Arguments: map[string]string{"path": "/a"}})
	if err != nil || gp.Messages[0].Content.(*sdk.TextContent).Text != "review /a" {
		t.Fatalf("get: %+v %v", gp, err)
	}
	if f.auditSize() != before+4 {
		t.Fatalf("audit grew by %d for 4 requests", f.auditSize()-before)
	}

	// bob may call docs.read_file but not read its resources or prompts.
	if lr, err := bcs.ListResources(t.Context(), nil); err != nil || len(lr.Resources) != 0 {
		t.Fatalf("bob's resources: %+v %v", lr, err)
	}
	if lp, err := bcs.ListPrompts(t.Context(), nil); err != nil || len(lp.Prompts) != 0 {
		t.Fatalf("bob's prompts: %+v %v", lp, err)
	}
	if _, err := bcs.ReadResource(t.Context(), &sdk.ReadResourceParams{URI: "file:///readme"}); talosCode(t, err) != string(contracts.CodeDenied) {
		t.Fatalf("bob reads: %v", err)
	}
	if _, err := bcs.GetPrompt(t.Context(), &sdk.GetPromptParams{Name: "docs.review"}); talosCode(t, err) != string(contracts.CodeDenied) {
		t.Fatalf("bob gets: %v", err)
	}
	// A URI no upstream listed, a prompt of an upstream without prompts.
	if _, err := acs.ReadResource(t.Context(), &sdk.ReadResourceParams{URI: "file:///etc/passwd"}); talosCode(t, err) != string(contracts.CodeDenied) {
		t.Fatalf("unlisted URI: %v", err)
	}
	if _, err := acs.GetPrompt(t.Context(), &sdk.GetPromptParams{Name: "files.review"}); talosCode(t, err) != string(contracts.CodeDenied) {
		t.Fatalf("prompt of files: %v", err)
	}
	if reads.Load() != 1 || gets.Load() != 1 {
		t.Fatalf("upstream reads %d gets %d, want 1 1", reads.Load(), gets.Load())
	}
	if f.auditSize() != before+10 {
		t.Fatalf("audit grew by %d for 10 requests", f.auditSize()-before)
	}
}

// issueFor issues w a token granting actions on tool.
func issueFor(t *testing.T, f *fixture, w *identity.Wallet, tool string, actions ...string) string {
	t.Helper()
	tok, err := capability.Issue(f.root.Signer(), w.DID(), []capability.Grant{{Tool: tool, Actions: actions}},
		time.Now().Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	return tok.Encode()
}
