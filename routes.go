package talos

import (
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/talosgo/talos/contracts"
)

// A Route maps one net/http ServeMux pattern to what it does.
type Route struct {
	// Pattern is a ServeMux pattern, "[METHOD ][HOST]/[PATH]", with the
	// ServeMux's wildcards: "POST /tools/{id}/run", "GET /files/{path...}",
	// "GET /{$}". Wildcards are wildcards, never literal path text.
	Pattern string
	// Tool and Action are what the route does, as checked against the
	// capability's grants. Both are required unless AttestOnly is set.
	Tool, Action string
	// Opcode is the server-derived HTTP attestation opcode of the route:
	// what a client signs for it. If empty, Tool + "." + Action (required
	// for AttestOnly routes).
	Opcode string
	// AttestOnly marks a route whose handler authorizes on its own (for
	// example by session membership): the middleware verifies the HTTP
	// attestation and puts the principal in the context, a Kernel
	// rate-limits and audits the request, but no capability is asked for.
	// Tool and Action must then be empty.
	AttestOnly bool
}

// path returns the path part of the pattern (no method, no host).
func (r Route) path() string {
	p := r.Pattern
	if i := strings.IndexAny(p, " \t"); i >= 0 {
		p = strings.TrimLeft(p[i+1:], " \t")
	}
	if i := strings.IndexByte(p, '/'); i > 0 {
		p = p[i:]
	}
	return p
}

// A RouteTable resolves requests to routes with the same matching as
// net/http's ServeMux (method, host, escaped path segments, wildcards,
// precedence), so that the route a request is authorized and attested for
// is the route the mux serves. It is immutable and safe for concurrent use.
type RouteTable struct {
	list   []Route
	byKey  map[string]int // normalized pattern → index in list
	mux    *http.ServeMux // the table's own patterns, for requests no mux has matched
	byName map[string]int // pattern as written → index
}

// routeHandler is what the table's own mux dispatches to: the route index.
type routeHandler int

func (routeHandler) ServeHTTP(http.ResponseWriter, *http.Request) {}

// NewRouteTable builds a table. A route with an invalid pattern (as the
// ServeMux would refuse it), two routes whose patterns conflict, and an
// incomplete route are errors with code TALOS_INVALID_INPUT.
func NewRouteTable(routes []Route) (t *RouteTable, err error) {
	if err := checkPatternMux(); err != nil {
		return nil, err
	}
	t = &RouteTable{
		list: make([]Route, 0, len(routes)), byKey: make(map[string]int, len(routes)),
		byName: make(map[string]int, len(routes)), mux: http.NewServeMux(),
	}
	for i, r := range routes {
		bad := func(msg string) error {
			return contracts.New(contracts.CodeInvalidInput, "talos: route "+strconv.Itoa(i)+" ("+strconv.Quote(r.Pattern)+"): "+msg)
		}
		switch {
		case r.AttestOnly && (r.Tool != "" || r.Action != ""):
			return nil, bad("an AttestOnly route names no tool or action")
		case r.AttestOnly && r.Opcode == "":
			return nil, bad("an AttestOnly route needs an Opcode")
		case !r.AttestOnly && (r.Tool == "" || r.Action == ""):
			return nil, bad("a tool and an action are required")
		}
		if r.Opcode == "" {
			r.Opcode = r.Tool + "." + r.Action
		}
		if strings.ContainsAny(r.Opcode, "\n") {
			return nil, bad("the opcode must not contain a newline")
		}
		if i := strings.IndexAny(r.Pattern, " \t"); i >= 0 && r.Pattern[:i] != strings.ToUpper(r.Pattern[:i]) {
			return nil, bad("the method must be upper case")
		}
		key, ok := normPattern(r.Pattern)
		if !ok {
			return nil, bad("not a ServeMux pattern")
		}
		if _, dup := t.byKey[key]; dup {
			return nil, bad("listed twice")
		}
		if err := register(t.mux, r.Pattern, routeHandler(len(t.list))); err != nil {
			return nil, bad(err.Error())
		}
		t.byKey[key] = len(t.list)
		t.byName[r.Pattern] = len(t.list)
		t.list = append(t.list, r)
	}
	return t, nil
}

// register adds pattern to mux, turning the ServeMux's panic on an invalid
// or conflicting pattern into an error.
func register(mux *http.ServeMux, pattern string, h http.Handler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			msg, _ := p.(string)
			if e, ok := p.(error); ok {
				msg = e.Error()
			}
			err = contracts.New(contracts.CodeInvalidInput, msg)
		}
	}()
	mux.Handle(pattern, h)
	return nil
}

var (
	patternMuxOnce sync.Once
	patternMuxErr  error
)

// checkPatternMux refuses to build route tables when the ServeMux runs
// with GODEBUG=httpmuxgo121=1, where "/tools/{id}" is a literal path.
func checkPatternMux() error {
	patternMuxOnce.Do(func() {
		mux := http.NewServeMux()
		mux.Handle("/p/{x}", routeHandler(0))
		if _, p := mux.Handler(&http.Request{Method: "GET", URL: &url.URL{Path: "/p/a"}}); p != "/p/{x}" {
			patternMuxErr = contracts.New(contracts.CodeInvalidInput,
				"talos: net/http ServeMux patterns are disabled (GODEBUG httpmuxgo121=1): routes with wildcards would be literal paths")
		}
	})
	return patternMuxErr
}

// normPattern returns pattern with wildcard names erased ("{id}" → "{}",
// "{rest...}" → "{...}"), method and host kept, so that two spellings of
// one route compare equal. It reports false for a pattern that is not of
// the form "[METHOD ][HOST]/[PATH]".
func normPattern(pattern string) (string, bool) {
	method, rest := "", pattern
	if i := strings.IndexAny(pattern, " \t"); i >= 0 {
		method, rest = pattern[:i], strings.TrimLeft(pattern[i+1:], " \t")
	}
	slash := strings.IndexByte(rest, '/')
	if slash < 0 || strings.ContainsAny(rest, " \t") {
		return "", false
	}
	var b strings.Builder
	b.Grow(len(pattern))
	b.WriteString(method)
	b.WriteByte(' ')
	b.WriteString(rest[:slash])
	p := rest[slash:]
	for len(p) > 0 {
		open := strings.IndexByte(p, '{')
		if open < 0 {
			b.WriteString(p)
			break
		}
		b.WriteString(p[:open+1])
		end := strings.IndexByte(p[open:], '}')
		if end < 0 {
			return "", false
		}
		name := p[open+1 : open+end]
		switch {
		case name == "$":
			b.WriteByte('$')
		case strings.HasSuffix(name, "..."):
			b.WriteString("...")
		}
		b.WriteByte('}')
		p = p[open+end+1:]
	}
	return b.String(), true
}

// Routes returns the table's routes, with opcodes filled in.
func (t *RouteTable) Routes() []Route { return append([]Route(nil), t.list...) }

// Opcodes returns each route's pattern and opcode: what a client signs
// for which route (a server publishes it, for example as the
// attested_routes of an identity document).
func (t *RouteTable) Opcodes() map[string]string {
	m := make(map[string]string, len(t.list))
	for _, r := range t.list {
		m[r.Pattern] = r.Opcode
	}
	return m
}

// Match returns the route of a pattern a router matched: a ServeMux
// pattern (r.Pattern) or a router's route template ("/tools/{id}/run").
// A pattern without a method is looked up first as method + " " +
// pattern; a pattern with a method falls back to the table's method-less
// route for its path. Wildcard names do not matter ("{id}" equals "{x}").
func (t *RouteTable) Match(method, pattern string) (Route, bool) {
	if i, ok := t.byName[pattern]; ok {
		return t.list[i], true
	}
	hasMethod := strings.ContainsAny(pattern, " \t")
	if !hasMethod && method != "" {
		if key, ok := normPattern(method + " " + pattern); ok {
			if i, ok := t.byKey[key]; ok {
				return t.list[i], true
			}
		}
	}
	key, ok := normPattern(pattern)
	if !ok {
		return Route{}, false
	}
	if i, ok := t.byKey[key]; ok {
		return t.list[i], true
	}
	if hasMethod {
		if _, path, _ := strings.Cut(key, " "); path != "" {
			if i, ok := t.byKey[" "+path]; ok {
				return t.list[i], true
			}
		}
	}
	return Route{}, false
}

// Lookup returns the route of r. Inside an [Attester] (or a [Middleware]
// built on one) it is the route the Attester matched. Otherwise, when a
// ServeMux has dispatched r (r.Pattern is set), it is the table's route
// for that pattern, and none when the pattern is not in the table; and
// for a request no mux has matched (an outgoing client request, or a
// handler wrapping a whole mux), it is the route the table's own patterns
// match, with the ServeMux's rules: the same method, host and escaped
// path segments ("/a%2Fb" is one segment, never "/a/b").
func (t *RouteTable) Lookup(r *http.Request) (Route, bool) {
	if st := stateFrom(r.Context()); st != nil && st.table == t {
		return st.route, true
	}
	if r.Pattern != "" {
		return t.Match(r.Method, r.Pattern)
	}
	return t.ownMatch(r)
}

// ownMatch matches r against the table's own patterns.
func (t *RouteTable) ownMatch(r *http.Request) (Route, bool) {
	h, _ := t.mux.Handler(r)
	if i, ok := h.(routeHandler); ok {
		return t.list[i], true
	}
	return Route{}, false
}

// Opcode returns the opcode of r's route, or a NOT_FOUND error for a
// request matching none. Its signature is that of
// identity.AttestationVerifierConfig.Opcode, and a RouteTable is an
// identity.OpcodeSource, so clients sign with the table servers verify with.
func (t *RouteTable) Opcode(r *http.Request) (string, error) {
	rt, ok := t.Lookup(r)
	if !ok {
		return "", contracts.New(contracts.CodeNotFound, "talos: no route")
	}
	return rt.Opcode, nil
}

// NewClientRouteTable builds a route table for the client side from a
// server's published opcodes (pattern → opcode, as [RouteTable.Opcodes]
// returns them and a server publishes them, for example as the
// attested_routes of its identity document), so an agent fetches them
// once instead of copying opcodes by hand. Its routes carry no tool or
// action: it is meant for identity.AttestingTransport, not for
// authorizing. Invalid or conflicting patterns are errors with code
// TALOS_INVALID_INPUT.
func NewClientRouteTable(opcodes map[string]string) (*RouteTable, error) {
	patterns := make([]string, 0, len(opcodes))
	for p := range opcodes {
		patterns = append(patterns, p)
	}
	slices.Sort(patterns)
	routes := make([]Route, 0, len(patterns))
	for _, p := range patterns {
		if opcodes[p] == "" {
			return nil, contracts.New(contracts.CodeInvalidInput, "talos: route "+strconv.Quote(p)+" has no opcode")
		}
		routes = append(routes, Route{Pattern: p, Opcode: opcodes[p], AttestOnly: true})
	}
	return NewRouteTable(routes)
}
