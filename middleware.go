package talos

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// Headers read by Middleware besides the six HTTP attestation v1 headers.
const (
	// HeaderCapability carries the presented capability: the base64url
	// (no padding) of a contract v1.0 token's JSON, or of a JSON array of
	// tokens (a delegation chain, root first). See capability.ParseChain.
	HeaderCapability = "X-Talos-Capability"
	// HeaderSession optionally names a session. A request carrying both a
	// capability and a session binds them after it is allowed; later
	// requests of the same principal may then send only the session.
	HeaderSession = "X-Talos-Session"
)

// A Route maps one exact method and path to a tool action.
type Route struct {
	// Method is the HTTP method, upper case ("POST").
	Method string
	// Path is the exact URL path, without query ("/v1/tools/fs/read").
	Path string
	// Tool and Action are what the route does, as checked against the
	// capability's grants.
	Tool, Action string
	// Opcode is the server-derived HTTP attestation opcode of the route. If
	// empty, Tool + "." + Action.
	Opcode string
}

// A RouteTable resolves requests to routes by exact method and path: no
// prefixes, patterns or normalization, so that the opcode a client signs
// and the tool action it is authorized for are route-exact. It is
// immutable and safe for concurrent use.
type RouteTable struct {
	routes map[string]Route // method + " " + path
}

// NewRouteTable builds a table. Duplicate or incomplete routes are errors
// with code TALOS_INVALID_INPUT.
func NewRouteTable(routes []Route) (*RouteTable, error) {
	t := &RouteTable{routes: make(map[string]Route, len(routes))}
	for i, r := range routes {
		if r.Method == "" || r.Method != strings.ToUpper(r.Method) || !strings.HasPrefix(r.Path, "/") || r.Tool == "" || r.Action == "" {
			return nil, contracts.Errorf(contracts.CodeInvalidInput, "talos: route "+strconv.Itoa(i)+" needs an upper-case method, an absolute path, a tool and an action")
		}
		if r.Opcode == "" {
			r.Opcode = r.Tool + "." + r.Action
		}
		k := r.Method + " " + r.Path
		if _, dup := t.routes[k]; dup {
			return nil, contracts.Errorf(contracts.CodeInvalidInput, "talos: route "+strconv.Quote(k)+" listed twice")
		}
		t.routes[k] = r
	}
	return t, nil
}

// Lookup returns the route of r.
func (t *RouteTable) Lookup(r *http.Request) (Route, bool) {
	rt, ok := t.routes[r.Method+" "+r.URL.Path]
	return rt, ok
}

// Opcode is an identity.AttestationVerifierConfig.Opcode function: the
// opcode of r's route, or a NOT_FOUND error for a request matching none.
func (t *RouteTable) Opcode(r *http.Request) (string, error) {
	rt, ok := t.Lookup(r)
	if !ok {
		return "", contracts.Errorf(contracts.CodeNotFound, "talos: no route")
	}
	return rt.Opcode, nil
}

// MiddlewareConfig configures a Middleware. Every field but OnDecision is
// required.
type MiddlewareConfig struct {
	// Routes maps requests to tool actions. Requests matching no route are
	// answered NOT_FOUND before anything else is done.
	Routes *RouteTable
	// Attestation verifies the HTTP attestation v1 headers. Its Opcode
	// should be Routes.Opcode. Its verified key is the principal.
	Attestation *identity.AttestationVerifier
	// Authorizer decides. Normally a *capability.Verifier.
	Authorizer capability.Authorizer
	// OnDecision, if set, is called with every decision, allowed or denied
	// (for example to audit it). It must not write to w.
	OnDecision func(r *http.Request, d capability.Decision, err error)
}

// A Middleware authorizes HTTP requests: it resolves the route, verifies
// the attestation headers, reads the capability from [HeaderCapability]
// (or a session from [HeaderSession]), and asks the Authorizer whether the
// attested principal may perform the route's tool action. Allowed
// requests reach the next handler with the Decision in their context
// ([DecisionFromContext]); denied ones get the contract error object
// {code, message, retryable} with the status contracts.HTTPStatus(code),
// and learn nothing but the code.
//
// # Holder binding
//
// The principal is the did:key of the public key that verified the
// request's attestation signature, which covers the method, the exact
// path and query, the canonical body, a fresh nonce and the timestamp.
// The Authorizer requires it to be the subject of the capability's leaf,
// so a stolen capability is useless without the subject's private key.
// The capability header itself is not signed: swapping it can only
// substitute another capability of the same subject.
//
// A Middleware is safe for concurrent use.
type Middleware struct {
	cfg MiddlewareConfig
}

// NewMiddleware checks cfg. A missing required field is an error with code
// TALOS_INVALID_INPUT.
func NewMiddleware(cfg MiddlewareConfig) (*Middleware, error) {
	if cfg.Routes == nil || cfg.Attestation == nil || cfg.Authorizer == nil {
		return nil, contracts.Errorf(contracts.CodeInvalidInput, "talos: MiddlewareConfig.Routes, .Attestation and .Authorizer are required")
	}
	return &Middleware{cfg: cfg}, nil
}

type decisionKey struct{}

// DecisionFromContext returns the Decision a Middleware stored in an
// allowed request's context.
func DecisionFromContext(ctx context.Context) (capability.Decision, bool) {
	d, ok := ctx.Value(decisionKey{}).(capability.Decision)
	return d, ok
}

// Wrap returns a handler that authorizes every request before next.
func (m *Middleware) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		route, ok := m.cfg.Routes.Lookup(r)
		if !ok {
			writeDenial(w, contracts.CodeNotFound, false)
			return
		}
		att, err := m.cfg.Attestation.Verify(r)
		if err != nil {
			var ce *contracts.Error
			writeDenial(w, contracts.CodeOf(err), errors.As(err, &ce) && ce.Retryable)
			return
		}
		d, err := m.cfg.Authorizer.Authorize(r.Context(), capability.Request{
			Capability: r.Header.Get(HeaderCapability),
			SessionID:  r.Header.Get(HeaderSession),
			Principal:  att.DID,
			Tool:       route.Tool,
			Action:     route.Action,
		})
		if err != nil {
			d.Allowed = false // an error always denies, whatever the Authorizer said
		}
		if m.cfg.OnDecision != nil {
			m.cfg.OnDecision(r, d, err)
		}
		if !d.Allowed {
			code := d.ErrorCode()
			if err != nil && code == "" {
				code = contracts.CodeInternal
			}
			writeDenial(w, code, d.Reason == capability.ReasonStoreUnavailable)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), decisionKey{}, d)))
	})
}

// writeDenial answers with the contract error object naming only the code.
func writeDenial(w http.ResponseWriter, code string, retryable bool) {
	if code == "" {
		code = contracts.CodeDenied
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(contracts.HTTPStatus(code))
	_ = json.NewEncoder(w).Encode(&contracts.Error{Code: code, Message: "request denied: " + code, Retryable: retryable})
}
