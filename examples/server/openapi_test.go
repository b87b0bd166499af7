package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/pb33f/libopenapi/datamodel"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/examples/server/openapi"
	"github.com/talosgo/talos/gateway/admin"
	"github.com/talosgo/talos/gateway/oauth/oauthtest"
)

// TestOpenAPIGenerated: the embedded document is what the generator
// (examples/server/openapi, `go generate ./openapi`) writes today.
func TestOpenAPIGenerated(t *testing.T) {
	want, err := openapi.Build()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(openapiDoc, want) {
		t.Fatal("openapi/openapi.json is stale: run go generate ./openapi in examples/server")
	}
}

// muxPatterns returns every pattern registered on mux. http.ServeMux has no
// way to list them, so this walks its routing tree (net/http's unexported
// routingNode: pattern, children, multiChild, emptyChild); a layout it
// does not recognize fails the test rather than listing nothing.
func muxPatterns(t *testing.T, mux *http.ServeMux) []string {
	t.Helper()
	root := reflect.ValueOf(mux).Elem().FieldByName("tree")
	if !root.IsValid() {
		t.Fatal("http.ServeMux has no routing tree field: update muxPatterns for this Go release")
	}
	seen := map[string]bool{}
	var walk func(n reflect.Value)
	walk = func(n reflect.Value) {
		pat, children := n.FieldByName("pattern"), n.FieldByName("children")
		multi, empty := n.FieldByName("multiChild"), n.FieldByName("emptyChild")
		if !pat.IsValid() || !children.IsValid() || !multi.IsValid() || !empty.IsValid() {
			t.Fatalf("unrecognized http routingNode layout %s: update muxPatterns", n.Type())
		}
		if !pat.IsNil() {
			seen[pat.Elem().FieldByName("str").String()] = true
		}
		if s := children.FieldByName("s"); s.IsValid() {
			for i := range s.Len() {
				walk(s.Index(i).FieldByName("value").Elem())
			}
		}
		if m := children.FieldByName("m"); m.IsValid() {
			it := m.MapRange()
			for it.Next() {
				walk(it.Value().Elem())
			}
		}
		for _, c := range []reflect.Value{multi, empty} {
			if !c.IsNil() {
				walk(c.Elem())
			}
		}
	}
	walk(root)
	out := make([]string, 0, len(seen))
	for p := range seen {
		out = append(out, p)
	}
	sort.Strings(out)
	if len(out) < 5 {
		t.Fatalf("walked only %v: the routing tree walk is broken", out)
	}
	return out
}

// documentedOp is one operation of the document.
type documentedOp struct {
	method, path string
	op           map[string]any
}

func (d documentedOp) str(key string) string { s, _ := d.op[key].(string); return s }

func loadOpenAPI(t *testing.T) map[string]any {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(openapiDoc, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func documentedOps(t *testing.T, doc map[string]any) []documentedOp {
	t.Helper()
	var out []documentedOp
	for path, item := range doc["paths"].(map[string]any) {
		for method, op := range item.(map[string]any) {
			out = append(out, documentedOp{strings.ToUpper(method), path, op.(map[string]any)})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path+out[i].method < out[j].path+out[j].method })
	return out
}

// concretePath fills the path parameters of a documented operation with
// their examples.
func concretePath(t *testing.T, d documentedOp) string {
	t.Helper()
	examples := map[string]string{}
	params, _ := d.op["parameters"].([]any)
	for _, p := range params {
		pm := p.(map[string]any)
		if pm["in"] == "path" {
			examples[pm["name"].(string)] = fmt.Sprint(pm["example"])
		}
	}
	return regexp.MustCompile(`\{([a-z]+)\}`).ReplaceAllStringFunc(d.path, func(m string) string {
		v, ok := examples[m[1:len(m)-1]]
		if !ok {
			t.Errorf("%s %s: path parameter %s has no example", d.method, d.path, m)
		}
		return v
	})
}

// fullServer builds a server with every optional surface on: the MCP
// gateway (one in-memory upstream) with its OAuth resource server, the LLM
// proxy and the A2A v1 JSON-RPC handler (on by default).
func fullServer(t *testing.T) *testServer {
	t.Helper()
	llm := newFakeLLM(t)
	cfg := testConfig(t)
	cfg.OAuth.Issuer, cfg.OAuth.Resource = oauthtest.New(t).Issuer, oauthResource
	cfg.LLMUpstream = llm.srv.URL + "/v1"
	cfg.LLMAPIKey = secretBytes("sk-test-upstream")
	cfg.LLMPricePer1K = 10_000
	cfg.LLMTimeout = 5 * time.Second
	ts := newTestServer(t, cfg)
	withGateway(t, ts, nil, map[string]*mcp.Server{"files": newFileServer().server})
	if ts.core.llm == nil || ts.core.gateway == nil || ts.core.a2a.rpc == nil || ts.core.oauth == nil {
		t.Fatal("the MCP gateway, its OAuth front, the LLM proxy and A2A v1 must all be on")
	}
	return ts
}

// auditSubMux is the audit service's own mux, as mountAudit builds it
// behind the server's "/v1/audit/" and "/tlog/" patterns.
func auditSubMux(ts *testServer) *http.ServeMux {
	am := http.NewServeMux()
	ts.core.audit.Register(am)
	return am
}

// TestOpenAPICoversEveryRoute: every pattern registered on the server's
// mux (and on the audit service's sub-mux) is documented, every documented
// operation is served by the pattern it names, attested operations name
// the opcode the server's route table gives them, and admin operations the
// grant gateway/admin declares.
func TestOpenAPICoversEveryRoute(t *testing.T) {
	ts := fullServer(t)
	doc := loadOpenAPI(t)
	ops := documentedOps(t, doc)

	am := auditSubMux(ts)
	subs := map[string]*http.ServeMux{"/v1/audit/": am, "/tlog/": am}
	mounted := map[string][]string{} // pattern → the mounts of its sub-mux (none: the server's mux)
	for _, p := range muxPatterns(t, ts.mux) {
		mounted[p] = nil
	}
	for _, p := range muxPatterns(t, am) {
		if p == "/" { // the sub-mux's own 404
			continue
		}
		for mount, sub := range subs {
			if sub == am {
				mounted[p] = append(mounted[p], mount)
			}
		}
	}
	for mount := range subs {
		if _, ok := mounted[mount]; !ok {
			t.Errorf("the server no longer mounts the audit service at %q: update auditSubMux", mount)
		}
	}

	covered := map[string]bool{"/": true} // the catch-all 404 (info.description says so)
	for _, d := range ops {
		route, mount := d.str("x-talos-route"), d.str("x-talos-mount")
		if route == "" {
			t.Errorf("%s %s: no x-talos-route", d.method, d.path)
			continue
		}
		covered[route] = true
		if mount != "" {
			covered[mount] = true
		}
		where, ok := mounted[route]
		if !ok {
			t.Errorf("%s %s is documented (x-talos-route %q) but the server does not mount it", d.method, d.path, route)
			continue
		}
		if mount == "" && len(where) > 0 || mount != "" && !slices.Contains(where, mount) {
			t.Errorf("%s %s: x-talos-mount %q, but %q is under %q", d.method, d.path, mount, route, where)
		}
		// The documented request reaches that very pattern.
		r := httptest.NewRequest(d.method, "http://talos.test"+concretePath(t, d), nil)
		outer := route
		if mount != "" {
			outer = mount
		}
		if _, got := ts.mux.Handler(r); got != outer {
			t.Errorf("%s %s is served by %q on the server's mux, not %q", d.method, r.URL.Path, got, outer)
		}
		if mount != "" {
			if _, got := subs[mount].Handler(r); got != route {
				t.Errorf("%s %s is served by %q on the audit mux, not %q", d.method, r.URL.Path, got, route)
			}
		}
	}
	var missing []string
	for p := range mounted {
		if !covered[p] {
			missing = append(missing, p)
		}
	}
	sort.Strings(missing)
	for _, p := range missing {
		t.Errorf("the server mounts %q but openapi/routes.go does not document it", p)
	}

	// Opcodes: each attested route of the server's table is documented
	// with its opcode, and no documented opcode is invented.
	opcodes := ts.core.routes.Opcodes()
	for _, d := range ops {
		route, op := d.str("x-talos-route"), d.str("x-talos-opcode")
		want, attested := opcodes[route]
		switch {
		case attested && op != want:
			t.Errorf("%s %s: x-talos-opcode %q, the route table says %q", d.method, d.path, op, want)
		case !attested && op != "" && op != "admin":
			t.Errorf("%s %s: x-talos-opcode %q but the route is not in the attested route table", d.method, d.path, op)
		}
	}

	// Admin grants: gateway/admin's routes declare (tool, action).
	grants := map[string][2]string{}
	for _, rt := range ts.core.admin.Routes() {
		grants[rt.Pattern] = [2]string{rt.Tool, rt.Action}
	}
	for _, d := range ops {
		g, ok := grants[d.str("x-talos-route")]
		if !ok {
			continue
		}
		doc, _ := d.op["x-talos-grant"].(map[string]any)
		switch {
		case g[0] == "" && doc != nil:
			t.Errorf("%s %s: documented grant %v, the route needs none", d.method, d.path, doc)
		case g[0] != "" && (doc == nil || doc["tool"] != g[0] || doc["action"] != g[1]):
			t.Errorf("%s %s: documented grant %v, the route requires %v", d.method, d.path, doc, g)
		}
	}
}

// TestOpenAPIGrantsEnforced: the x-talos-grant of every admin operation is
// what the server enforces. A session of each built-in role whose grants
// lack the documented (tool, action) is refused with 403 RBAC_DENIED; for
// reads, a role that has it is not refused. (Writes are not sent with an
// allowed role: their effects would reach outside the test.)
func TestOpenAPIGrantsEnforced(t *testing.T) {
	ts := fullServer(t)
	doc := loadOpenAPI(t)
	compEx := doc["components"].(map[string]any)["examples"].(map[string]any)
	sessions := map[string]string{}
	for _, role := range admin.Roles() {
		sessions[role] = ts.owner.session(t, ts, role)
	}
	checked := 0
	for _, d := range documentedOps(t, doc) {
		g, ok := d.op["x-talos-grant"].(map[string]any)
		if !ok {
			continue
		}
		tool, action := g["tool"].(string), g["action"].(string)
		var body []byte
		if rb, ok := d.op["requestBody"].(map[string]any); ok {
			for _, mt := range rb["content"].(map[string]any) {
				for _, e := range mt.(map[string]any)["examples"].(map[string]any) {
					name := strings.TrimPrefix(e.(map[string]any)["$ref"].(string), "#/components/examples/")
					body, _ = json.Marshal(compEx[name].(map[string]any)["value"])
					break
				}
			}
		}
		path := concretePath(t, d)
		for _, role := range admin.Roles() {
			allowed := admin.RoleAllows(role, tool, action)
			if allowed && (action != admin.ActionRead || streams(d)) {
				continue
			}
			resp := ts.do(t, d.method, path, sessions[role], body)
			var e contracts.Error
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			_ = json.Unmarshal(raw, &e)
			switch {
			case !allowed && (resp.StatusCode != http.StatusForbidden || e.Code != contracts.CodeRBACDenied):
				t.Errorf("%s %s as %s (documented grant %s %s): %d %s, want 403 RBAC_DENIED", d.method, path, role, tool, action, resp.StatusCode, raw)
			case allowed && (resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized):
				t.Errorf("%s %s as %s (documented grant %s %s): refused %d %s", d.method, path, role, tool, action, resp.StatusCode, raw)
			}
			checked++
		}
	}
	t.Logf("%d role checks", checked)
	if checked < 100 {
		t.Fatalf("only %d role checks: too few admin operations documented", checked)
	}
}

// schemaCompiler compiles schemas inside the document (JSON Schema 2020-12,
// the OpenAPI 3.1 dialect's base), with formats asserted.
func schemaCompiler(t *testing.T) *jsonschema.Compiler {
	t.Helper()
	raw, err := jsonschema.UnmarshalJSON(bytes.NewReader(openapiDoc))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(openapiURL, raw); err != nil {
		t.Fatal(err)
	}
	return c
}

const openapiURL = "https://talos.local/openapi.json"

// TestOpenAPIValidatesAgainstMetaSchema: the document is an OpenAPI 3.1
// document by the specification's own schema, and every schema in it
// compiles as JSON Schema 2020-12.
func TestOpenAPIValidatesAgainstMetaSchema(t *testing.T) {
	meta, err := jsonschema.UnmarshalJSON(strings.NewReader(datamodel.OpenAPI31SchemaData))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := meta.(map[string]any)["$id"].(string)
	if !strings.HasPrefix(id, "https://spec.openapis.org/oas/3.1/schema/") {
		t.Fatalf("not the OpenAPI 3.1 meta-schema: $id %q", id)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(id, meta); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(id)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(openapiDoc))
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.Validate(doc); err != nil {
		t.Fatalf("the document is not valid OpenAPI 3.1: %v", err)
	}
	// A broken document is refused (the validator is not vacuous).
	bad := loadOpenAPI(t)
	bad["openapi"] = "3.0.3"
	delete(bad, "info")
	b, _ := json.Marshal(bad)
	badDoc, _ := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if sch.Validate(badDoc) == nil {
		t.Fatal("the meta-schema accepted a document without info")
	}

	sc := schemaCompiler(t)
	schemas := loadOpenAPI(t)["components"].(map[string]any)["schemas"].(map[string]any)
	for name := range schemas {
		if _, err := sc.Compile(openapiURL + "#/components/schemas/" + name); err != nil {
			t.Errorf("schema %s: %v", name, err)
		}
	}
}

// example is one example body and where it is.
type example struct {
	where   string
	pointer string // JSON pointer of its schema in the document
	name    string // component example name
	value   any
}

// collectExamples returns every example of a media type object or a
// parameter in the document, with the pointer of its schema.
func collectExamples(t *testing.T, doc map[string]any) []example {
	t.Helper()
	comps := doc["components"].(map[string]any)
	compEx := comps["examples"].(map[string]any)
	resolve := func(where string, e any) (string, any) {
		m := e.(map[string]any)
		if r, ok := m["$ref"].(string); ok {
			name := strings.TrimPrefix(r, "#/components/examples/")
			ce, ok := compEx[name].(map[string]any)
			if !ok {
				t.Errorf("%s: dangling example %s", where, r)
				return name, nil
			}
			return name, ce["value"]
		}
		return "", m["value"]
	}
	esc := func(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1") }
	var out []example
	media := func(where, ptr string, content map[string]any) {
		for mt, v := range content {
			mo := v.(map[string]any)
			exs, _ := mo["examples"].(map[string]any)
			for key, e := range exs {
				name, val := resolve(where, e)
				out = append(out, example{where + " " + mt + " example " + key, ptr + "/content/" + esc(mt) + "/schema", name, val})
			}
		}
	}
	for path, item := range doc["paths"].(map[string]any) {
		for method, o := range item.(map[string]any) {
			op := o.(map[string]any)
			base := "#/paths/" + esc(path) + "/" + method
			where := strings.ToUpper(method) + " " + path
			if rb, ok := op["requestBody"].(map[string]any); ok {
				media(where+" request", base+"/requestBody", rb["content"].(map[string]any))
			}
			for st, r := range op["responses"].(map[string]any) {
				if c, ok := r.(map[string]any)["content"].(map[string]any); ok {
					media(where+" "+st, base+"/responses/"+st, c)
				}
			}
			params, _ := op["parameters"].([]any)
			for i, p := range params {
				pm := p.(map[string]any)
				if ex, ok := pm["example"]; ok {
					out = append(out, example{where + " parameter " + fmt.Sprint(pm["name"]), fmt.Sprintf("%s/parameters/%d/schema", base, i), "", ex})
				}
			}
		}
	}
	for name, r := range comps["responses"].(map[string]any) {
		media("response "+name, "#/components/responses/"+name, r.(map[string]any)["content"].(map[string]any))
	}
	for name, p := range comps["parameters"].(map[string]any) {
		if ex, ok := p.(map[string]any)["example"]; ok {
			out = append(out, example{"parameter " + name, "#/components/parameters/" + name + "/schema", "", ex})
		}
	}
	for name, h := range comps["headers"].(map[string]any) {
		if ex, ok := h.(map[string]any)["example"]; ok {
			out = append(out, example{"header " + name, "#/components/headers/" + name + "/schema", "", ex})
		}
	}
	return out
}

// TestOpenAPIExamplesValidate: every example in the document validates
// against its schema; examples of schemas that mirror a contract schema
// (x-talos-contract) also validate against the library's embedded copy of
// that contract; every request body and every operation's success answer
// has an example; no component example is unused.
func TestOpenAPIExamplesValidate(t *testing.T) {
	doc := loadOpenAPI(t)
	sc := schemaCompiler(t)
	compiled := map[string]*jsonschema.Schema{}
	exs := collectExamples(t, doc)
	used := map[string]bool{}
	for _, ex := range exs {
		used[ex.name] = true
		sch, ok := compiled[ex.pointer]
		if !ok {
			var err error
			if sch, err = sc.Compile(openapiURL + ex.pointer); err != nil {
				t.Errorf("%s: schema %s: %v", ex.where, ex.pointer, err)
				continue
			}
			compiled[ex.pointer] = sch
		}
		// Round-trip through JSON so numbers are what the validator expects.
		b, _ := json.Marshal(ex.value)
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		if err := sch.Validate(v); err != nil {
			t.Errorf("%s does not validate against its schema: %v", ex.where, err)
		}
		if contract := contractOf(doc, ex.pointer); contract != "" {
			if err := contracts.Validate(contract, b); err != nil {
				t.Errorf("%s does not validate against contract %s: %v", ex.where, contract, err)
			}
		}
	}
	if len(exs) < 50 {
		t.Fatalf("only %d examples found: the collector is broken", len(exs))
	}
	for name := range doc["components"].(map[string]any)["examples"].(map[string]any) {
		if !used[name] {
			t.Errorf("component example %s is not used by any operation", name)
		}
	}
	for _, d := range documentedOps(t, doc) {
		if rb, ok := d.op["requestBody"].(map[string]any); ok && !hasExample(rb) {
			t.Errorf("%s %s: the request body has no example", d.method, d.path)
		}
		exampled, jsonSuccess := false, false
		for st, r := range d.op["responses"].(map[string]any) {
			rm := r.(map[string]any)
			if !strings.HasPrefix(st, "2") || rm["content"] == nil {
				continue
			}
			if _, ok := rm["content"].(map[string]any)["application/json"]; ok {
				jsonSuccess = true
			}
			exampled = exampled || hasExample(rm)
		}
		if jsonSuccess && !exampled {
			t.Errorf("%s %s: no success answer has an example", d.method, d.path)
		}
	}

	// The validator is not vacuous: a wrong example is refused.
	sch, err := sc.Compile(openapiURL + "#/components/schemas/Error")
	if err != nil {
		t.Fatal(err)
	}
	if sch.Validate(map[string]any{"code": "lower", "message": "x"}) == nil {
		t.Fatal("the Error schema accepted a lower-case code")
	}
}

func hasExample(withContent map[string]any) bool {
	c, _ := withContent["content"].(map[string]any)
	for _, mt := range c {
		if exs, _ := mt.(map[string]any)["examples"].(map[string]any); len(exs) > 0 {
			return true
		}
	}
	return false
}

// contractOf returns the x-talos-contract of the component schema the
// schema at pointer refers to, if any.
func contractOf(doc map[string]any, pointer string) string {
	var cur any = doc
	for _, part := range strings.Split(strings.TrimPrefix(pointer, "#/"), "/") {
		part = strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = m[part]
	}
	m, _ := cur.(map[string]any)
	r, _ := m["$ref"].(string)
	name, ok := strings.CutPrefix(r, "#/components/schemas/")
	if !ok {
		return ""
	}
	s, _ := doc["components"].(map[string]any)["schemas"].(map[string]any)[name].(map[string]any)
	c, _ := s["x-talos-contract"].(string)
	return c
}

// TestOpenAPIServed: GET /openapi.json needs no credential and serves the
// document with its ETag and cache headers; If-None-Match answers 304.
func TestOpenAPIServed(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	resp := ts.do(t, "GET", "/openapi.json", "", nil)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /openapi.json: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if !bytes.Equal(body, openapiDoc) {
		t.Fatal("the served document is not the embedded one")
	}
	etag := resp.Header.Get("ETag")
	if !regexp.MustCompile(`^"[0-9a-f]{64}"$`).MatchString(etag) || !strings.Contains(resp.Header.Get("Cache-Control"), "max-age=") {
		t.Fatalf("ETag %q, Cache-Control %q", etag, resp.Header.Get("Cache-Control"))
	}
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil || doc["openapi"] != "3.1.0" {
		t.Fatalf("not an OpenAPI 3.1 document: %v", err)
	}

	req := httptest.NewRequest("GET", "http://talos.test/openapi.json", nil)
	req.Header.Set("If-None-Match", `"other", `+etag)
	rec := httptest.NewRecorder()
	ts.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusNotModified || rec.Body.Len() != 0 || rec.Header().Get("ETag") != etag {
		t.Fatalf("If-None-Match: %d, %d bytes", rec.Code, rec.Body.Len())
	}
	req.Header.Set("If-None-Match", `"other"`)
	rec = httptest.NewRecorder()
	ts.Handler().ServeHTTP(rec, req)
	if rec.Code != 200 || rec.Body.Len() != len(openapiDoc) {
		t.Fatalf("a non-matching If-None-Match: %d", rec.Code)
	}
	if ps := muxPatterns(t, ts.mux); !slices.Contains(ps, "GET /openapi.json") {
		t.Fatalf("GET /openapi.json is not a pattern of the server's mux: %v", ps)
	}
}

// TestOpenAPIResponsesMatch: the server's real answers match the document.
// Every admin write of the principals, rbac, budgets, capabilities, config
// and admin tags is sent once with its example body as the owner, then
// every GET that needs no attestation; each answer's status must be
// documented for the operation and its JSON body must validate against
// that response's schema.
func TestOpenAPIResponsesMatch(t *testing.T) {
	ts := fullServer(t)
	doc := loadOpenAPI(t)
	sc := schemaCompiler(t)
	compEx := doc["components"].(map[string]any)["examples"].(map[string]any)
	writes := map[string]bool{"principals": true, "rbac": true, "budgets": true, "capabilities": true, "config": true, "admin": true}
	ops := documentedOps(t, doc)
	var order []documentedOp
	for _, d := range ops {
		tag := d.op["tags"].([]any)[0].(string)
		if d.method != "GET" && writes[tag] && d.method != "DELETE" && d.path != "/v1/admin/bootstrap" && d.path != "/v1/admin/sessions" {
			order = append(order, d)
		}
	}
	for _, d := range ops {
		if d.method != "GET" || streams(d) || d.str("x-talos-opcode") != "" && d.str("x-talos-opcode") != "admin" {
			continue
		}
		order = append(order, d)
	}
	checked := 0
	for _, d := range order {
		var body []byte
		if rb, ok := d.op["requestBody"].(map[string]any); ok {
			for _, mt := range rb["content"].(map[string]any) {
				for _, e := range mt.(map[string]any)["examples"].(map[string]any) {
					name := strings.TrimPrefix(e.(map[string]any)["$ref"].(string), "#/components/examples/")
					body, _ = json.Marshal(compEx[name].(map[string]any)["value"])
					break
				}
			}
		}
		path := concretePath(t, d)
		if checkAnswer(t, sc, d, path, ts.do(t, d.method, path, ts.cred, body)) {
			checked++
		}
	}

	// Attested agent routes, as a registered agent holding a capability
	// for them (the authorize example gets the real token).
	alice := newAgent(t, ts, "alice", "team-a")
	tok := issue(t, ts, alice.did, false, grant("files", "read_file"), grant("llm", "small-model"),
		grant("a2a", "a2a.send", "a2a.read"))
	for _, d := range ops {
		op := d.str("x-talos-opcode")
		if op == "" || op == "admin" || streams(d) {
			continue
		}
		var body []byte
		if ex := requestExample(d, compEx); ex != nil {
			if m, ok := ex.(map[string]any); ok && m["capability"] != nil {
				m["capability"], m["tool"], m["action"] = tok.Token, "files", "read_file"
			}
			body, _ = json.Marshal(ex)
		}
		path := concretePath(t, d)
		req := httptest.NewRequest(d.method, "http://talos.test"+path, bytes.NewReader(body))
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("X-Talos-Capability", tok.Token)
		resp, err := alice.client.Transport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		if checkAnswer(t, sc, d, path, resp) {
			checked++
		}
	}
	t.Logf("%d answers checked", checked)
	if checked < 60 {
		t.Fatalf("only %d answers checked", checked)
	}
}

// requestExample returns the value of an operation's first request body
// example (nil without one).
func requestExample(d documentedOp, compEx map[string]any) any {
	rb, ok := d.op["requestBody"].(map[string]any)
	if !ok {
		return nil
	}
	for _, mt := range rb["content"].(map[string]any) {
		for _, e := range mt.(map[string]any)["examples"].(map[string]any) {
			name := strings.TrimPrefix(e.(map[string]any)["$ref"].(string), "#/components/examples/")
			return compEx[name].(map[string]any)["value"]
		}
	}
	return nil
}

// checkAnswer reports a status the operation does not document, and a JSON
// answer that does not validate against the documented response's schema.
// It returns whether the answer was checked against a schema.
func checkAnswer(t *testing.T, sc *jsonschema.Compiler, d documentedOp, path string, resp *http.Response) bool {
	t.Helper()
	esc := func(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1") }
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	st := fmt.Sprint(resp.StatusCode)
	r, ok := d.op["responses"].(map[string]any)[st].(map[string]any)
	if !ok {
		t.Errorf("%s %s: status %s is not documented (body %.300s)", d.method, path, st, raw)
		return false
	}
	ptr := "#/paths/" + esc(d.path) + "/" + strings.ToLower(d.method) + "/responses/" + st
	if ref, ok := r["$ref"].(string); ok {
		ptr = ref
	}
	ct, _, _ := strings.Cut(resp.Header.Get("Content-Type"), ";")
	if ct != "application/json" {
		return false
	}
	sch, err := sc.Compile(openapiURL + ptr + "/content/application~1json/schema")
	if err != nil {
		t.Errorf("%s %s: status %s has no JSON schema: %v", d.method, path, st, err)
		return false
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Errorf("%s %s: %v", d.method, path, err)
		return false
	}
	if err := sch.Validate(v); err != nil {
		t.Errorf("%s %s: the %s answer does not match the document: %v\n%.400s", d.method, path, st, err, raw)
	}
	return true
}

// streams reports whether an operation answers with a stream that does not
// end by itself (text/event-stream), which in-process requests would wait
// for forever.
func streams(d documentedOp) bool {
	for _, r := range d.op["responses"].(map[string]any) {
		if c, ok := r.(map[string]any)["content"].(map[string]any); ok {
			if _, ok := c["text/event-stream"]; ok {
				return true
			}
		}
	}
	return false
}
