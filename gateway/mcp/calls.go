package mcp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// ListAction is the action recorded in the audit event of a tools/list
// (tool "mcp"): one event per list, whatever the number of tools asked
// about.
const ListAction = "tools/list"

// methods answers tools/list and tools/call itself, so that the list is
// filtered per caller and a tool that disappeared upstream is refused by
// the Kernel (audited) rather than by the SDK's dispatcher.
func (g *Gateway) methods(next sdk.MethodHandler) sdk.MethodHandler {
	return func(ctx context.Context, method string, req sdk.Request) (sdk.Result, error) {
		switch r := req.(type) {
		case *sdk.ListToolsRequest:
			return g.listTools(ctx, r)
		case *sdk.CallToolRequest:
			return g.callTool(ctx, r)
		case *sdk.ListResourcesRequest:
			if g.hasResources {
				return g.listResources(ctx, r)
			}
		case *sdk.ReadResourceRequest:
			if g.hasResources {
				return g.readResource(ctx, r)
			}
		case *sdk.ListPromptsRequest:
			if g.hasPrompts {
				return g.listPrompts(ctx, r)
			}
		case *sdk.GetPromptRequest:
			if g.hasPrompts {
				return g.getPrompt(ctx, r)
			}
		}
		return next(ctx, method, req)
	}
}

// caller returns the attested principal of a request, its team and its
// capability header.
func (g *Gateway) caller(ctx context.Context, extra *sdk.RequestExtra) (identity.DID, string, string, error) {
	// The principal is a typed value in the context: the go-sdk connects
	// each stateless request's session with the HTTP request's context, so
	// its values (the Attester's verified attestation) reach the handlers.
	did, ok := talos.PrincipalFrom(ctx)
	if !ok || extra == nil || extra.Header == nil {
		return identity.DID{}, "", "", DenyError(string(contracts.CodeAuthInvalid))
	}
	var team string
	if g.cfg.Team != nil {
		if team, ok = g.cfg.Team(ctx, did); !ok {
			return identity.DID{}, "", "", DenyError(string(contracts.CodeAuthInvalid))
		}
	}
	return did, team, extra.Header.Get(talos.HeaderCapability), nil
}

// perTool reports whether a denial is about one tool (the capability was
// verified but does not cover it) rather than about the capability itself.
func perTool(r capability.ReasonCode) bool {
	return r == capability.ReasonScopeMismatch || r == capability.ReasonUnknownTool || r == capability.ReasonRBACDenied
}

type listed struct {
	upstream string
	tool     *sdk.Tool
}

// listTools answers tools/list with the tools the caller's capability
// allows: each tool is asked of the Kernel's Authorizer (no audit per
// tool), and the list is one Kernel call with the resulting decision —
// rate-limited and audited once. A capability that is invalid, expired
// or revoked, or a failing back-end, refuses the list; a valid one that
// allows nothing gets an empty list.
func (g *Gateway) listTools(ctx context.Context, req *sdk.ListToolsRequest) (*sdk.ListToolsResult, error) {
	did, team, tok, err := g.caller(ctx, req.Extra)
	if err != nil {
		return nil, err
	}
	st := g.st.Load()
	g.mu.Lock()
	var all []listed
	for up, ts := range g.tools {
		for _, t := range ts {
			all = append(all, listed{up, t})
		}
	}
	g.mu.Unlock()
	sort.Slice(all, func(i, j int) bool {
		if all[i].upstream != all[j].upstream {
			return all[i].upstream < all[j].upstream
		}
		return all[i].tool.Name < all[j].tool.Name
	})
	d := capability.Decision{Allowed: true, Reason: capability.ReasonAllowed, Principal: did}
	visible := []*sdk.Tool{}
	if st.authz == nil {
		d.Allowed, d.Reason = false, capability.ReasonScopeMismatch
	}
	var authErr error
	for i := 0; d.Allowed && i < len(all); i++ {
		it := all[i]
		td, err := st.authz.Authorize(ctx, capability.Request{Capability: tok, Principal: did, Tool: it.upstream, Action: it.tool.Name})
		if td.CapabilityHash != "" {
			d.CapabilityHash, d.Issuer, d.ChainDepth = td.CapabilityHash, td.Issuer, td.ChainDepth
		}
		switch {
		case err != nil:
			authErr = err
			d.Allowed, d.Reason = false, capability.ReasonStoreUnavailable
		case td.Allowed:
			exposed := *it.tool
			exposed.Name = it.upstream + "." + it.tool.Name
			visible = append(visible, &exposed)
		case !perTool(td.Reason):
			d.Allowed, d.Reason = false, td.Reason
		}
	}
	d.Tool, d.Action = "mcp", ListAction
	call := talos.Call{
		Request:   capability.Request{Capability: tok, Principal: did, Tool: "mcp", Action: ListAction},
		SurfaceID: SurfaceID, TemplatePath: TemplatePath, Team: team, Decision: &d,
		Meta: map[string]any{"listed": len(visible)},
	}
	out, err := st.kernel.Do(ctx, call, func(context.Context, capability.Decision) (int64, int, error) {
		return 0, http.StatusOK, nil
	})
	if authErr != nil || err != nil || !out.Allowed || out.Code != "" {
		code := out.Code
		if code == "" || authErr != nil {
			code = contracts.CodeInternal
		}
		return nil, DenyError(string(code))
	}
	return &sdk.ListToolsResult{Tools: visible}, nil
}

// callTool forwards one tools/call after the Kernel admits it.
func (g *Gateway) callTool(ctx context.Context, req *sdk.CallToolRequest) (*sdk.CallToolResult, error) {
	did, team, tok, err := g.caller(ctx, req.Extra)
	if err != nil {
		return nil, err
	}
	if req.Params == nil {
		return nil, DenyError(string(contracts.CodeInvalidInput))
	}
	upstream, tool, ok := strings.Cut(req.Params.Name, ".")
	if !ok || checkToolName(tool) != nil || len(upstream) > 128 {
		return nil, DenyError(string(contracts.CodeInvalidInput))
	}
	args := req.Params.Arguments
	if len(args) == 0 {
		args = json.RawMessage(`{}`)
	}
	canon, err := contracts.Canonicalize(args)
	if err != nil || canon[0] != '{' {
		return nil, DenyError(string(contracts.CodeInvalidInput))
	}
	sum := sha256.Sum256(canon)
	digest := hex.EncodeToString(sum[:])
	w, err := parseWriteMeta(req.Params.Meta)
	if err != nil {
		return nil, DenyError(string(contracts.CodeOf(err)))
	}
	st := g.st.Load()
	call := talos.Call{
		Request: capability.Request{
			Capability: tok, Principal: did, Tool: upstream, Action: tool, ArgsDigest: digest,
		},
		SurfaceID: SurfaceID, TemplatePath: TemplatePath, Team: team, Meta: map[string]any{},
	}
	if _, ok := g.tool(upstream, tool); !ok {
		// Not served (never, or no longer): decided here, audited by the
		// Kernel like any denial.
		call.Decision = &capability.Decision{Reason: capability.ReasonUnknownTool, Principal: did, Tool: upstream, Action: tool, ArgsDigest: digest}
	} else if g.cfg.Budget != nil {
		call.Budget = g.cfg.Budget(ctx, did, team, g.cfg.Cost)
	}
	entry, _ := st.registry.Lookup(upstream, tool)
	var result *sdk.CallToolResult
	out, err := st.kernel.Do(ctx, call, func(ctx context.Context, _ capability.Decision) (int64, int, error) {
		if w.argsDigest != "" && w.argsDigest != digest {
			return 0, 0, contracts.New(contracts.CodeInvalidInput, "mcp: the arguments do not match "+MetaArgsDigest)
		}
		if entry.Doc != nil {
			if err := capability.ValidateDocWrites(*entry.Doc, canon, w.docHashes); err != nil {
				return 0, 0, err
			}
		}
		if !entry.RequiresIdempotencyKey {
			res, err := g.forward(ctx, upstream, tool, canon, entry.Doc)
			if err != nil {
				return 0, 0, err
			}
			result = res
			return g.cfg.Cost, http.StatusOK, nil
		}
		var gov *governedArgs
		if g.governedWrite(entry) {
			gov = &governedArgs{tok: tok}
		}
		res, replayed, err := g.idempotent(ctx, did, upstream, tool, digest, w.key, canon, entry.Doc, gov)
		if err != nil {
			return 0, 0, err
		}
		result = res
		if replayed {
			call.Meta["idempotent_replay"] = true
			return 0, http.StatusOK, nil
		}
		return g.cfg.Cost, http.StatusOK, nil
	})
	if !out.Allowed || err != nil {
		code := out.Code
		if code == "" {
			code = contracts.CodeInternal
		}
		return nil, DenyError(string(code))
	}
	return result, nil
}

// forward calls tool on upstream with the canonical arguments whose
// digest was authorized. It is never retried.
func (g *Gateway) forward(ctx context.Context, upstream, tool string, canon []byte, doc *capability.DocSpec) (*sdk.CallToolResult, error) {
	return g.forwardMeta(ctx, upstream, tool, canon, doc, nil)
}

// forwardMeta is forward with params._meta for the upstream (governed
// calls send their tool call's id and idempotency key).
func (g *Gateway) forwardMeta(ctx context.Context, upstream, tool string, canon []byte, doc *capability.DocSpec, meta map[string]any) (*sdk.CallToolResult, error) {
	cs, err := g.session(ctx, upstream)
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeUpstream5xx, "upstream not connected", errors.Join(errNotSent, err))
	}
	if _, ok := g.tool(upstream, tool); !ok {
		// The reconnection's list no longer has it.
		return nil, contracts.Wrap(contracts.CodeDenied, "mcp: tool no longer served", errNotSent)
	}
	cctx, cancel := context.WithTimeout(ctx, g.cfg.CallTimeout)
	defer cancel()
	params := &sdk.CallToolParams{Name: tool, Arguments: json.RawMessage(canon)}
	if meta != nil {
		params.Meta = meta
	}
	res, err := cs.CallTool(cctx, params)
	if err != nil {
		return nil, g.upstreamErr(upstream, cs, cctx, err)
	}
	if err := checkDocReads(doc, res); err != nil {
		return nil, err
	}
	return res, nil
}

// checkDocReads applies a document spec's read side to a result: each
// read pointer must name a string in the structured content, decodable in
// the content encoding and of at most MaxReadBytes (DOC_SIZE_EXCEEDED);
// a result without it is a bad upstream answer (MCP_PROTOCOL). Specs
// without read pointers or without a read limit are not checked. Tool
// errors are passed through.
func checkDocReads(doc *capability.DocSpec, res *sdk.CallToolResult) error {
	if doc == nil || len(doc.ReadContentPointers) == 0 || doc.MaxReadBytes <= 0 || res.IsError {
		return nil
	}
	sc, err := json.Marshal(res.StructuredContent)
	if err != nil || res.StructuredContent == nil {
		return contracts.New(contracts.CodeMCPProtocol, "mcp: a document tool's result has no structured content")
	}
	err = capability.ValidateDocWrites(capability.DocSpec{WriteContentPointers: doc.ReadContentPointers,
		MaxWriteBytes: doc.MaxReadBytes, ContentEncoding: doc.ContentEncoding}, sc, nil)
	switch contracts.CodeOf(err) {
	case "":
		return nil
	case capability.CodeDocSizeExceeded:
		return contracts.New(capability.CodeDocSizeExceeded, "mcp: a document in the result exceeds max_read_bytes")
	default:
		return contracts.Wrap(contracts.CodeMCPProtocol, "mcp: a document tool's result does not carry its documents", err)
	}
}

// upstreamErr maps a failed upstream request to a contract error; a
// transport failure drops the session, so that the next call reconnects.
func (g *Gateway) upstreamErr(upstream string, cs *sdk.ClientSession, cctx context.Context, err error) error {
	var je *jsonrpc.Error
	if !errors.As(err, &je) {
		g.drop(upstream, cs)
	}
	if errors.Is(cctx.Err(), context.DeadlineExceeded) {
		return contracts.Wrap(contracts.CodeUpstreamTimeout, "upstream timed out", err)
	}
	return contracts.Wrap(contracts.CodeMCPProtocol, "upstream call failed", err)
}

// errNotSent marks failures that happened before the call was sent: an
// idempotency key may then be used again.
var errNotSent = errors.New("mcp: call not sent")
