package talos

import (
	"context"
	"net/http"

	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// An Unmatched policy says what a middleware does with a request whose
// route is not in its [RouteTable].
type Unmatched int

const (
	// Deny answers unmatched requests NOT_FOUND (404) without calling the
	// next handler. It is the zero value.
	Deny Unmatched = iota
	// PassThrough hands unmatched requests to the next handler unchecked,
	// with no principal in their context: for wrapping a whole mux that
	// also serves public routes (/health). Every route that needs
	// protection must then be in the table.
	PassThrough
)

// AttesterConfig configures an [Attester].
type AttesterConfig struct {
	// Routes maps requests to routes and their opcodes. Required.
	Routes *RouteTable
	// Attestation configures the HTTP attestation v1 check: Keys and
	// Nonces are required (see identity.AttestationVerifierConfig). Opcode
	// must be nil: the opcode is always the matched route's.
	Attestation identity.AttestationVerifierConfig
	// Unmatched is the policy for requests matching no route. The zero
	// value is Deny.
	Unmatched Unmatched
	// RoutePattern, if set, returns the route template a third-party
	// router matched r to, for wrapping handlers of routers other than
	// net/http's ServeMux (which needs no adapter). It is called inside
	// the router's matched route (as chi's r.With(mw) or a gorilla/mux
	// middleware), and returns a ServeMux pattern or a router template in
	// the table's syntax: for chi,
	//
	//	func(r *http.Request) string { return chi.RouteContext(r.Context()).RoutePattern() }
	//
	// and for gorilla/mux, the path template of mux.CurrentRoute(r). An
	// empty result is unmatched. See [RouteTable.Match] for how templates
	// are compared.
	RoutePattern func(r *http.Request) string
}

// An Attester verifies the HTTP attestation of requests on attested
// routes and puts the verified principal in the request context
// ([PrincipalFrom]), for routes whose handlers authorize on their own.
// [NewMiddleware] and [Kernel.Middleware] build capability authorization,
// limits and audit on it.
//
// # Routes
//
// The route of a request is the one the ServeMux dispatches it to: when
// the wrapped handler is an *http.ServeMux, the pattern the mux will
// dispatch r to (ServeMux.Handler); when the Attester runs inside a
// ServeMux route, r.Pattern; with RoutePattern, the third-party router's
// template; otherwise the table's own ServeMux-equivalent matching. The
// route a request is attested and authorized for is therefore the route
// that serves it: "/a%2Fb" is one escaped segment, and a more specific
// pattern the table does not list is unmatched, not its neighbour's route.
//
// # Bodies
//
// HTTP attestation v1 signs the canonical JSON of the body, so attested
// bodies must be JSON or empty; anything else fails verification
// (AUTH_INVALID). identity.AttestationSigner and identity.AttestingTransport
// refuse such bodies before sending, with their own message for
// duplicate keys.
//
// # Errors
//
// A request without attestation headers gets 401 AUTH_INVALID; a
// malformed header 400 SCHEMA_VALIDATION_ERROR; a bad signature, stale
// timestamp or unknown key 401 AUTH_INVALID; a reused nonce
// REPLAY_DETECTED. The answer is the contract error object written by
// [WriteError], naming only the code.
//
// An Attester is safe for concurrent use.
type Attester struct {
	routes    *RouteTable
	v         *identity.AttestationVerifier
	unmatched Unmatched
	pattern   func(*http.Request) string
}

// NewAttester checks cfg. A missing Routes, Keys or Nonces, or a set
// Opcode, is an error with code TALOS_INVALID_INPUT.
func NewAttester(cfg AttesterConfig) (*Attester, error) {
	if cfg.Routes == nil {
		return nil, contracts.New(contracts.CodeInvalidInput, "talos: AttesterConfig.Routes is required")
	}
	if cfg.Attestation.Opcode != nil {
		return nil, contracts.New(contracts.CodeInvalidInput, "talos: AttesterConfig.Attestation.Opcode must be nil: the opcode is the matched route's")
	}
	if cfg.Unmatched != Deny && cfg.Unmatched != PassThrough {
		return nil, contracts.New(contracts.CodeInvalidInput, "talos: AttesterConfig.Unmatched must be Deny or PassThrough")
	}
	vc := cfg.Attestation
	vc.Opcode = routeOpcode
	v, err := identity.NewAttestationVerifier(vc)
	if err != nil {
		return nil, err
	}
	return &Attester{routes: cfg.Routes, v: v, unmatched: cfg.Unmatched, pattern: cfg.RoutePattern}, nil
}

// Routes returns the Attester's route table.
func (a *Attester) Routes() *RouteTable { return a.routes }

// routeOpcode is the verifier's Opcode: the route the Attester matched.
func routeOpcode(r *http.Request) (string, error) {
	st := stateFrom(r.Context())
	if st == nil {
		return "", contracts.New(contracts.CodeAuthInvalid, "talos: no route")
	}
	return st.route.Opcode, nil
}

// reqState is what a middleware learned about a request, in its context.
type reqState struct {
	table    *RouteTable
	route    Route
	att      *identity.Attestation
	decision capability.Decision
	decided  bool
	// Kernel middleware: the call being run and what the handler reported.
	call    *Call
	cost    int64
	costSet bool
	// obs is the request's Observation (Observe), or nil.
	obs *Observation
}

type stateKey struct{}

func stateFrom(ctx context.Context) *reqState {
	st, _ := ctx.Value(stateKey{}).(*reqState)
	return st
}

// PrincipalFrom returns the principal of a request an [Attester] (or a
// middleware built on one) verified: the did:key of the key that verified
// its attestation signature. It reports false outside such a request,
// including requests passed through unmatched.
func PrincipalFrom(ctx context.Context) (identity.DID, bool) {
	st := stateFrom(ctx)
	if st == nil || st.att == nil {
		return identity.DID{}, false
	}
	return st.att.DID, true
}

// AttestationFrom returns the verified attestation of a request (key id,
// key, nonce, timestamp, opcode), like [PrincipalFrom].
func AttestationFrom(ctx context.Context) (*identity.Attestation, bool) {
	st := stateFrom(ctx)
	if st == nil || st.att == nil {
		return nil, false
	}
	a := *st.att
	return &a, true
}

// RouteFrom returns the route a middleware matched a request to.
func RouteFrom(ctx context.Context) (Route, bool) {
	st := stateFrom(ctx)
	if st == nil || st.att == nil {
		return Route{}, false
	}
	return st.route, true
}

// DecisionFrom returns the Decision a [Middleware] or a Kernel middleware
// made for an allowed request.
func DecisionFrom(ctx context.Context) (capability.Decision, bool) {
	st := stateFrom(ctx)
	if st == nil || !st.decided {
		return capability.Decision{}, false
	}
	return st.decision, true
}

// route resolves r to a route of the table, as documented on Attester.
func (a *Attester) route(r *http.Request, next http.Handler) (Route, bool) {
	if a.pattern != nil {
		p := a.pattern(r)
		if p == "" {
			return Route{}, false
		}
		return a.routes.Match(r.Method, p)
	}
	if mux, ok := next.(*http.ServeMux); ok {
		_, p := mux.Handler(r)
		if p == "" {
			return Route{}, false
		}
		return a.routes.Match(r.Method, p)
	}
	if r.Pattern != "" {
		return a.routes.Match(r.Method, r.Pattern)
	}
	return a.routes.ownMatch(r)
}

// attest runs the Attester's checks. It returns the request carrying its
// state and true when the caller should go on; false when it has answered
// (or passed an unmatched request through to next).
func (a *Attester) attest(w http.ResponseWriter, r *http.Request, next http.Handler) (*http.Request, *reqState, bool) {
	rt, ok := a.route(r, next)
	if !ok {
		if a.unmatched == PassThrough {
			next.ServeHTTP(w, r)
		} else {
			WriteError(w, r, denial(contracts.CodeNotFound, false))
		}
		return nil, nil, false
	}
	st := &reqState{table: a.routes, route: rt, obs: observationFrom(r.Context())}
	if st.obs != nil {
		st.obs.Route, st.obs.Opcode = rt.Pattern, rt.Opcode
	}
	r = r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
	if r.Header.Get(identity.HeaderSignature) == "" || r.Header.Get(identity.HeaderKeyID) == "" {
		w.Header().Set("WWW-Authenticate", `Talos-Attestation version="v1"`)
		WriteError(w, r, denial(contracts.CodeAuthInvalid, false))
		return nil, nil, false
	}
	att, err := a.v.Verify(r)
	if err != nil {
		code := contracts.CodeOf(err)
		if code == contracts.CodeAuthInvalid {
			w.Header().Set("WWW-Authenticate", `Talos-Attestation version="v1"`)
		}
		WriteError(w, r, denial(code, retryable(err)))
		return nil, nil, false
	}
	st.att = att
	if st.obs != nil {
		st.obs.Principal = att.DID
	}
	return r, st, true
}

// Wrap returns a handler that verifies the attestation of every request on
// a route of the table before next, as described on [Attester].
func (a *Attester) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r, _, ok := a.attest(w, r, next); ok {
			next.ServeHTTP(w, r)
		}
	})
}

// denial is the error a middleware answers with: the code and nothing else.
func denial(code contracts.Code, retryable bool) *contracts.Error {
	if code == "" {
		code = contracts.CodeDenied
	}
	return &contracts.Error{Code: code, Message: "request denied: " + string(code), Retryable: retryable}
}
