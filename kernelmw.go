package talos

import (
	"context"
	"net/http"
	"strconv"

	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
)

// ReasonAttested is the decision reason of a request on an AttestOnly
// route under [Kernel.Middleware]: the principal is verified, and the
// handler authorizes on its own.
const ReasonAttested capability.ReasonCode = "ATTESTED"

// KernelMiddlewareConfig configures [Kernel.Middleware].
type KernelMiddlewareConfig struct {
	// Attester matches routes and verifies the HTTP attestation. Required.
	Attester *Attester
	// Prepare, if set, completes the Call of each attested request before
	// the pipeline runs: Team, RateSurface and RateKey, Budget, RequestID,
	// Meta. It must not read the body (the handler does). The Kernel has
	// already set Request (capability and session headers, the principal,
	// the route's tool and action), HTTP, SurfaceID (the route's opcode),
	// TemplatePath (the pattern's path) and, for AttestOnly routes,
	// Decision.
	Prepare func(r *http.Request, call *Call)
	// OnError, if set, is called when the pipeline fails after the handler
	// has answered (a budget commit or the audit append failed): the
	// response is already on its way, so this is the place to log or
	// alert. Failures before the handler runs are answered with the error.
	OnError func(r *http.Request, out Outcome, err error)
}

// kernelRoutes is the Kernel mode of a Middleware.
type kernelRoutes struct {
	k       *Kernel
	att     *Attester
	prepare func(*http.Request, *Call)
	onError func(*http.Request, Outcome, error)
}

// Middleware returns a middleware that runs every attested request through
// the Kernel's whole pipeline, once:
//
//	attest → authorize → rate-limit → reserve budget → handler → commit → audit
//
// Authorization uses [HeaderCapability] and [HeaderSession] like
// [Middleware]; AttestOnly routes skip it (their decision is
// [ReasonAttested]) but are still limited and audited. The handler finds
// the principal and the decision in its context ([PrincipalFrom],
// [DecisionFrom]), may report the call's actual cost ([SetCost]; without
// it a budgeted call is charged its reserved amount) and add audit meta
// ([SetAuditMeta]). A handler answer of status 500 or more with no
// reported cost releases the reservation. Exactly one audit event is
// appended per attested request, allowed or denied, with the status the
// handler answered; requests that fail attestation or match no route are
// answered without one (so anonymous traffic cannot grow the log).
//
// Denials are answered with [WriteError] naming only the code
// (RATE_LIMITED with a Retry-After header).
func (k *Kernel) Middleware(cfg KernelMiddlewareConfig) (*Middleware, error) {
	if cfg.Attester == nil {
		return nil, contracts.New(contracts.CodeInvalidInput, "talos: KernelMiddlewareConfig.Attester is required")
	}
	kr := &kernelRoutes{k: k, att: cfg.Attester, prepare: cfg.Prepare, onError: cfg.OnError}
	return &Middleware{att: cfg.Attester, authz: k.cfg.Authorizer, kernel: kr}, nil
}

// errHandler5xx releases the reservation of a call whose handler failed.
var errHandler5xx = contracts.New(contracts.CodeInternal, "talos: handler answered 5xx")

func (kr *kernelRoutes) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r, st, ok := kr.att.attest(w, r, next)
		if !ok {
			return
		}
		rt := st.route
		call := Call{
			Request: capability.Request{
				Capability: r.Header.Get(HeaderCapability),
				SessionID:  r.Header.Get(HeaderSession),
				Principal:  st.att.DID,
				Tool:       rt.Tool,
				Action:     rt.Action,
			},
			HTTP:         r,
			SurfaceID:    rt.Opcode,
			TemplatePath: rt.path(),
		}
		if rt.AttestOnly {
			call.Decision = &capability.Decision{Allowed: true, Reason: ReasonAttested, Principal: st.att.DID}
		}
		if kr.prepare != nil {
			kr.prepare(r, &call)
		}
		if call.Meta == nil {
			call.Meta = map[string]any{}
		}
		st.call = &call
		sw := &statusWriter{ResponseWriter: w}
		ran := false
		out, err := kr.k.Do(r.Context(), call, func(ctx context.Context, d capability.Decision) (int64, int, error) {
			ran = true
			st.decision, st.decided = d, true
			next.ServeHTTP(sw, r.WithContext(ctx))
			status := sw.status
			if status == 0 {
				status = http.StatusOK
			}
			actual := st.cost
			if !st.costSet {
				if status >= 500 {
					return 0, status, errHandler5xx
				}
				if call.Budget != nil {
					actual = call.Budget.Amount
				}
			}
			return actual, status, nil
		})
		if !ran {
			if out.Code == contracts.CodeRateLimited && out.Rate.RetryAfter > 0 {
				w.Header().Set("Retry-After", strconv.FormatInt(int64((out.Rate.RetryAfter+999_999_999)/1e9), 10))
			}
			WriteError(w, r, denial(out.Code, out.Code == contracts.CodeRateLimited || retryable(err)))
			return
		}
		if err != nil && !onlyHandler5xx(err) && kr.onError != nil {
			kr.onError(r, out, err)
		}
	})
}

// onlyHandler5xx reports whether err is errHandler5xx alone, possibly
// inside errors.Join: a handler failure the response already reports.
func onlyHandler5xx(err error) bool {
	if err == errHandler5xx {
		return true
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return false
	}
	for _, e := range j.Unwrap() {
		if !onlyHandler5xx(e) {
			return false
		}
	}
	return len(j.Unwrap()) > 0
}

// SetCost reports the actual cost (micro-units) of the call a Kernel
// middleware is running for ctx's request; the reservation is settled with
// it. It reports false outside such a request.
func SetCost(ctx context.Context, micros int64) bool {
	st := stateFrom(ctx)
	if st == nil || st.call == nil {
		return false
	}
	st.cost, st.costSet = micros, true
	return true
}

// SetAuditMeta adds a member to the meta of the audit event a Kernel
// middleware records for ctx's request (filtered by the surface's
// allowlist, like Call.Meta). It reports false outside such a request.
// It is not safe for concurrent use within one request.
func SetAuditMeta(ctx context.Context, key string, value any) bool {
	st := stateFrom(ctx)
	if st == nil || st.call == nil {
		return false
	}
	st.call.Meta[key] = value
	return true
}

// statusWriter records the status a handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush implements http.Flusher when the underlying writer does.
func (w *statusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
