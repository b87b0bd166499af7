package mcp

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
)

func toolNames(t *testing.T, cs *sdk.ClientSession) []string {
	t.Helper()
	res, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	var names []string
	for _, tl := range res.Tools {
		names = append(names, tl.Name)
	}
	return names
}

// lastEvent returns the last appended audit event of the gateway's
// surface (among the newest 100).
func (f *fixture) lastEvent() audit.Entry {
	f.t.Helper()
	page, err := f.log.Query(f.t.Context(), audit.Query{SurfaceID: SurfaceID, Limit: 100})
	if err != nil || len(page.Entries) == 0 {
		f.t.Fatalf("audit query: %v", err)
	}
	last := page.Entries[0]
	for _, e := range page.Entries {
		if e.Index > last.Index {
			last = e
		}
	}
	return last
}

// TestListFilteredByGrants: two callers with different grants see
// different lists of the same go-sdk upstream; each list is one Kernel
// decision and one audit event; a capability that does not verify refuses
// the list, one that allows nothing gets an empty one.
func TestListFilteredByGrants(t *testing.T) {
	f := newFixture(t)
	alice, bob, carol := f.agent("t"), f.agent("t"), f.agent("t")
	acs := f.session(alice, f.issue(alice, false, "read_file", "write_file"))
	bcs := f.session(bob, f.issue(bob, false, "read_file"))
	ccs := f.session(carol, f.issue(carol, false, "delete_everything"))

	before := f.auditSize()
	if got := strings.Join(toolNames(t, acs), ","); got != "files.read_file,files.write_file" {
		t.Fatalf("alice sees %s", got)
	}
	if got := strings.Join(toolNames(t, bcs), ","); got != "files.read_file" {
		t.Fatalf("bob sees %s", got)
	}
	if got := toolNames(t, ccs); len(got) != 0 {
		t.Fatalf("carol, granted nothing served, sees %v", got)
	}
	if got := f.auditSize(); got != before+3 {
		t.Fatalf("audit grew by %d for three lists, want 3", got-before)
	}
	e := f.lastEvent()
	if e.Event.Outcome != "success" || e.Event.Meta["action"] != ListAction {
		t.Fatalf("list event %+v", e.Event)
	}
	// A token that is not bob's (holder binding), or none: refused, audited.
	if _, err := f.session(carol, f.issue(bob, false, "read_file")).ListTools(t.Context(), nil); talosCode(t, err) != string(contracts.CodeDenied) {
		t.Fatalf("someone else's token: %v", err)
	}
	if _, err := f.session(bob, "").ListTools(t.Context(), nil); talosCode(t, err) != string(contracts.CodeInvalidCapability) {
		t.Fatalf("no token: %v", err)
	}
	if got := f.auditSize(); got != before+5 {
		t.Fatalf("refused lists audited %d times, want 2", got-before-3)
	}
	if f.files.reads.Load()+f.files.writes.Load() != 0 {
		t.Fatal("listing called an upstream tool")
	}
}

// TestListRateLimited: a list is a Kernel call, limited like the rest.
func TestListRateLimited(t *testing.T) {
	f := newFixture(t, func(_ *Config, r *map[string]budget.Limit) { (*r)[SurfaceID] = budget.PerMinute(1) })
	alice := f.agent("t")
	cs := f.session(alice, f.issue(alice, false, "read_file"))
	toolNames(t, cs)
	if _, err := cs.ListTools(t.Context(), nil); talosCode(t, err) != string(contracts.CodeRateLimited) {
		t.Fatalf("second list: %v", err)
	}
}

// TestListWithoutAuthorizer: with NewKernel the gateway cannot know what a
// caller may see, so lists are refused (calls still work).
func TestListWithoutAuthorizer(t *testing.T) {
	f := newFixture(t, func(c *Config, _ *map[string]budget.Limit) {
		nkc := c.NewKernelConfig
		c.NewKernelConfig = nil
		c.NewKernel = func(reg *capability.ToolRegistry) (*talos.Kernel, error) {
			kc, err := nkc(reg)
			if err != nil {
				return nil, err
			}
			return talos.NewKernel(kc)
		}
	})
	alice := f.agent("t")
	cs := f.session(alice, f.issue(alice, false, "read_file"))
	if _, err := cs.ListTools(t.Context(), nil); talosCode(t, err) != string(contracts.CodeDenied) {
		t.Fatalf("list without an Authorizer: %v", err)
	}
	if _, err := cs.CallTool(t.Context(), read); err != nil {
		t.Fatal(err)
	}
}

// changing is an upstream whose tool list changes while the gateway is
// connected.
type changing struct {
	server *sdk.Server
	extra  atomic.Int64 // calls of the added tool
}

func addExtra(c *changing, readOnly bool) {
	sdk.AddTool(c.server, &sdk.Tool{Name: "stat", Annotations: &sdk.ToolAnnotations{ReadOnlyHint: readOnly}},
		func(context.Context, *sdk.CallToolRequest, pathArgs) (*sdk.CallToolResult, any, error) {
			c.extra.Add(1)
			return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "stat"}}}, nil, nil
		})
}

// TestRefreshOnListChanged: an in-memory go-sdk upstream adds a tool and
// removes one; the gateway lists again on notifications/tools/list_changed,
// the derived registry classifies the new tool, and a call to the removed
// one is refused by the Kernel (audited) without reaching the upstream.
func TestRefreshOnListChanged(t *testing.T) {
	refreshed := make(chan error, 16)
	f := newFixture(t, func(c *Config, _ *map[string]budget.Limit) {
		c.OnRefresh = func(up string, err error) {
			if up == "files" {
				refreshed <- err
			}
		}
	})
	wait := func(want string) {
		t.Helper()
		deadline := time.After(20 * time.Second)
		for {
			select {
			case err := <-refreshed:
				if err != nil {
					t.Fatalf("refresh: %v", err)
				}
			case <-deadline:
				t.Fatalf("no refresh to %s; tools %v", want, f.gw.Tools())
			}
			if strings.Join(f.gw.Tools(), ",") == want {
				return
			}
		}
	}
	alice := f.agent("t")
	tok := f.issue(alice, false, "read_file", "write_file", "stat")
	cs := f.session(alice, tok)
	oldKernel := f.gw.Kernel()

	up := &changing{server: f.files.server}
	addExtra(up, true)
	wait("files.read_file,files.stat,files.write_file")
	if got := strings.Join(toolNames(t, cs), ","); got != "files.read_file,files.stat,files.write_file" {
		t.Fatalf("after the addition: %s", got)
	}
	if e, ok := f.gw.Registry().Lookup("files", "stat"); !ok || e.Class != capability.ClassRead {
		t.Fatalf("new tool classified %+v %v", e, ok)
	}
	if f.gw.Kernel() == oldKernel {
		t.Fatal("the Kernel was not rebuilt for the new registry")
	}
	res, err := cs.CallTool(t.Context(), &sdk.CallToolParams{Name: "files.stat", Arguments: map[string]any{"path": "/a"}})
	if err != nil || textOf(res) != "stat" || up.extra.Load() != 1 {
		t.Fatalf("new tool: %v %v", res, err)
	}

	f.files.server.RemoveTools("read_file")
	wait("files.stat,files.write_file")
	if got := strings.Join(toolNames(t, cs), ","); got != "files.stat,files.write_file" {
		t.Fatalf("after the removal: %s", got)
	}
	before := f.auditSize()
	if _, err := cs.CallTool(t.Context(), read); talosCode(t, err) != string(contracts.CodeDenied) {
		t.Fatalf("removed tool: %v", err)
	}
	if f.files.reads.Load() != 0 {
		t.Fatal("the removed tool reached the upstream")
	}
	if f.auditSize() != before+1 || f.lastEvent().Event.Meta["decision_reason"] != string(capability.ReasonUnknownTool) {
		t.Fatalf("refusal not audited once as UNKNOWN_TOOL: %+v", f.lastEvent().Event.Meta)
	}
}

// TestRefreshOnReconnect: the upstream changes while its session is down;
// the reconnection lists again before the call is forwarded.
func TestRefreshOnReconnect(t *testing.T) {
	var sessions []*sdk.ServerSession
	files := newFileServer()
	f := newFixture(t, func(c *Config, _ *map[string]budget.Limit) {
		c.Upstreams = map[string]Dialer{"files": func(ctx context.Context) (sdk.Transport, error) {
			ct, st := sdk.NewInMemoryTransports()
			ss, err := files.server.Connect(ctx, st, nil)
			if err != nil {
				return nil, err
			}
			sessions = append(sessions, ss)
			return ct, nil
		}}
	})
	f.files = files
	alice := f.agent("t")
	cs := f.session(alice, f.issue(alice, false, "read_file", "stat"))
	sessions[0].Close()
	// Until the gateway notices, calls fail as upstream errors; the
	// addition happens while no session listens.
	up := &changing{server: files.server}
	addExtra(up, true)
	var err error
	for i := 0; i < 3; i++ {
		if _, err = cs.CallTool(t.Context(), read); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("after reconnecting: %v", err)
	}
	if !slices.Contains(toolNames(t, cs), "files.stat") {
		t.Fatalf("the reconnection did not list again: %v", f.gw.Tools())
	}
}

// TestNewKernelConfigVerifierClosed: the Authorizers NewKernelConfig
// returns are closed when replaced and by Close.
func TestNewKernelConfigVerifierClosed(t *testing.T) {
	var made []*closeCounter
	refreshed := make(chan struct{}, 4)
	f := newFixture(t, func(c *Config, _ *map[string]budget.Limit) {
		nkc := c.NewKernelConfig
		c.NewKernelConfig = func(reg *capability.ToolRegistry) (talos.KernelConfig, error) {
			kc, err := nkc(reg)
			cc := &closeCounter{Authorizer: kc.Authorizer}
			made = append(made, cc)
			kc.Authorizer = cc
			return kc, err
		}
		c.OnRefresh = func(string, error) { refreshed <- struct{}{} }
	})
	addExtra(&changing{server: f.files.server}, false)
	<-refreshed
	for len(f.gw.Tools()) != 3 {
		<-refreshed
	}
	if len(made) != 2 || made[0].closed.Load() != 1 || made[1].closed.Load() != 0 {
		t.Fatalf("after a change: %d authorizers", len(made))
	}
	if e, _ := f.gw.Registry().Lookup("files", "stat"); e.Class != capability.ClassWrite || !e.RequiresIdempotencyKey {
		t.Fatalf("a tool without readOnlyHint: %+v", e)
	}
	f.gw.Close()
	if made[1].closed.Load() != 1 {
		t.Fatal("Close did not close the Authorizer")
	}
}

type closeCounter struct {
	capability.Authorizer
	closed atomic.Int64
}

func (c *closeCounter) Close() error { c.closed.Add(1); return nil }

// A tool name an upstream may not use is an MCP_PROTOCOL error.
func TestCheckToolName(t *testing.T) {
	for _, n := range []string{"read_file", "a.b-c_D9", strings.Repeat("x", 128)} {
		if err := checkToolName(n); err != nil {
			t.Errorf("%q: %v", n, err)
		}
	}
	for _, n := range []string{"", "a b", "a/b", "é", strings.Repeat("x", 129), "a\x00"} {
		if contracts.CodeOf(checkToolName(n)) != contracts.CodeMCPProtocol {
			t.Errorf("%q accepted", n)
		}
	}
}
