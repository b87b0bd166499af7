// Package openapi builds the OpenAPI 3.1 document of every route
// examples/server mounts. The reusable parts (schemas, examples, security
// schemes, error responses) are hand-written in components.json; the
// operations are the table in routes.go. Build joins them, and
// `go generate` writes the result to openapi.json, which the server embeds
// and serves at GET /openapi.json.
//
// Every operation carries extensions the server's tests check against the
// running server: x-talos-route, the exact http.ServeMux pattern it is
// served by (several documented paths may share one pattern, as the
// tlog-tiles under "GET /tlog/" do); x-talos-mount, when that pattern is on
// a sub-mux, the pattern the server's mux hands the sub-mux; and for
// attested routes x-talos-opcode, the opcode the request's signature
// covers. Admin
// operations carry x-talos-grant, the (tool, action) the caller's admin
// role must grant.
package openapi

//go:generate go run ./gen

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
)

//go:embed components.json
var componentsJSON []byte

// Version is the document's info.version: the admin API contract version.
const Version = "1.0.0"

// obj is a JSON object under construction.
type obj = map[string]any

// Auth kinds of a route.
const (
	authPublic      = "public"       // no credential
	authAttested    = "attested"     // X-Talos-* attestation of a registered principal
	authCapability  = "capability"   // attestation and an X-Talos-Capability token
	authAdmin       = "admin"        // admin identity: attested (opcode admin) or session, with a grant
	authAdminSelf   = "admin-self"   // any authenticated admin, no grant
	authAdminSigned = "admin-signed" // attested admin only (no session)
	authBootstrap   = "bootstrap"    // the bootstrap or recovery credential
	authReaders     = "readers"      // public, but entry bytes only for audit readers (admin.audit read)
)

// A route is one documented operation.
type route struct {
	Method, Path string
	// Pattern is the ServeMux pattern serving it (default Method+" "+Path).
	Pattern string
	// Mount is the pattern on the server's mux of the sub-mux holding
	// Pattern, when the route is served by one (the audit service).
	Mount   string
	ID      string
	Tag     string
	Summary string
	Desc    string
	Auth    string
	// Opcode is the attestation opcode (attested and capability routes).
	Opcode string
	// OAuth adds the OAuth bearer (TALOS_OAUTH_ISSUER) as an alternative
	// to attestation.
	OAuth bool
	// Tool is the admin grant's tool (admin routes; the action follows the
	// method: GET read, others write).
	Tool string
	// Params are extra parameters (query, header); path parameters come
	// from pathParams by name unless given here.
	Params []obj
	Req    *body
	Resp   []resp
	// Errs are the error statuses answered (400, 401, 403, 404, 409, 429,
	// 500, 503).
	Errs []int
}

// A body is a request or response body: a schema reference (a component
// name) or an inline schema, the media type, and examples (component
// example names).
type body struct {
	Schema   string
	Inline   obj
	Type     string // default application/json
	Examples []string
}

type resp struct {
	Status  int
	Desc    string
	Body    *body
	Headers []string // component header names
}

// pathParams are the path parameters by name.
var pathParams = map[string]obj{
	"did":    {"description": "A did:key.", "schema": ref("DID"), "example": exampleDID},
	"hash":   {"description": "A capability hash.", "schema": ref("Hex64"), "example": exampleHash},
	"id":     {"description": "The resource's id.", "schema": obj{"type": "string", "minLength": 1}, "example": "0192e4a1-7c3b-7d2e-9f10-2b3c4d5e6f70"},
	"member": {"description": "The member's principal id.", "schema": obj{"type": "string", "minLength": 1}, "example": exampleDID},
	"scope":  {"description": "key:<did> or team:<id>.", "schema": obj{"type": "string", "pattern": "^(key|team):.+$"}, "example": "team:team-a"},
	"kind":   {"description": "A registered document kind (budget, policy).", "schema": obj{"type": "string", "pattern": "^[a-z][a-z0-9_-]{0,31}$"}, "example": "budget"},
	"name":   {"description": "The document name.", "schema": obj{"type": "string", "pattern": "^[a-z0-9][a-z0-9._-]{0,63}$"}, "example": "team-a"},
	"n":      {"description": "A version number.", "schema": obj{"type": "integer", "minimum": 1}, "example": 2},
	"index":  {"description": "A log index.", "schema": obj{"type": "integer", "minimum": 0}, "example": 7},
	"level":  {"description": "The tile level (0 to 63).", "schema": obj{"type": "integer", "minimum": 0, "maximum": 63}, "example": 0},
	"tile":   {"description": "The tile index in C2SP path form (x001/x234/067, with .p/<width> for a partial tile); its slashes are literal.", "schema": obj{"type": "string", "pattern": "^(x[0-9]{3}/)*[0-9]{3}(\\.p/[0-9]+)?$"}, "example": "000"},
}

const (
	exampleDID  = "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK"
	exampleHash = "9f2c4e2b7d7a4f7c1a3b5d6e8f90a1b2c3d4e5f60718293a4b5c6d7e8f901a2b"
)

func ref(name string) obj { return obj{"$ref": "#/components/schemas/" + name} }

var errResponse = map[int]string{
	400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
	409: "Conflict", 429: "TooManyRequests", 500: "Internal", 503: "Unavailable",
}

var pathParam = regexp.MustCompile(`\{([a-z]+)\}`)

// Build returns the document as indented JSON (keys sorted, so the output
// is stable).
func Build() ([]byte, error) {
	var components obj
	if err := json.Unmarshal(componentsJSON, &components); err != nil {
		return nil, fmt.Errorf("openapi: components.json: %w", err)
	}
	paths := obj{}
	seen := map[string]bool{}
	for _, rt := range routes {
		key := rt.Method + " " + rt.Path
		if seen[key] || seen["id "+rt.ID] {
			return nil, fmt.Errorf("openapi: %s (%s) documented twice", key, rt.ID)
		}
		seen[key], seen["id "+rt.ID] = true, true
		op, err := rt.operation()
		if err != nil {
			return nil, err
		}
		item, _ := paths[rt.Path].(obj)
		if item == nil {
			item = obj{}
			paths[rt.Path] = item
		}
		item[strings.ToLower(rt.Method)] = op
	}
	doc := obj{
		"openapi":           "3.1.0",
		"jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
		"info": obj{
			"title":   "Talos server API",
			"version": Version,
			"summary": "The trust layer's HTTP surface: kernel, audit, admin, configuration, A2A, MCP and LLM gateways.",
			"description": "Every route examples/server mounts. Errors are the contract error body " +
				"(components.schemas.Error); any path not listed answers 404 NOT_FOUND with it. " +
				"Agent routes are HTTP-attested (talosAttestation) by a registered principal; admin routes " +
				"take an attested admin identity (opcode admin) or an admin session (adminSession) whose role " +
				"grants x-talos-grant; POST /v1/admin/bootstrap alone takes the bootstrap credential. " +
				"Lists are paginated with limit (1 to 500, default 100) and the opaque cursor of the previous " +
				"page's next_cursor.",
			"license": obj{"name": "Apache-2.0", "identifier": "Apache-2.0"},
		},
		"servers":    []any{obj{"url": "/", "description": "The server itself (default listen address 127.0.0.1:8080)."}},
		"tags":       tags,
		"paths":      paths,
		"components": components,
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

var tags = []any{
	obj{"name": "service", "description": "Health, metrics and this document."},
	obj{"name": "kernel", "description": "The Kernel over HTTP: authorize a capability call; the server's identity."},
	obj{"name": "audit", "description": "The tamper-evident audit log: checkpoints, proofs, events, entries, bundles and C2SP tlog-tiles."},
	obj{"name": "admin", "description": "Admin identities, sessions and bootstrap."},
	obj{"name": "capabilities", "description": "Issue, check, list and revoke capability tokens (admin)."},
	obj{"name": "rbac", "description": "Roles and bindings (admin)."},
	obj{"name": "principals", "description": "Agent principal registrations (admin)."},
	obj{"name": "budgets", "description": "Key and team budgets with live usage (admin)."},
	obj{"name": "config", "description": "Versioned configuration documents (admin)."},
	obj{"name": "upstreams", "description": "MCP upstream servers, LLM upstreams and model groups changed at run time, and the approval queue of governed writes (admin)."},
	obj{"name": "a2a", "description": "The A2A relay: Double Ratchet sessions, frames and groups."},
	obj{"name": "a2a-v1", "description": "A2A v1 JSON-RPC (methods in gateway/a2a/openrpc.json), the compat dispatcher and the signed agent card."},
	obj{"name": "mcp", "description": "The MCP tool gateway (streamable HTTP, JSON-RPC)."},
	obj{"name": "llm", "description": "The OpenAI-compatible LLM proxy."},
}

func (rt route) operation() (obj, error) {
	if rt.ID == "" || rt.Summary == "" || rt.Tag == "" {
		return nil, fmt.Errorf("openapi: %s %s needs an id, a summary and a tag", rt.Method, rt.Path)
	}
	pattern := rt.Pattern
	if pattern == "" {
		pattern = rt.Method + " " + rt.Path
	}
	op := obj{
		"operationId":   rt.ID,
		"summary":       rt.Summary,
		"tags":          []any{rt.Tag},
		"x-talos-route": pattern,
	}
	if rt.Mount != "" {
		op["x-talos-mount"] = rt.Mount
	}
	if rt.Desc != "" {
		op["description"] = rt.Desc
	}
	var params []any
	given := map[string]bool{}
	for _, p := range rt.Params {
		if n, ok := p["name"].(string); ok && p["in"] == "path" {
			given[n] = true
		}
		params = append(params, p)
	}
	for _, m := range pathParam.FindAllStringSubmatch(rt.Path, -1) {
		if given[m[1]] {
			continue
		}
		p, ok := pathParams[m[1]]
		if !ok {
			return nil, fmt.Errorf("openapi: %s %s: no path parameter %q", rt.Method, rt.Path, m[1])
		}
		q := obj{"name": m[1], "in": "path", "required": true}
		for k, v := range p {
			q[k] = v
		}
		params = append(params, q)
	}
	switch rt.Auth {
	case authPublic, authReaders:
		op["security"] = []any{}
	case authAttested, authCapability:
		if rt.Opcode == "" {
			return nil, fmt.Errorf("openapi: %s %s: attested without an opcode", rt.Method, rt.Path)
		}
		op["x-talos-opcode"] = rt.Opcode
		req := obj{"talosAttestation": []any{}}
		if rt.Auth == authCapability {
			req["talosCapability"] = []any{}
		}
		op["security"] = []any{req}
		if rt.OAuth {
			op["security"] = []any{req, obj{"oauthBearer": []any{}}}
		}
		params = append(params, attestParams()...)
	case authAdmin, authAdminSelf:
		op["x-talos-opcode"] = "admin"
		op["security"] = []any{obj{"talosAttestation": []any{}}, obj{"adminSession": []any{}}}
		if rt.Auth == authAdmin {
			if rt.Tool == "" {
				return nil, fmt.Errorf("openapi: %s %s: admin route without a tool", rt.Method, rt.Path)
			}
			action := "write"
			if rt.Method == "GET" {
				action = "read"
			}
			op["x-talos-grant"] = obj{"tool": rt.Tool, "action": action}
		}
	case authAdminSigned:
		op["x-talos-opcode"] = "admin"
		op["security"] = []any{obj{"talosAttestation": []any{}}}
		params = append(params, attestParams()...)
	case authBootstrap:
		op["security"] = []any{obj{"bootstrapCredential": []any{}}}
	default:
		return nil, fmt.Errorf("openapi: %s %s: unknown auth %q", rt.Method, rt.Path, rt.Auth)
	}
	if len(params) > 0 {
		op["parameters"] = params
	}
	if rt.Req != nil {
		op["requestBody"] = obj{"required": true, "content": rt.Req.content()}
	}
	responses := obj{}
	for _, r := range rt.Resp {
		o := obj{"description": r.Desc}
		if r.Body != nil {
			o["content"] = r.Body.content()
		}
		if len(r.Headers) > 0 {
			h := obj{}
			for _, name := range r.Headers {
				h[name] = obj{"$ref": "#/components/headers/" + strings.ReplaceAll(name, "-", "")}
			}
			o["headers"] = h
		}
		responses[fmt.Sprint(r.Status)] = o
	}
	errs := append([]int{}, rt.Errs...)
	switch rt.Auth {
	case authAttested, authCapability, authAdmin, authAdminSelf, authAdminSigned, authBootstrap:
		errs = append(errs, 401)
	}
	if rt.Auth == authAdmin || rt.Auth == authCapability {
		errs = append(errs, 403)
	}
	errs = append(errs, 500)
	sort.Ints(errs)
	for _, st := range errs {
		name, ok := errResponse[st]
		if !ok {
			return nil, fmt.Errorf("openapi: %s %s: no error response %d", rt.Method, rt.Path, st)
		}
		if _, dup := responses[fmt.Sprint(st)]; !dup {
			responses[fmt.Sprint(st)] = obj{"$ref": "#/components/responses/" + name}
		}
	}
	op["responses"] = responses
	return op, nil
}

func attestParams() []any {
	var out []any
	for _, n := range []string{"AttestKeyID", "AttestTimestamp", "AttestNonce", "AttestSigAlg", "AttestSigVersion"} {
		out = append(out, obj{"$ref": "#/components/parameters/" + n})
	}
	return out
}

func (b *body) content() obj {
	t := b.Type
	if t == "" {
		t = "application/json"
	}
	mt := obj{}
	switch {
	case b.Inline != nil:
		mt["schema"] = b.Inline
	case b.Schema != "":
		mt["schema"] = ref(b.Schema)
	}
	if len(b.Examples) > 0 {
		ex := obj{}
		for _, name := range b.Examples {
			ex[name] = obj{"$ref": "#/components/examples/" + name}
		}
		mt["examples"] = ex
	}
	return obj{t: mt}
}

// query returns a query parameter.
func query(name, desc string, schema obj, example any) obj {
	p := obj{"name": name, "in": "query", "description": desc, "schema": schema}
	if example != nil {
		p["example"] = example
	}
	return p
}

func str() obj { return obj{"type": "string"} }

var (
	limitParam  = obj{"$ref": "#/components/parameters/Limit"}
	cursorParam = obj{"$ref": "#/components/parameters/Cursor"}
)

func jsonBody(schema string, examples ...string) *body {
	return &body{Schema: schema, Examples: examples}
}

func ok(status int, desc, schema string, examples ...string) resp {
	return resp{Status: status, Desc: desc, Body: jsonBody(schema, examples...)}
}
