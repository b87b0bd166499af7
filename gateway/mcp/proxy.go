package mcp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"sort"
	"strings"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// Actions of resources and prompts. An upstream's resources and prompts
// are authorized as a whole: capability tool = the upstream name, action
// ActionReadResource (resources/list shows, resources/read reads) or
// ActionGetPrompt (prompts/list shows, prompts/get renders). Both are
// reads; a derived registry lists them for upstreams that offer
// resources or prompts, an explicit one must list them to allow them.
const (
	ActionReadResource = "resources/read"
	ActionGetPrompt    = "prompts/get"
)

// maxListed bounds the resources or prompts listed from one upstream.
const maxListed = 1000

// offers reports what upstream's session declared at initialization.
func offers(cs *sdk.ClientSession) (resources, prompts bool) {
	if cs == nil || cs.InitializeResult() == nil || cs.InitializeResult().Capabilities == nil {
		return false, false
	}
	c := cs.InitializeResult().Capabilities
	return c.Resources != nil, c.Prompts != nil
}

// upstreamsOffering returns the sorted names of upstreams whose last
// session offered resources (or prompts).
func (g *Gateway) upstreamsOffering(prompts bool) []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	var names []string
	for name, o := range g.offered {
		if (prompts && o.prompts) || (!prompts && o.resources) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

type offer struct{ resources, prompts bool }

// decideList asks the Authorizer about each (upstream, action) and folds
// the answers into one decision for a list request: allowed with the set
// of allowed upstreams, or denied by the first denial that concerns the
// capability itself (or by a back-end failure, authErr).
func decideList(ctx context.Context, st *state, did identity.DID, tok string, ups []string, action func(i int) string) (d capability.Decision, allowed []bool, authErr error) {
	d = capability.Decision{Allowed: true, Reason: capability.ReasonAllowed, Principal: did}
	allowed = make([]bool, len(ups))
	if st.authz == nil {
		d.Allowed, d.Reason = false, capability.ReasonScopeMismatch
		return d, allowed, nil
	}
	for i := 0; d.Allowed && i < len(ups); i++ {
		td, err := st.authz.Authorize(ctx, capability.Request{Capability: tok, Principal: did, Tool: ups[i], Action: action(i)})
		if td.CapabilityHash != "" {
			d.CapabilityHash, d.Issuer, d.ChainDepth = td.CapabilityHash, td.Issuer, td.ChainDepth
		}
		switch {
		case err != nil:
			authErr = err
			d.Allowed, d.Reason = false, capability.ReasonStoreUnavailable
		case td.Allowed:
			allowed[i] = true
		case !perTool(td.Reason):
			d.Allowed, d.Reason = false, td.Reason
		}
	}
	return d, allowed, authErr
}

// listVia runs a list request as one Kernel call with decision d; fill
// runs only when the Kernel admits it.
func (g *Gateway) listVia(ctx context.Context, st *state, did identity.DID, team, tok, action string, d capability.Decision, authErr error, fill func(ctx context.Context) (int, error)) error {
	d.Tool, d.Action = "mcp", action
	meta := map[string]any{}
	call := talos.Call{
		Request:   capability.Request{Capability: tok, Principal: did, Tool: "mcp", Action: action},
		SurfaceID: SurfaceID, TemplatePath: TemplatePath, Team: team, Decision: &d, Meta: meta,
	}
	out, err := st.kernel.Do(ctx, call, func(ctx context.Context, _ capability.Decision) (int64, int, error) {
		n, err := fill(ctx)
		meta["listed"] = n
		return 0, http.StatusOK, err
	})
	if authErr != nil || err != nil || !out.Allowed || out.Code != "" {
		code := out.Code
		if code == "" || authErr != nil {
			code = contracts.CodeInternal
		}
		return DenyError(string(code))
	}
	return nil
}

// listResources answers resources/list with the resources of the
// upstreams whose resources the caller may read, listed live.
func (g *Gateway) listResources(ctx context.Context, req *sdk.ListResourcesRequest) (*sdk.ListResourcesResult, error) {
	did, team, tok, err := g.caller(ctx, req.Extra)
	if err != nil {
		return nil, err
	}
	st := g.st.Load()
	ups := g.upstreamsOffering(false)
	d, allowed, authErr := decideList(ctx, st, did, tok, ups, func(int) string { return ActionReadResource })
	res := &sdk.ListResourcesResult{Resources: []*sdk.Resource{}}
	err = g.listVia(ctx, st, did, team, tok, "resources/list", d, authErr, func(ctx context.Context) (int, error) {
		for i, up := range ups {
			if !allowed[i] {
				continue
			}
			cs, err := g.session(ctx, up)
			if err != nil {
				return 0, contracts.Wrap(contracts.CodeUpstream5xx, "upstream not connected", err)
			}
			owners := map[string]bool{}
			for r, err := range cs.Resources(ctx, nil) {
				if err != nil {
					return 0, contracts.Wrap(contracts.CodeMCPProtocol, "mcp: upstream "+up+": listing resources", err)
				}
				if len(owners) >= maxListed || r.URI == "" || len(r.URI) > 2048 {
					return 0, contracts.New(contracts.CodeMCPProtocol, "mcp: upstream "+up+": too many resources or a bad URI")
				}
				owners[r.URI] = true
				res.Resources = append(res.Resources, r)
			}
			g.mu.Lock()
			g.resources[up] = owners
			g.mu.Unlock()
		}
		return len(res.Resources), nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// resourceOwner returns the upstream whose last listing had uri; a URI
// two upstreams list is refused (ambiguous).
func (g *Gateway) resourceOwner(uri string) (string, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	owner := ""
	for up, uris := range g.resources {
		if uris[uri] {
			if owner != "" {
				return "", false
			}
			owner = up
		}
	}
	return owner, owner != ""
}

// readResource forwards resources/read to the upstream that listed the
// URI, after the Kernel admits (upstream, resources/read).
func (g *Gateway) readResource(ctx context.Context, req *sdk.ReadResourceRequest) (*sdk.ReadResourceResult, error) {
	did, team, tok, err := g.caller(ctx, req.Extra)
	if err != nil {
		return nil, err
	}
	if req.Params == nil || req.Params.URI == "" || len(req.Params.URI) > 2048 {
		return nil, DenyError(string(contracts.CodeInvalidInput))
	}
	sum := sha256.Sum256([]byte(req.Params.URI))
	up, ok := g.resourceOwner(req.Params.URI)
	var result *sdk.ReadResourceResult
	err = g.proxied(ctx, did, team, tok, up, ok, ActionReadResource, hex.EncodeToString(sum[:]), func(ctx context.Context, cs *sdk.ClientSession) error {
		r, err := cs.ReadResource(ctx, &sdk.ReadResourceParams{URI: req.Params.URI})
		result = r
		return err
	})
	return result, err
}

// listPrompts answers prompts/list with the prompts ("<upstream>.<name>")
// of the upstreams whose prompts the caller may get, listed live.
func (g *Gateway) listPrompts(ctx context.Context, req *sdk.ListPromptsRequest) (*sdk.ListPromptsResult, error) {
	did, team, tok, err := g.caller(ctx, req.Extra)
	if err != nil {
		return nil, err
	}
	st := g.st.Load()
	ups := g.upstreamsOffering(true)
	d, allowed, authErr := decideList(ctx, st, did, tok, ups, func(int) string { return ActionGetPrompt })
	res := &sdk.ListPromptsResult{Prompts: []*sdk.Prompt{}}
	err = g.listVia(ctx, st, did, team, tok, "prompts/list", d, authErr, func(ctx context.Context) (int, error) {
		for i, up := range ups {
			if !allowed[i] {
				continue
			}
			cs, err := g.session(ctx, up)
			if err != nil {
				return 0, contracts.Wrap(contracts.CodeUpstream5xx, "upstream not connected", err)
			}
			n := 0
			for p, err := range cs.Prompts(ctx, nil) {
				if err != nil {
					return 0, contracts.Wrap(contracts.CodeMCPProtocol, "mcp: upstream "+up+": listing prompts", err)
				}
				if n++; n > maxListed || checkToolName(p.Name) != nil {
					return 0, contracts.New(contracts.CodeMCPProtocol, "mcp: upstream "+up+": too many prompts or a bad prompt name")
				}
				exposed := *p
				exposed.Name = up + "." + p.Name
				res.Prompts = append(res.Prompts, &exposed)
			}
		}
		return len(res.Prompts), nil
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// getPrompt forwards prompts/get for "<upstream>.<name>" after the Kernel
// admits (upstream, prompts/get); the args digest covers the name and
// arguments.
func (g *Gateway) getPrompt(ctx context.Context, req *sdk.GetPromptRequest) (*sdk.GetPromptResult, error) {
	did, team, tok, err := g.caller(ctx, req.Extra)
	if err != nil {
		return nil, err
	}
	if req.Params == nil {
		return nil, DenyError(string(contracts.CodeInvalidInput))
	}
	up, name, ok := strings.Cut(req.Params.Name, ".")
	if !ok || checkToolName(name) != nil || len(up) > 128 {
		return nil, DenyError(string(contracts.CodeInvalidInput))
	}
	pargs := req.Params.Arguments
	if pargs == nil {
		pargs = map[string]string{}
	}
	canon, err := contracts.MarshalStrict(map[string]any{"name": name, "arguments": pargs})
	if err != nil {
		return nil, DenyError(string(contracts.CodeInvalidInput))
	}
	sum := sha256.Sum256(canon)
	known := g.hasUpstream(up)
	var result *sdk.GetPromptResult
	err = g.proxied(ctx, did, team, tok, up, known && g.offer(up).prompts, ActionGetPrompt, hex.EncodeToString(sum[:]), func(ctx context.Context, cs *sdk.ClientSession) error {
		r, err := cs.GetPrompt(ctx, &sdk.GetPromptParams{Name: name, Arguments: req.Params.Arguments})
		result = r
		return err
	})
	return result, err
}

func (g *Gateway) offer(up string) offer {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.offered[up]
}

// proxied runs one resources/read or prompts/get through the Kernel: the
// Authorizer decides (upstream, action) unless served is false (UNKNOWN_
// TOOL, audited); then rate limit, budget, forward (never retried), audit.
func (g *Gateway) proxied(ctx context.Context, did identity.DID, team, tok, up string, served bool, action, digest string, fwd func(context.Context, *sdk.ClientSession) error) error {
	st := g.st.Load()
	call := talos.Call{
		Request:   capability.Request{Capability: tok, Principal: did, Tool: up, Action: action, ArgsDigest: digest},
		SurfaceID: SurfaceID, TemplatePath: TemplatePath, Team: team,
	}
	if !served {
		call.Decision = &capability.Decision{Reason: capability.ReasonUnknownTool, Principal: did, Tool: up, Action: action, ArgsDigest: digest}
	} else if g.cfg.Budget != nil {
		call.Budget = g.cfg.Budget(ctx, did, team, g.cfg.Cost)
	}
	out, err := st.kernel.Do(ctx, call, func(ctx context.Context, _ capability.Decision) (int64, int, error) {
		cs, err := g.session(ctx, up)
		if err != nil {
			return 0, 0, contracts.Wrap(contracts.CodeUpstream5xx, "upstream not connected", err)
		}
		cctx, cancel := context.WithTimeout(ctx, g.cfg.CallTimeout)
		defer cancel()
		if err := fwd(cctx, cs); err != nil {
			return 0, 0, g.upstreamErr(up, cs, cctx, err)
		}
		return g.cfg.Cost, http.StatusOK, nil
	})
	if !out.Allowed || err != nil {
		code := out.Code
		if code == "" {
			code = contracts.CodeInternal
		}
		return DenyError(string(code))
	}
	return nil
}
