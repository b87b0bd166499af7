package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
)

func writeWith(key string, args map[string]any, meta ...any) *sdk.CallToolParams {
	m := sdk.Meta{}
	if key != "" {
		m[MetaIdempotencyKey] = key
	}
	for i := 0; i+1 < len(meta); i += 2 {
		m[meta[i].(string)] = meta[i+1]
	}
	return &sdk.CallToolParams{Meta: m, Name: "files.write_file", Arguments: args}
}

// TestIdempotentWrites: a write tool (derived registry: no readOnlyHint)
// needs an idempotency key; a repeated key from the same principal replays
// the first result without reaching the upstream, other arguments under
// the same key are refused, and keys are per principal.
func TestIdempotentWrites(t *testing.T) {
	f := newFixture(t)
	alice, bob := f.agent("t"), f.agent("t")
	acs := f.session(alice, f.issue(alice, false, "write_file"))
	bcs := f.session(bob, f.issue(bob, false, "write_file"))
	a := map[string]any{"path": "/a", "data": "x"}

	before := f.auditSize()
	if _, err := acs.CallTool(t.Context(), writeWith("", a)); talosCode(t, err) != string(contracts.CodeInvalidInput) {
		t.Fatalf("write without a key: %v", err)
	}
	if f.files.writes.Load() != 0 || f.auditSize() != before+1 {
		t.Fatal("a write without a key ran or was not audited")
	}
	res, err := acs.CallTool(t.Context(), writeWith("k-1", a))
	if err != nil || textOf(res) != "wrote /a" || f.files.writes.Load() != 1 {
		t.Fatalf("first write: %v %v", res, err)
	}
	if res.Meta[MetaReplayed] != nil {
		t.Fatal("a first call marked replayed")
	}
	for i := 0; i < 3; i++ {
		res, err := acs.CallTool(t.Context(), writeWith("k-1", map[string]any{"data": "x", "path": "/a"}))
		if err != nil || textOf(res) != "wrote /a" || res.Meta[MetaReplayed] != true {
			t.Fatalf("repeat %d: %v %v", i, res, err)
		}
	}
	if n := f.files.writes.Load(); n != 1 {
		t.Fatalf("the upstream executed %d times, want 1", n)
	}
	if _, err := acs.CallTool(t.Context(), writeWith("k-1", map[string]any{"path": "/b", "data": "x"})); talosCode(t, err) != string(contracts.CodeReplayDetected) {
		t.Fatalf("same key, other arguments: %v", err)
	}
	// bob's k-1 is his own.
	if _, err := bcs.CallTool(t.Context(), writeWith("k-1", a)); err != nil || f.files.writes.Load() != 2 {
		t.Fatalf("another principal's key: %v (%d writes)", err, f.files.writes.Load())
	}
	// Every call was audited once, replays included.
	if got := f.auditSize(); got != before+7 {
		t.Fatalf("audit grew by %d, want 7", got-before)
	}
	// A malformed key or a wrong declared digest is refused before the
	// upstream.
	if _, err := acs.CallTool(t.Context(), writeWith("a b", a)); talosCode(t, err) != string(contracts.CodeInvalidInput) {
		t.Fatalf("malformed key: %v", err)
	}
	wrong := strings.Repeat("0", 64)
	if _, err := acs.CallTool(t.Context(), writeWith("k-2", a, MetaArgsDigest, wrong)); talosCode(t, err) != string(contracts.CodeInvalidInput) {
		t.Fatalf("wrong args digest: %v", err)
	}
	canon, _ := contracts.Canonicalize([]byte(`{"path":"/a","data":"x"}`))
	if _, err := acs.CallTool(t.Context(), writeWith("k-3", a, MetaArgsDigest, capability.BytesDigest(canon))); err != nil {
		t.Fatalf("right args digest: %v", err)
	}
	if n := f.files.writes.Load(); n != 3 {
		t.Fatalf("%d writes, want 3", n)
	}
}

// TestIdempotentReplayIsFree: a replay charges nothing to the budget.
func TestIdempotentReplayIsFree(t *testing.T) {
	f := newFixture(t)
	alice := f.agent("team-r")
	id := "key:" + alice.DID().String()
	// Two executions of 1000 fit, three do not; a replay still reserves
	// the cost of a call (the Kernel reserves before it knows) but is
	// charged nothing.
	f.scopes[id] = budget.Scope{ID: id, Limit: 2500}
	cs := f.session(alice, f.issue(alice, false, "write_file"))
	a := map[string]any{"path": "/a"}
	for i := 0; i < 4; i++ {
		if _, err := cs.CallTool(t.Context(), writeWith("once", a)); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if _, err := cs.CallTool(t.Context(), writeWith("twice", a)); err != nil {
		t.Fatalf("a second execution: %v", err)
	}
	if _, err := cs.CallTool(t.Context(), writeWith("thrice", a)); talosCode(t, err) != string(contracts.CodeBudgetExceeded) {
		t.Fatalf("a third execution: %v", err)
	}
	if n := f.files.writes.Load(); n != 2 {
		t.Fatalf("%d executions, want 2", n)
	}
}

// blocking is a write tool that waits for release, to hold a key in
// flight; failing returns a tool error.
type blocking struct {
	entered, release chan struct{}
	runs, fails      atomic.Int64
}

func addBlocking(s *sdk.Server, b *blocking) {
	sdk.AddTool(s, &sdk.Tool{Name: "slow"}, func(ctx context.Context, _ *sdk.CallToolRequest, _ struct{}) (*sdk.CallToolResult, any, error) {
		b.runs.Add(1)
		b.entered <- struct{}{}
		select {
		case <-b.release:
		case <-ctx.Done():
		}
		return &sdk.CallToolResult{Content: []sdk.Content{&sdk.TextContent{Text: "slow done"}}}, nil, nil
	})
	sdk.AddTool(s, &sdk.Tool{Name: "fail"}, func(context.Context, *sdk.CallToolRequest, struct{}) (*sdk.CallToolResult, any, error) {
		b.fails.Add(1)
		return nil, nil, errors.New("disk full")
	})
}

// TestIdempotentInFlightAndFailures: a repeat while the first call runs is
// refused; a tool error is a result, replayed like any other.
func TestIdempotentInFlightAndFailures(t *testing.T) {
	b := &blocking{entered: make(chan struct{}, 1), release: make(chan struct{})}
	f := newFixture(t, func(c *Config, _ *map[string]budget.Limit) {
		s := sdk.NewServer(&sdk.Implementation{Name: "jobs", Version: "1"}, nil)
		addBlocking(s, b)
		c.Upstreams["jobs"] = InMemoryUpstream(s)
	})
	alice := f.agent("t")
	tok, err := capability.Issue(f.root.Signer(), alice.DID(), []capability.Grant{{Tool: "jobs", Actions: []string{"slow", "fail"}}},
		time.Now().Add(time.Hour), nil)
	if err != nil {
		t.Fatal(err)
	}
	cs := f.session(alice, tok.Encode())
	call := func(name, key string) (*sdk.CallToolResult, error) {
		return cs.CallTool(t.Context(), &sdk.CallToolParams{Meta: sdk.Meta{MetaIdempotencyKey: key}, Name: name, Arguments: map[string]any{}})
	}
	done := make(chan error, 1)
	go func() {
		_, err := call("jobs.slow", "job-1")
		done <- err
	}()
	select {
	case <-b.entered:
	case err := <-done:
		t.Fatalf("first call: %v", err)
	}
	if _, err := call("jobs.slow", "job-1"); talosCode(t, err) != string(contracts.CodeReplayDetected) {
		t.Fatalf("repeat in flight: %v", err)
	}
	close(b.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if res, err := call("jobs.slow", "job-1"); err != nil || textOf(res) != "slow done" || res.Meta[MetaReplayed] != true {
		t.Fatalf("repeat after: %v %v", res, err)
	}
	if n := b.runs.Load(); n != 1 {
		t.Fatalf("slow ran %d times", n)
	}
	for i := 0; i < 2; i++ {
		res, err := call("jobs.fail", "f-1")
		if err != nil || !res.IsError || !strings.Contains(textOf(res), "disk full") {
			t.Fatalf("failing tool: %v %v", res, err)
		}
	}
	if n := b.fails.Load(); n != 1 {
		t.Fatalf("the failing tool ran %d times, want 1", n)
	}
}

// TestDocumentLimits: a registry entry with a document spec bounds the
// documents a write carries and checks declared hashes.
func TestDocumentLimits(t *testing.T) {
	raw := `{"schema_id":"talos.mcp.tool_registry","schema_version":"v1","server_id":"files","server_version":"1","tools":[
		{"tool_name":"read_file","tool_class":"read"},
		{"tool_name":"write_file","tool_class":"write","is_document_op":true,"requires_idempotency_key":true,
		 "document_spec":{"write_content_pointers":["/data"],"content_encoding":"utf8","max_write_bytes":4}}]}`
	reg, err := capability.ParseToolRegistry([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *Config, _ *map[string]budget.Limit) { c.Registry = reg })
	alice := f.agent("t")
	cs := f.session(alice, f.issue(alice, false, "write_file"))
	for key, tc := range map[string]struct {
		args map[string]any
		meta []any
		code string
	}{
		"big":      {map[string]any{"path": "/a", "data": "12345"}, nil, string(capability.CodeDocSizeExceeded)},
		"nodoc":    {map[string]any{"path": "/a"}, nil, string(capability.CodeDocPointerInvalid)},
		"badhash":  {map[string]any{"path": "/a", "data": "1234"}, []any{MetaExpectedDocumentHashes, []any{map[string]any{"pointer": "/data", "hash": strings.Repeat("a", 64)}}}, string(capability.CodeDocHashMismatch)},
		"badmeta":  {map[string]any{"path": "/a", "data": "1234"}, []any{MetaExpectedDocumentHashes, "x"}, string(contracts.CodeInvalidInput)},
		"goodhash": {map[string]any{"path": "/a", "data": "1234"}, []any{MetaExpectedDocumentHashes, []any{map[string]any{"pointer": "/data", "hash": capability.BytesDigest([]byte("1234"))}}}, ""},
	} {
		_, err := cs.CallTool(t.Context(), writeWith(key, tc.args, tc.meta...))
		if tc.code == "" {
			if err != nil {
				t.Errorf("%s: %v", key, err)
			}
			continue
		}
		if got := talosCode(t, err); got != tc.code {
			t.Errorf("%s: %s, want %s", key, got, tc.code)
		}
	}
	if n := f.files.writes.Load(); n != 1 {
		t.Fatalf("%d writes reached the upstream, want 1", n)
	}
}

func TestMemIdempotencyStore(t *testing.T) {
	now := time.Unix(1000, 0)
	m := NewMemIdempotencyStore(MemIdempotencyConfig{MaxKeys: 2, MaxBytes: 10, Now: func() time.Time { return now }})
	ctx := t.Context()
	claim := func(key, digest string) (IdempotencyRecord, bool, error) {
		return m.Claim(ctx, key, digest, time.Minute)
	}
	if _, ok, err := claim("a", "d1"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if rec, ok, _ := claim("a", "d2"); ok || rec.Digest != "d1" || rec.Done {
		t.Fatalf("held key: %+v %v", rec, ok)
	}
	if err := m.Complete(ctx, "a", IdempotencyRecord{Digest: "d1", Done: true, Result: []byte("0123456789")}); err != nil {
		t.Fatal(err)
	}
	// 10 bytes held: the byte bound refuses new keys.
	if _, _, err := claim("b", "d"); !errors.Is(err, ErrIdempotencyFull) || contracts.CodeOf(err) != contracts.CodeRateLimited {
		t.Fatalf("over MaxBytes: %v", err)
	}
	now = now.Add(30 * time.Second)
	if rec, ok, _ := claim("a", "d1"); ok || string(rec.Result) != "0123456789" {
		t.Fatalf("before expiry: %+v", rec)
	}
	now = now.Add(31 * time.Second) // a expired
	if _, ok, err := claim("b", "d"); !ok || err != nil || m.Len() != 1 {
		t.Fatalf("after expiry: %v %v len %d", ok, err, m.Len())
	}
	if _, ok, _ := claim("c", "d"); !ok {
		t.Fatal("second key")
	}
	if _, _, err := claim("d", "d"); !errors.Is(err, ErrIdempotencyFull) {
		t.Fatalf("over MaxKeys: %v", err)
	}
	if err := m.Release(ctx, "b"); err != nil || m.Len() != 1 {
		t.Fatal(err, m.Len())
	}
	if _, ok, _ := claim("b", "d9"); !ok {
		t.Fatal("a released key is claimed again")
	}
}

func TestParseWriteMeta(t *testing.T) {
	h := strings.Repeat("ab", 32)
	good := map[string]any{MetaIdempotencyKey: "0193b1c2-7c1e-7000-8000-000000000001", MetaArgsDigest: h, "other/x": 1,
		MetaExpectedDocumentHashes: []any{map[string]any{"pointer": "/data", "hash": h}}}
	if k, err := ParseWriteMeta(good); err != nil || k != good[MetaIdempotencyKey] {
		t.Fatal(k, err)
	}
	for i, m := range []map[string]any{
		{MetaIdempotencyKey: ""}, {MetaIdempotencyKey: 7}, {MetaIdempotencyKey: strings.Repeat("k", 129)}, {MetaIdempotencyKey: "ké"},
		{MetaArgsDigest: strings.ToUpper(h)}, {MetaArgsDigest: "ab"},
		{MetaExpectedDocumentHashes: map[string]any{}}, {MetaExpectedDocumentHashes: []any{"x"}},
		{MetaExpectedDocumentHashes: []any{map[string]any{"pointer": "data", "hash": h}}},
		{MetaExpectedDocumentHashes: []any{map[string]any{"pointer": "/d", "hash": h, "extra": 1}}},
	} {
		if _, err := ParseWriteMeta(m); contracts.CodeOf(err) != contracts.CodeInvalidInput {
			t.Errorf("%d: %v accepted", i, m)
		}
	}
}

// FuzzParseWriteMeta: any _meta object is accepted or refused with
// TALOS_INVALID_INPUT, and an accepted key is within its alphabet.
func FuzzParseWriteMeta(f *testing.F) {
	f.Add(`{"talos/idempotency_key":"k-1"}`)
	f.Add(`{"talos/args_digest":"` + strings.Repeat("0", 64) + `","talos/expected_document_hashes":[{"pointer":"/a","hash":"` + strings.Repeat("f", 64) + `"}]}`)
	f.Add(`{"talos/expected_document_hashes":[{"pointer":1}]}`)
	f.Fuzz(func(t *testing.T, raw string) {
		var m map[string]any
		if json.Unmarshal([]byte(raw), &m) != nil {
			return
		}
		k, err := ParseWriteMeta(m)
		if err != nil {
			if contracts.CodeOf(err) != contracts.CodeInvalidInput {
				t.Fatalf("error code %v", err)
			}
			return
		}
		if len(k) > MaxIdempotencyKey || strings.ContainsAny(k, " \x00/\"") {
			t.Fatalf("accepted key %q", k)
		}
	})
}

// TestDocumentReadLimit: a read tool whose registry entry bounds the
// documents it returns: a larger one is refused (DOC_SIZE_EXCEEDED), a
// result without it is a bad upstream answer (MCP_PROTOCOL).
func TestDocumentReadLimit(t *testing.T) {
	raw := `{"schema_id":"talos.mcp.tool_registry","schema_version":"v1","server_id":"docs","server_version":"1","tools":[
		{"tool_name":"get","tool_class":"read","is_document_op":true,
		 "document_spec":{"read_content_pointers":["/text"],"content_encoding":"utf8","max_read_bytes":4}}]}`
	reg, err := capability.ParseToolRegistry([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *Config, _ *map[string]budget.Limit) {
		s := sdk.NewServer(&sdk.Implementation{Name: "docs", Version: "1"}, nil)
		sdk.AddTool(s, &sdk.Tool{Name: "get", Annotations: &sdk.ToolAnnotations{ReadOnlyHint: true}},
			func(_ context.Context, _ *sdk.CallToolRequest, a pathArgs) (*sdk.CallToolResult, map[string]any, error) {
				if a.Path == "/none" {
					return nil, map[string]any{"other": 1}, nil
				}
				return nil, map[string]any{"text": a.Data}, nil
			})
		c.Upstreams = map[string]Dialer{"docs": InMemoryUpstream(s)}
		c.Registry = reg
	})
	alice := f.agent("t")
	tok, _ := capability.Issue(f.root.Signer(), alice.DID(), []capability.Grant{{Tool: "docs", Actions: []string{"get"}}},
		time.Now().Add(time.Hour), nil)
	cs := f.session(alice, tok.Encode())
	get := func(path, data string) (*sdk.CallToolResult, error) {
		return cs.CallTool(t.Context(), &sdk.CallToolParams{Name: "docs.get", Arguments: map[string]any{"path": path, "data": data}})
	}
	if _, err := get("/a", "1234"); err != nil {
		t.Fatalf("within the limit: %v", err)
	}
	if _, err := get("/a", "12345"); talosCode(t, err) != string(capability.CodeDocSizeExceeded) {
		t.Fatalf("over the limit: %v", err)
	}
	if _, err := get("/none", ""); talosCode(t, err) != string(contracts.CodeMCPProtocol) {
		t.Fatalf("no document: %v", err)
	}
}
