package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/contracts"

	"github.com/talosgo/talos/gateway/admin"
	"github.com/talosgo/talos/gateway/config"
	configpg "github.com/talosgo/talos/gateway/config/postgres"
	"github.com/talosgo/talos/gateway/llm"
	mcpgw "github.com/talosgo/talos/gateway/mcp"
	"github.com/talosgo/talos/gateway/secrets"
)

// Runtime upstream administration (issue 17 part 2a and 1c): MCP upstream
// servers, LLM upstreams and model groups added, replaced and removed
// through the admin API without a restart.
//
//	GET    /v1/admin/mcp/servers[?limit=&cursor=]   (admin.mcp.servers read)
//	GET    /v1/admin/mcp/servers/{id}
//	PUT    /v1/admin/mcp/servers/{id}   {"url":"https://..."}  (write)
//	DELETE /v1/admin/mcp/servers/{id}
//	GET    /v1/admin/llm/upstreams[/{id}]               (admin.llm.upstreams)
//	PUT    /v1/admin/llm/upstreams/{id} {"kind":"openai"|"anthropic","url":...,"api_key_secret_id"?,"no_stream_usage"?}
//	DELETE /v1/admin/llm/upstreams/{id}
//	GET    /v1/admin/llm/model-groups[/{id}]            (admin.llm.model-groups)
//	PUT    /v1/admin/llm/model-groups/{id} {"upstreams":[...],"prompt_per_1k_micro_usd":n,"completion_per_1k_micro_usd":n,"routing_policy_id"?,"weights"?}
//	DELETE /v1/admin/llm/model-groups/{id}
//
// The sets are two documents of the shared config store (PostgreSQL when
// configured, DataDir/upstream-admin.jsonl otherwise): kind "mcp.servers"
// and kind "llm.routing", name "default", versioned. A change is applied
// here first (an MCP server is connected and listed; the LLM routing is
// checked and installed), then stored with a compare-and-swap on the
// previous version (retried on a concurrent change), audited inside the
// write; replicas poll the documents (TALOS_UPSTREAM_SYNC) and apply new
// versions. API keys are secret ids of the sealed secret store, resolved
// when applied and never returned. Upstream URLs are http(s), without
// credentials, and never on loopback, link-local, unspecified, multicast
// or (unless TALOS_UPSTREAM_ALLOW_PRIVATE) private addresses — checked on
// the URL and again on every dial; TALOS_UPSTREAM_ALLOW_LOOPBACK admits
// loopback (tests, a sidecar), off by default.

// Document kinds of the upstream sets in the config store.
const (
	kindMCPServers    = "mcp.servers"
	kindLLMRouting    = "llm.routing"
	upstreamDocName   = "default"
	upstreamAdminFile = "upstream-admin.jsonl"
	maxUpstreamBody   = 16 << 10
	maxUpstreamURL    = 2048
	maxModelGroups    = 256
)

// Admin tools of the routes.
const (
	toolMCPServers     = "admin.mcp.servers"
	toolLLMUpstreams   = "admin.llm.upstreams"
	toolLLMModelGroups = "admin.llm.model-groups"
	toolApprovals      = mcpgw.ApprovalsTool
)

type mcpServerItem struct {
	ID        string `json:"id"`
	URL       string `json:"url"`
	UpdatedAt string `json:"updated_at"`
	UpdatedBy string `json:"updated_by,omitempty"`
}

type mcpServersDoc struct {
	Servers []mcpServerItem `json:"servers"`
}

type llmUpstreamItem struct {
	ID             string `json:"id"`
	Kind           string `json:"kind"`
	URL            string `json:"url"`
	APIKeySecretID string `json:"api_key_secret_id,omitempty"`
	NoStreamUsage  bool   `json:"no_stream_usage,omitempty"`
	UpdatedAt      string `json:"updated_at"`
	UpdatedBy      string `json:"updated_by,omitempty"`
}

type modelGroupItem struct {
	ID                      string   `json:"id"`
	Upstreams               []string `json:"upstreams"`
	PromptPer1KMicroUSD     int64    `json:"prompt_per_1k_micro_usd"`
	CompletionPer1KMicroUSD int64    `json:"completion_per_1k_micro_usd"`
	// RoutingPolicyID names the routing policy config document the group
	// follows (policywire.go); empty: the one named as the group, if any.
	RoutingPolicyID string `json:"routing_policy_id,omitempty"`
	// Weights, one per upstream, weigh them under weighted_hash.
	Weights   []int  `json:"weights,omitempty"`
	UpdatedAt string `json:"updated_at"`
	UpdatedBy string `json:"updated_by,omitempty"`
}

type llmRoutingDoc struct {
	Upstreams   []llmUpstreamItem `json:"upstreams"`
	ModelGroups []modelGroupItem  `json:"model_groups"`
}

// upstreamAdmin holds the applied state of the two documents.
type upstreamAdmin struct {
	s     *Server
	c     *core
	store config.Store
	hook  func(context.Context, config.Change) error
	pol   urlPolicy

	mu         sync.Mutex // serializes applies
	mcpDigest  string     // digest of the applied mcp.servers version
	llmDigest  string
	mcpApplied map[string]string // id → URL served
	llmDoc     llmRoutingDoc     // the routing applied
}

// upstreamChangeKind is the propagated change of an upstream set.
const upstreamChangeKind = "upstreams"

var errUpstreamConflict = errors.New("upstream admin: document changed concurrently")

// openUpstreamAdmin opens the store of the upstream sets, applies their
// latest versions (enabling the MCP gateway or the LLM proxy if they were
// not configured) and starts the replica sync.
func (c *core) openUpstreamAdmin(ctx context.Context, s *Server) error {
	ua := &upstreamAdmin{s: s, c: c, mcpApplied: map[string]string{},
		pol: urlPolicy{allowLoopback: s.cfg.UpstreamAllowLoopback, allowPrivate: s.cfg.UpstreamAllowPrivate}}
	switch {
	case s.db != nil:
		db := s.db
		ps, err := configpg.New(configpg.Config{DB: db.Primary(), TablePrefix: s.cfg.tablePrefix,
			Read: func(ctx context.Context, fn func(context.Context, configpg.Querier) error) error {
				// The primary: a replica may lag behind the write just made.
				return fn(ctx, db.Primary())
			}})
		if err != nil {
			return err
		}
		if err := ps.Migrate(ctx); err != nil {
			return err
		}
		ua.store = ps
	default:
		fs, err := config.OpenFile(filepath.Join(s.cfg.DataDir, upstreamAdminFile))
		if err != nil {
			return err
		}
		s.OnShutdown("upstream admin store", func(context.Context) error { return fs.Close() })
		ua.store = fs
	}
	var err error
	if ua.hook, err = config.AuditHook(config.AuditHookConfig{
		Log: c.log, Events: c.events, Surface: opConfig,
		Principal: func(ch config.Change) audit.Principal {
			if ch.Principal != "" {
				return audit.BearerPrincipal(ch.Principal, "admin")
			}
			return audit.BearerPrincipal("admin", "admin")
		},
	}); err != nil {
		return err
	}
	c.upstreams = ua
	if err := ua.sync(ctx); err != nil {
		// An unreachable MCP server or a missing secret must not keep
		// every replica from starting: the rest is applied, and the sync
		// retries.
		s.log.Warn("upstream admin: the stored upstream sets are not all applied; the sync retries", "error", err.Error())
	}
	if every := s.cfg.UpstreamSync; every > 0 {
		s.Go("upstream-admin-sync", func(ctx context.Context) error {
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-t.C:
					if err := ua.sync(ctx); err != nil && ctx.Err() == nil {
						s.log.Warn("upstream admin: applying the shared upstream sets failed; retrying", "error", err.Error())
					}
				}
			}
		})
	}
	return nil
}

// sync applies the latest versions of both documents when they changed.
func (ua *upstreamAdmin) sync(ctx context.Context) error {
	ua.mu.Lock()
	defer ua.mu.Unlock()
	var errs []error
	if v, err := ua.latest(ctx, kindMCPServers); err != nil {
		errs = append(errs, err)
	} else if v.Digest != ua.mcpDigest {
		var doc mcpServersDoc
		if err := json.Unmarshal(v.Document, &doc); err != nil {
			errs = append(errs, err)
		} else if err := ua.applyMCP(ctx, doc); err != nil {
			errs = append(errs, err)
		} else {
			ua.mcpDigest = v.Digest
		}
	}
	if v, err := ua.latest(ctx, kindLLMRouting); err != nil {
		errs = append(errs, err)
	} else if v.Digest != ua.llmDigest {
		var doc llmRoutingDoc
		if err := json.Unmarshal(v.Document, &doc); err != nil {
			errs = append(errs, err)
		} else if err := ua.applyLLM(ctx, doc); err != nil {
			errs = append(errs, err)
		} else {
			ua.llmDigest = v.Digest
		}
	}
	return errors.Join(errs...)
}

// latest returns the latest version of a document, or a zero Version.
func (ua *upstreamAdmin) latest(ctx context.Context, kind string) (config.Version, error) {
	v, err := ua.store.Latest(ctx, kind, upstreamDocName)
	if errors.Is(err, config.ErrNotFound) {
		return config.Version{}, nil
	}
	return v, err
}

// update changes a document: edit makes the new one from the latest,
// apply installs it here (refusing it with an error), then the version is
// stored only over the one edited (else everything is done again on the
// new latest). On a failed store the previous document is applied again.
func update[D any](ctx context.Context, ua *upstreamAdmin, kind string, edit func(*D) error, apply func(context.Context, D) error, digest *string) (D, error) {
	ua.mu.Lock()
	defer ua.mu.Unlock()
	var zero D
	for range 5 {
		v, err := ua.latest(ctx, kind)
		if err != nil {
			return zero, contracts.Wrap(contracts.CodeInternal, "upstream admin: store unavailable", err)
		}
		var cur, next D
		if v.Document != nil {
			if err := json.Unmarshal(v.Document, &cur); err != nil {
				return zero, contracts.Wrap(contracts.CodeInternal, "upstream admin: stored document unreadable", err)
			}
			_ = json.Unmarshal(v.Document, &next)
		}
		if err := edit(&next); err != nil {
			return zero, err
		}
		raw, err := json.Marshal(next)
		if err != nil {
			return zero, err
		}
		canon, err := contracts.Canonicalize(raw)
		if err != nil {
			return zero, err
		}
		sum := sha256.Sum256(canon)
		d := hex.EncodeToString(sum[:])
		if err := apply(ctx, next); err != nil {
			_ = apply(context.WithoutCancel(ctx), cur)
			return zero, err
		}
		principal := principalFrom(ctx)
		_, _, err = ua.store.Put(ctx, kind, upstreamDocName, d, canon, time.Now().UTC(),
			func(ctx context.Context, nv config.Version, prev string) error {
				if prev != v.Digest {
					return errUpstreamConflict
				}
				return ua.hook(ctx, config.Change{Kind: kind, Name: upstreamDocName, Version: nv.Version,
					Digest: d, PreviousDigest: prev, Principal: principal, Time: nv.CreatedAt})
			})
		if errors.Is(err, errUpstreamConflict) {
			continue // another replica wrote first: edit its version
		}
		if err != nil {
			_ = apply(context.WithoutCancel(ctx), cur)
			return zero, contracts.Wrap(contracts.CodeInternal, "upstream admin: storing the change failed", err).WithRetryable(true)
		}
		*digest = d
		// The other replicas apply it on the change message (replicas.go),
		// the periodic sync being the fallback.
		ua.s.adminChanged(upstreamChangeKind)
		return next, nil
	}
	return zero, contracts.New(contracts.CodeInternal, "upstream admin: too many concurrent changes").WithRetryable(true)
}

// applyMCP makes the gateway serve exactly doc's servers (besides the
// configured ones): removed and changed ones are removed, new and changed
// ones connected and listed.
func (ua *upstreamAdmin) applyMCP(ctx context.Context, doc mcpServersDoc) error {
	want := map[string]string{}
	for _, it := range doc.Servers {
		want[it.ID] = it.URL
	}
	g := ua.c.gateway
	if g == nil {
		if len(want) == 0 {
			ua.mcpApplied = map[string]string{}
			return nil
		}
		if err := ua.c.enableGateway(ctx, ua.s, map[string]upstreamDialer{}, nil); err != nil {
			return err
		}
		g = ua.c.gateway
		if ua.s.mux != nil {
			ua.c.mountGateway(ua.s.mux, g)
		}
	}
	for id, u := range ua.mcpApplied {
		if want[id] != u {
			if err := g.RemoveUpstream(id); err != nil && !errors.Is(err, mcpgw.ErrUnknownUpstream) {
				return err
			}
			delete(ua.mcpApplied, id)
		}
	}
	ids := make([]string, 0, len(want))
	for id := range want {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		if ua.mcpApplied[id] == want[id] {
			continue
		}
		if err := g.AddUpstream(ctx, id, mcpgw.HTTPUpstream(want[id], ua.pol.client())); err != nil {
			return contracts.Wrap(contracts.CodeUpstream5xx, "upstream admin: MCP server "+id+" could not be connected and listed", err)
		}
		ua.mcpApplied[id] = want[id]
	}
	return nil
}

// applyLLM installs doc's upstreams and model groups as the proxy's
// run-time routing; API keys are read from the secret store.
func (ua *upstreamAdmin) applyLLM(ctx context.Context, doc llmRoutingDoc) error {
	ups := make([]llm.Upstream, 0, len(doc.Upstreams))
	for _, it := range doc.Upstreams {
		u := llm.Upstream{Name: it.ID, Kind: it.Kind, URL: it.URL, NoStreamUsage: it.NoStreamUsage, Client: ua.pol.client()}
		if it.APIKeySecretID != "" {
			key, err := ua.s.secrets.Get(ctx, it.APIKeySecretID)
			if contracts.CodeOf(err) == contracts.CodeNotFound {
				return contracts.New(contracts.CodeInvalidInput, "upstream admin: no secret "+it.APIKeySecretID+" for upstream "+it.ID)
			}
			if err != nil {
				return err
			}
			u.APIKey = string(key)
			clear(key)
		}
		ups = append(ups, u)
	}
	routes := make([]llm.ModelRoute, 0, len(doc.ModelGroups))
	for _, mg := range doc.ModelGroups {
		routes = append(routes, llm.ModelRoute{Model: mg.ID, Upstreams: mg.Upstreams,
			PromptPer1K: mg.PromptPer1KMicroUSD, CompletionPer1K: mg.CompletionPer1KMicroUSD,
			Policy: mg.RoutingPolicyID, Weights: mg.Weights})
	}
	p := ua.c.llm
	if p == nil {
		if len(routes) == 0 && len(ups) == 0 {
			ua.llmDoc = doc
			return nil
		}
		var err error
		if p, err = ua.c.newLLMProxy(ua.s, true); err != nil {
			return err
		}
		ua.c.llm = p
		if ua.s.prop != nil {
			ua.s.prop.installPoliciesIn(p) // the routing policy documents
		}
		if ua.s.mux != nil {
			ua.c.mountLLM(ua.s.mux, p)
		}
	}
	if err := p.SetRouting(ups, routes); err != nil {
		return err
	}
	ua.llmDoc = doc
	return nil
}

// urlPolicy is the SSRF rule of admin-added upstream URLs.
type urlPolicy struct{ allowLoopback, allowPrivate bool }

// check accepts an absolute http(s) URL without credentials, query or
// fragment whose host, if an IP literal or "localhost", is allowed.
func (p urlPolicy) check(raw string) error {
	bad := func(msg string) error { return contracts.New(contracts.CodeInvalidInput, "upstream url: "+msg) }
	if len(raw) > maxUpstreamURL {
		return bad("too long")
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return bad("must be an absolute http:// or https:// URL")
	}
	if u.User != nil {
		return bad("must not hold credentials (use api_key_secret_id)")
	}
	if u.RawQuery != "" || u.Fragment != "" || strings.ContainsAny(raw, " \t\r\n") {
		return bad("must not have a query or fragment")
	}
	host := u.Hostname()
	if strings.EqualFold(host, "localhost") || strings.HasSuffix(strings.ToLower(host), ".localhost") {
		if !p.allowLoopback {
			return bad("loopback hosts are not allowed (TALOS_UPSTREAM_ALLOW_LOOPBACK)")
		}
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if err := p.checkIP(ip); err != nil {
			return bad(err.Error())
		}
	}
	return nil
}

func (p urlPolicy) checkIP(ip netip.Addr) error {
	ip = ip.Unmap()
	switch {
	case ip.IsLoopback():
		if !p.allowLoopback {
			return errors.New("loopback addresses are not allowed (TALOS_UPSTREAM_ALLOW_LOOPBACK)")
		}
	case ip.IsUnspecified() || ip.IsMulticast() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast():
		return errors.New("unspecified, multicast and link-local addresses are not allowed")
	case ip.IsPrivate() || netip.MustParsePrefix("100.64.0.0/10").Contains(ip):
		if !p.allowPrivate {
			return errors.New("private addresses are not allowed (TALOS_UPSTREAM_ALLOW_PRIVATE)")
		}
	}
	return nil
}

// client dials only allowed addresses (checked on the address connected
// to, so a name that resolves to a refused address is refused too), with
// no proxy from the environment.
func (p urlPolicy) client() *http.Client {
	d := &net.Dialer{Timeout: 10 * time.Second, Control: func(_, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return err
		}
		return p.checkIP(ap.Addr())
	}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, ForceAttemptHTTP2: true,
		MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second, TLSHandshakeTimeout: 10 * time.Second}}
}

// mountUpstreamAdmin registers the routes of the upstream sets and the
// approval queue behind the admin check (gateway/admin.Handler.Require:
// read for GET, write otherwise); writes are audited (audited).
func (s *Server) mountUpstreamAdmin(mux *http.ServeMux) {
	c := s.core
	ua := c.upstreams
	handle := func(pattern, tool string, h http.HandlerFunc) {
		method, path, _ := strings.Cut(pattern, " ")
		action := admin.ActionRead
		if method != http.MethodGet {
			action, h = admin.ActionWrite, s.audited(tool, path, withActor(h))
		}
		mux.HandleFunc(pattern, c.admin.Require(tool, action, h))
	}
	if ua != nil {
		servers := func(d mcpServersDoc) []mcpServerItem { return d.Servers }
		serverID := mcpServerItem.itemID
		upstreams := func(d llmRoutingDoc) []llmUpstreamItem { return d.Upstreams }
		upstreamID := llmUpstreamItem.itemID
		groups := func(d llmRoutingDoc) []modelGroupItem { return d.ModelGroups }
		groupID := modelGroupItem.itemID
		handle("GET /v1/admin/mcp/servers", toolMCPServers, listItems(ua, kindMCPServers, servers, serverID))
		handle("GET /v1/admin/mcp/servers/{id}", toolMCPServers, getItem(ua, kindMCPServers, servers, serverID, "MCP server"))
		handle("PUT /v1/admin/mcp/servers/{id}", toolMCPServers, ua.putMCP)
		handle("DELETE /v1/admin/mcp/servers/{id}", toolMCPServers, ua.deleteMCP)
		handle("GET /v1/admin/llm/upstreams", toolLLMUpstreams, listItems(ua, kindLLMRouting, upstreams, upstreamID))
		handle("GET /v1/admin/llm/upstreams/{id}", toolLLMUpstreams, getItem(ua, kindLLMRouting, upstreams, upstreamID, "LLM upstream"))
		handle("PUT /v1/admin/llm/upstreams/{id}", toolLLMUpstreams, ua.putLLMUpstream)
		handle("DELETE /v1/admin/llm/upstreams/{id}", toolLLMUpstreams, ua.deleteLLMUpstream)
		handle("GET /v1/admin/llm/model-groups", toolLLMModelGroups, listItems(ua, kindLLMRouting, groups, groupID))
		handle("GET /v1/admin/llm/model-groups/{id}", toolLLMModelGroups, getItem(ua, kindLLMRouting, groups, groupID, "model group"))
		handle("PUT /v1/admin/llm/model-groups/{id}", toolLLMModelGroups, ua.putModelGroup)
		handle("DELETE /v1/admin/llm/model-groups/{id}", toolLLMModelGroups, ua.deleteModelGroup)
	}
	gov := func(h func(*mcpgw.Gateway) http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			g := c.gateway
			if g == nil || c.governance == nil {
				talos.WriteError(w, r, contracts.New(contracts.CodeNotFound, "governed writes are not enabled (TALOS_MCP_SUPERVISOR)"))
				return
			}
			h(g)(w, r)
		}
	}
	handle(mcpgw.ApprovalsPattern, toolApprovals, gov(func(g *mcpgw.Gateway) http.HandlerFunc { return g.HandleApprovals }))
	handle(mcpgw.ApprovalPattern, toolApprovals, gov(func(g *mcpgw.Gateway) http.HandlerFunc {
		return g.DecisionHandler(principalFrom)
	}))
}

// readBody reads a bounded JSON admin body strictly into v.
func readBody(w http.ResponseWriter, r *http.Request, v any) error {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxUpstreamBody))
	if err != nil {
		return contracts.New(contracts.CodeInvalidInput, "request body too large or unreadable")
	}
	return contracts.UnmarshalFieldsKnown(b, v)
}

func nowText() string { return time.Now().UTC().Format(time.RFC3339) }

// page answers a list of items with ids, after cursor, limit per page.
func page[T any](w http.ResponseWriter, r *http.Request, items []T, id func(T) string) {
	after, limit, err := mcpgw.ParseListPage(r)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	sort.Slice(items, func(i, j int) bool { return id(items[i]) < id(items[j]) })
	out := []T{}
	for _, it := range items {
		if id(it) > after {
			out = append(out, it)
		}
	}
	body := map[string]any{}
	if len(out) > limit {
		out = out[:limit]
		body["next_cursor"] = mcpgw.Cursor(id(out[len(out)-1]))
	}
	body["items"] = out
	w.Header().Set("Cache-Control", "no-store")
	writeAdminJSON(w, http.StatusOK, body)
}

func writeAdminJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"code":"INTERNAL","message":"response encoding failed","retryable":false}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// latestDoc reads the latest version of an upstream set (the zero set
// before the first).
func latestDoc[D any](ctx context.Context, ua *upstreamAdmin, kind string) (D, error) {
	var doc D
	v, err := ua.latest(ctx, kind)
	if err != nil {
		return doc, contracts.Wrap(contracts.CodeInternal, "upstream admin: store unavailable", err)
	}
	if v.Document != nil {
		err = json.Unmarshal(v.Document, &doc)
	}
	return doc, err
}

// listItems answers GET of a set's items, paginated by id.
func listItems[D, T any](ua *upstreamAdmin, kind string, items func(D) []T, id func(T) string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		doc, err := latestDoc[D](r.Context(), ua, kind)
		if err != nil {
			talos.WriteError(w, r, err)
			return
		}
		page(w, r, items(doc), id)
	}
}

// getItem answers GET of the item {id} of a set; what names it in a 404.
func getItem[D, T any](ua *upstreamAdmin, kind string, items func(D) []T, id func(T) string, what string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		doc, err := latestDoc[D](r.Context(), ua, kind)
		if err != nil {
			talos.WriteError(w, r, err)
			return
		}
		for _, it := range items(doc) {
			if id(it) == r.PathValue("id") {
				writeAdminJSON(w, http.StatusOK, it)
				return
			}
		}
		notFound(w, r, what)
	}
}

func (it mcpServerItem) itemID() string   { return it.ID }
func (it llmUpstreamItem) itemID() string { return it.ID }
func (it modelGroupItem) itemID() string  { return it.ID }

// upsert replaces the item of *items with item's id, or appends item when
// the set holds fewer than max (tooMany is the error otherwise); created
// says which.
func upsert[T interface{ itemID() string }](items *[]T, item T, max int, tooMany string) (created bool, err error) {
	if i := slices.IndexFunc(*items, func(it T) bool { return it.itemID() == item.itemID() }); i >= 0 {
		(*items)[i] = item
		return false, nil
	}
	if len(*items) >= max {
		return false, contracts.New(contracts.CodeInvalidInput, tooMany)
	}
	*items = append(*items, item)
	return true, nil
}

// writeUpserted answers a PUT with the item: 201 when it was created, 200
// when it replaced one.
func writeUpserted(w http.ResponseWriter, created bool, item any) {
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeAdminJSON(w, status, item)
}

func notFound(w http.ResponseWriter, r *http.Request, what string) {
	talos.WriteError(w, r, contracts.New(contracts.CodeNotFound, "no such "+what))
}

// --- MCP servers ---

// staticMCP reports whether id is an upstream configured at start-up.
func (ua *upstreamAdmin) staticMCP(id string) bool {
	return slices.ContainsFunc(ua.s.cfg.MCPUpstreams, func(u mcpUpstream) bool { return u.Name == id })
}

func (ua *upstreamAdmin) putMCP(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var body struct {
		URL string `json:"url"`
	}
	if err := readBody(w, r, &body); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	switch {
	case !mcpgw.ValidUpstreamName(id):
		talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "id must be 1 to 64 letters, digits, - and _"))
		return
	case ua.staticMCP(id):
		talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "MCP server "+id+" is configured at start-up (TALOS_MCP_UPSTREAMS), not through the admin API"))
		return
	}
	if err := ua.pol.check(body.URL); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	item := mcpServerItem{ID: id, URL: body.URL, UpdatedAt: nowText(), UpdatedBy: principalFrom(r.Context())}
	var created bool
	_, err := update(r.Context(), ua, kindMCPServers, func(d *mcpServersDoc) (err error) {
		created, err = upsert(&d.Servers, item, mcpgw.MaxUpstreams, "too many MCP servers")
		return err
	}, ua.applyMCP, &ua.mcpDigest)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	writeUpserted(w, created, item)
}

func (ua *upstreamAdmin) deleteMCP(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	_, err := update(r.Context(), ua, kindMCPServers, func(d *mcpServersDoc) error {
		i := slices.IndexFunc(d.Servers, func(it mcpServerItem) bool { return it.ID == id })
		if i < 0 {
			return contracts.New(contracts.CodeNotFound, "no such MCP server")
		}
		d.Servers = slices.Delete(d.Servers, i, i+1)
		return nil
	}, ua.applyMCP, &ua.mcpDigest)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// --- LLM upstreams and model groups ---

func (ua *upstreamAdmin) putLLMUpstream(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var body struct {
		Kind           string `json:"kind"`
		URL            string `json:"url"`
		APIKeySecretID string `json:"api_key_secret_id"`
		NoStreamUsage  bool   `json:"no_stream_usage"`
	}
	if err := readBody(w, r, &body); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	if body.Kind == "" {
		body.Kind = llm.KindOpenAI
	}
	switch {
	case !validUpstreamName(id) || id == "default":
		talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, `id must be 1 to 64 letters, digits, - and _, not "default"`))
		return
	case slices.ContainsFunc(ua.s.cfg.LLMUpstreams, func(u llmUpstream) bool { return u.Name == id }):
		talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "LLM upstream "+id+" is configured at start-up (TALOS_LLM_UPSTREAMS)"))
		return
	case body.Kind != llm.KindOpenAI && body.Kind != llm.KindAnthropic:
		talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, `kind must be "openai" or "anthropic"`))
		return
	case body.APIKeySecretID != "" && !validSecretID(body.APIKeySecretID):
		talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "api_key_secret_id is not a secret id"))
		return
	}
	if err := ua.pol.check(body.URL); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	item := llmUpstreamItem{ID: id, Kind: body.Kind, URL: body.URL, APIKeySecretID: body.APIKeySecretID,
		NoStreamUsage: body.NoStreamUsage, UpdatedAt: nowText(), UpdatedBy: principalFrom(r.Context())}
	var created bool
	_, err := update(r.Context(), ua, kindLLMRouting, func(d *llmRoutingDoc) (err error) {
		created, err = upsert(&d.Upstreams, item, maxModelGroups, "too many LLM upstreams")
		return err
	}, ua.applyLLM, &ua.llmDigest)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	writeUpserted(w, created, item)
}

func (ua *upstreamAdmin) deleteLLMUpstream(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	_, err := update(r.Context(), ua, kindLLMRouting, func(d *llmRoutingDoc) error {
		i := slices.IndexFunc(d.Upstreams, func(it llmUpstreamItem) bool { return it.ID == id })
		if i < 0 {
			return contracts.New(contracts.CodeNotFound, "no such LLM upstream")
		}
		for _, mg := range d.ModelGroups {
			if slices.Contains(mg.Upstreams, id) {
				return contracts.New(contracts.CodeInvalidInput, "LLM upstream "+id+" is used by model group "+mg.ID)
			}
		}
		d.Upstreams = slices.Delete(d.Upstreams, i, i+1)
		return nil
	}, ua.applyLLM, &ua.llmDigest)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// validModelGroupID: a model name usable as one path segment.
func validModelGroupID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

func (ua *upstreamAdmin) putModelGroup(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	var body struct {
		Upstreams               []string `json:"upstreams"`
		PromptPer1KMicroUSD     int64    `json:"prompt_per_1k_micro_usd"`
		CompletionPer1KMicroUSD int64    `json:"completion_per_1k_micro_usd"`
		RoutingPolicyID         string   `json:"routing_policy_id"`
		Weights                 []int    `json:"weights"`
	}
	if err := readBody(w, r, &body); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	switch {
	case !validModelGroupID(id):
		talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "id must be a model name of letters, digits and -_.:"))
		return
	case len(body.Upstreams) == 0 || len(body.Upstreams) > 16:
		talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "upstreams must name 1 to 16 upstreams"))
		return
	case body.PromptPer1KMicroUSD < 0 || body.CompletionPer1KMicroUSD < 0 || body.PromptPer1KMicroUSD > llm.MaxPricePer1K || body.CompletionPer1KMicroUSD > llm.MaxPricePer1K:
		talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "prices must be 0 to 1e9 micro-USD per 1000 tokens"))
		return
	}
	if err := checkGroupPolicy(body.RoutingPolicyID, body.Weights, len(body.Upstreams)); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	item := modelGroupItem{ID: id, Upstreams: body.Upstreams, PromptPer1KMicroUSD: body.PromptPer1KMicroUSD,
		CompletionPer1KMicroUSD: body.CompletionPer1KMicroUSD, RoutingPolicyID: body.RoutingPolicyID, Weights: body.Weights,
		UpdatedAt: nowText(), UpdatedBy: principalFrom(r.Context())}
	var created bool
	_, err := update(r.Context(), ua, kindLLMRouting, func(d *llmRoutingDoc) (err error) {
		created, err = upsert(&d.ModelGroups, item, maxModelGroups, "too many model groups")
		return err
	}, ua.applyLLM, &ua.llmDigest)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	writeUpserted(w, created, item)
}

func (ua *upstreamAdmin) deleteModelGroup(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	_, err := update(r.Context(), ua, kindLLMRouting, func(d *llmRoutingDoc) error {
		i := slices.IndexFunc(d.ModelGroups, func(it modelGroupItem) bool { return it.ID == id })
		if i < 0 {
			return contracts.New(contracts.CodeNotFound, "no such model group")
		}
		d.ModelGroups = slices.Delete(d.ModelGroups, i, i+1)
		return nil
	}, ua.applyLLM, &ua.llmDigest)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// withActor makes the acting admin's DID the request's principal (the
// change records and supervisor decisions name it).
func withActor(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a, ok := admin.ActorFrom(r.Context()); ok && a.DID != "" {
			r = r.WithContext(withPrincipal(r.Context(), a.DID))
		}
		next(w, r)
	}
}

// adminStatusWriter remembers the status a handler answered with.
type adminStatusWriter struct {
	http.ResponseWriter
	status int
}

func (s *adminStatusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *adminStatusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *adminStatusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// audited records every admin write of these routes, refused ones
// included, as an event of surface "admin": the acting admin's DID as
// principal (signed when attested, bearer for a session), meta tool,
// action "write", target (the id in the path) and admin_auth_mode. A
// change of an upstream set is also recorded inside its store write
// (config surface).
func (s *Server) audited(tool, template string, next http.HandlerFunc) http.HandlerFunc {
	c := s.core
	return func(w http.ResponseWriter, r *http.Request) {
		sw := &adminStatusWriter{ResponseWriter: w}
		next(sw, r)
		a, ok := admin.ActorFrom(r.Context())
		if !ok {
			return
		}
		p := audit.BearerPrincipal(a.DID, admin.SurfaceID)
		if a.AuthMode == admin.AuthAttested {
			p = audit.SignedPrincipal(a.DID, admin.SurfaceID, a.DID)
		}
		status := sw.status
		if status == 0 {
			status = http.StatusOK
		}
		meta := map[string]any{"admin_auth_mode": a.AuthMode, "tool": tool, "action": admin.ActionWrite}
		if id := r.PathValue("id"); id != "" {
			meta["target"] = id
		}
		ev, err := c.events.Draft(r, audit.Decision{RequestID: contracts.NewUUIDv7(), SurfaceID: admin.SurfaceID,
			TemplatePath: template, Status: status, Principal: p, Meta: meta})
		if err == nil {
			_, err = c.log.Append(context.WithoutCancel(r.Context()), ev)
		}
		if err != nil {
			s.log.Error("admin audit: recording an upstream or approval change failed", "tool", tool, "error", err.Error())
		}
	}
}

// validSecretID accepts the ids of the sealed secret store.
func validSecretID(id string) bool {
	if id == "" || len(id) > secrets.MaxIDLen || strings.HasPrefix(id, secrets.KEKPrefix) {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < '!' || id[i] > '~' {
			return false
		}
	}
	return true
}
