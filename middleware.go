package talos

import (
	"net/http"

	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
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

// MiddlewareConfig configures a Middleware. Attester and Authorizer are
// required.
type MiddlewareConfig struct {
	// Attester matches routes and verifies the HTTP attestation; its
	// verified key is the principal. Required.
	Attester *Attester
	// Authorizer decides. Normally a *capability.Verifier. Required.
	Authorizer capability.Authorizer
	// OnDecision, if set, is called with every decision, allowed or denied
	// (for example to audit it). It must not write to w.
	OnDecision func(r *http.Request, d capability.Decision, err error)
}

// A Middleware authorizes HTTP requests: its [Attester] resolves the
// route (see there for how, and for the Unmatched policy) and verifies
// the attestation headers; the Middleware then reads the capability from
// [HeaderCapability] (or a session from [HeaderSession]) and asks the
// Authorizer whether the attested principal may perform the route's tool
// action. Allowed requests reach the next handler with the principal
// ([PrincipalFrom]) and the Decision ([DecisionFrom]) in their context;
// denied ones get the contract error object ({code, message, retryable},
// written by [WriteError]) with the status contracts.HTTPStatus(code),
// and learn nothing but the code. AttestOnly routes are attested but not
// authorized: their handlers decide.
//
// To also rate-limit, budget and audit every request, use
// [Kernel.Middleware] instead.
//
// # Holder binding
//
// The principal is the did:key of the public key that verified the
// request's attestation signature, which covers the method, the exact
// path and query, the canonical body, a fresh nonce, the timestamp and
// the route's opcode. The Authorizer requires it to be the subject of the
// capability's leaf, so a stolen capability is useless without the
// subject's private key. The capability header itself is not signed:
// swapping it can only substitute another capability of the same subject.
//
// A Middleware is safe for concurrent use.
type Middleware struct {
	att        *Attester
	authz      capability.Authorizer
	onDecision func(*http.Request, capability.Decision, error)
	kernel     *kernelRoutes // set by Kernel.Middleware
}

// NewMiddleware checks cfg. A missing required field is an error with code
// TALOS_INVALID_INPUT.
func NewMiddleware(cfg MiddlewareConfig) (*Middleware, error) {
	if cfg.Attester == nil || cfg.Authorizer == nil {
		return nil, contracts.New(contracts.CodeInvalidInput, "talos: MiddlewareConfig.Attester and .Authorizer are required")
	}
	return &Middleware{att: cfg.Attester, authz: cfg.Authorizer, onDecision: cfg.OnDecision}, nil
}

// Wrap returns a handler that authorizes every request before next. next
// may be a whole *http.ServeMux (its patterns decide the route), a
// handler registered for one ServeMux pattern, or a third-party router's
// route (with AttesterConfig.RoutePattern).
func (m *Middleware) Wrap(next http.Handler) http.Handler {
	if m.kernel != nil {
		return m.kernel.wrap(next)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, st, ok := m.att.attest(w, r, next)
		if !ok {
			return
		}
		if st.route.AttestOnly {
			next.ServeHTTP(w, r)
			return
		}
		d, err := m.authz.Authorize(r.Context(), capability.Request{
			Capability: r.Header.Get(HeaderCapability),
			SessionID:  r.Header.Get(HeaderSession),
			Principal:  st.att.DID,
			Tool:       st.route.Tool,
			Action:     st.route.Action,
		})
		if err != nil {
			d.Allowed = false // an error always denies, whatever the Authorizer said
		}
		if m.onDecision != nil {
			m.onDecision(r, d, err)
		}
		if st.obs != nil {
			st.obs.Decided, st.obs.Allowed, st.obs.Reason = true, d.Allowed, d.Reason
		}
		if !d.Allowed {
			code := d.ErrorCode()
			if err != nil && code == "" {
				code = contracts.CodeInternal
			}
			WriteError(w, r, denial(code, d.Reason == capability.ReasonStoreUnavailable))
			return
		}
		st.decision, st.decided = d, true
		next.ServeHTTP(w, r)
	})
}
