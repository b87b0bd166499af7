package talos

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
)

// KernelConfig configures a Kernel. Authorizer, Audit and Events are
// required; Limits and Budget are optional stages.
type KernelConfig struct {
	// Authorizer decides every call. Required.
	Authorizer capability.Authorizer
	// Limits rate-limits calls per surface and key. If nil, no rate limit.
	Limits *budget.Limits
	// Budget reserves and settles spend. If nil, calls carry no budget.
	Budget budget.Budget
	// Audit records one event per call, allowed or denied. Required.
	Audit audit.AuditLog
	// Events builds the audit events. Required.
	Events *audit.EventBuilder
	// Tracer receives one span per call. If nil, a no-op tracer.
	Tracer trace.Tracer
	// Meter records the Kernel's metrics (MetricDecisions and the other
	// Metric* names), e.g. provider.Meter("github.com/talosgo/talos") of an
	// OTel SDK MeterProvider. If nil, a no-op meter, like Tracer.
	Meter metric.Meter
}

// A Kernel composes the four interfaces into one decision pipeline:
//
//	authorize → rate-limit → reserve budget → run → commit → audit
//
// One [capability.Decision] flows through every stage, into the audit event
// and the trace span. Every stage fails closed: a back-end error denies the
// call (and is audited as a failure) rather than letting it through.
//
// A Kernel is safe for concurrent use.
type Kernel struct {
	cfg KernelConfig
	m   *kernelMetrics
}

// NewKernel returns a Kernel. It fails if a required dependency is missing.
func NewKernel(cfg KernelConfig) (*Kernel, error) {
	if cfg.Authorizer == nil || cfg.Audit == nil || cfg.Events == nil {
		return nil, errors.New("talos: KernelConfig.Authorizer, Audit and Events are required")
	}
	if cfg.Tracer == nil {
		cfg.Tracer = noop.NewTracerProvider().Tracer("talos")
	}
	m, err := newKernelMetrics(cfg.Meter)
	if err != nil {
		return nil, fmt.Errorf("talos: metrics: %w", err)
	}
	return &Kernel{cfg: cfg, m: m}, nil
}

// A Call is one request to run a tool action under the Kernel.
type Call struct {
	// Request is the authorization question.
	Request capability.Request
	// HTTP is the request being served, for the audit event (method, client
	// IP hash). If nil, the event is built with audit.EventBuilder.BuildEvent
	// as a POST with no client address.
	HTTP *http.Request
	// SurfaceID is the audit surface (opcode), e.g. "mcp.tools.call". Required.
	SurfaceID string
	// TemplatePath is the route template recorded in the audit event.
	TemplatePath string
	// RequestID identifies the call in the audit log. If empty, a UUIDv7.
	RequestID string
	// Team is the principal's team, recorded in the audit event.
	Team string
	// RateSurface selects the limiter in KernelConfig.Limits; if empty,
	// SurfaceID. RateKey is the limited key; if empty, the principal's DID.
	RateSurface, RateKey string
	// Budget, when set, is reserved before the handler runs and settled
	// with the handler's actual cost (released if the handler fails).
	Budget *budget.ReserveRequest
	// Decision, when set, is a decision already made for this call (by a
	// [Middleware], or an attested-only route's [ReasonAttested]): the
	// Kernel uses it instead of asking the Authorizer again, so one request
	// is authorized once. Its Principal must equal Request.Principal when
	// both are set.
	Decision *capability.Decision
	// Meta is recorded in the audit event, filtered by the surface allowlist.
	// The Kernel adds decision_reason, capability_hash, tool, action,
	// error_code and, for budgeted calls, budget_reservation, budget_warned
	// (a warn-mode scope was exceeded) and cost_micros (the settled cost).
	Meta map[string]any
}

// A Handler does the authorized work. It returns the actual cost in
// micro-units (charged to the reservation) and the HTTP-like status of the
// outcome. A non-nil error releases the reservation.
type Handler func(ctx context.Context, d capability.Decision) (actual int64, status int, err error)

// An Outcome reports what each stage of a Call decided.
type Outcome struct {
	// Decision is the authorization decision.
	Decision capability.Decision
	// Allowed is true when every stage admitted the call and the handler ran.
	Allowed bool
	// Code is the contract error code of the first stage that denied or
	// failed ("" when allowed and the handler succeeded).
	Code contracts.Code
	// Status is the HTTP status to answer with.
	Status int
	// Rate is the rate-limit result, when Limits is configured.
	Rate budget.Result
	// Reservation and Settlement are the budget results, when Call.Budget
	// was set.
	Reservation budget.Reservation
	Settlement  budget.Settlement
	// Receipt locates the call's audit event in the log.
	Receipt audit.Receipt
}

// Do runs call through the pipeline, calling h only when every stage admits
// it. The returned error is non-nil only when a back-end failed or the audit
// event could not be recorded; the Outcome then denies (or, if h already ran,
// reports its result with Code INTERNAL).
func (k *Kernel) Do(ctx context.Context, call Call, h Handler) (Outcome, error) {
	began := k.m.now()
	ctx, span := k.cfg.Tracer.Start(ctx, "talos.kernel "+call.SurfaceID, trace.WithSpanKind(trace.SpanKindInternal))
	defer span.End()

	out, runErr := k.run(ctx, call, h)

	rec, auditErr := k.audit(ctx, call, &out)
	out.Receipt = rec
	defer func() {
		k.m.record(ctx, call.SurfaceID, &out, began, auditErr == nil)
		if o := observationFrom(ctx); o != nil {
			o.Surface, o.Decided, o.Allowed, o.Reason = call.SurfaceID, true, out.Allowed, out.Decision.Reason
			if out.Code != "" {
				o.Code = string(out.Code)
			}
		}
	}()
	d := out.Decision
	span.SetAttributes(
		attribute.Bool("talos.allowed", out.Allowed),
		attribute.String("talos.reason", string(d.Reason)),
		attribute.String("talos.code", string(out.Code)),
		attribute.String("talos.tool", d.Tool),
		attribute.String("talos.action", d.Action),
		attribute.String("talos.principal", d.Principal.String()),
		attribute.String("talos.capability_hash", d.CapabilityHash),
		attribute.Int("talos.status", out.Status),
	)
	if auditErr == nil {
		span.SetAttributes(attribute.Int64("talos.audit.index", int64(rec.Index)))
	}
	err := errors.Join(runErr, auditErr)
	if err != nil {
		span.SetStatus(codes.Error, string(contracts.CodeOf(err)))
		if out.Code == "" {
			out.Code = contracts.CodeInternal
			out.Status = http.StatusInternalServerError
		}
	}
	return out, err
}

func (k *Kernel) run(ctx context.Context, call Call, h Handler) (Outcome, error) {
	var out Outcome
	deny := func(code contracts.Code, err error) (Outcome, error) {
		out.Allowed = false
		out.Code = code
		out.Status = contracts.HTTPStatus(code)
		return out, err
	}

	var d capability.Decision
	var err error
	if call.Decision != nil {
		d = *call.Decision
		if p := call.Request.Principal; !p.IsZero() && d.Principal != p {
			out.Decision = capability.Decision{Principal: p, Tool: call.Request.Tool, Action: call.Request.Action}
			return deny(contracts.CodeInternal, contracts.New(contracts.CodeInternal, "talos: Call.Decision is for another principal"))
		}
	} else {
		t0 := k.m.now()
		d, err = k.cfg.Authorizer.Authorize(ctx, call.Request)
		k.m.authorized(ctx, call.SurfaceID, t0)
	}
	out.Decision = d
	if err != nil {
		return deny(contracts.CodeInternal, err)
	}
	if !d.Allowed {
		return deny(d.ErrorCode(), nil)
	}

	if k.cfg.Limits != nil {
		surface, key := call.RateSurface, call.RateKey
		if surface == "" {
			surface = call.SurfaceID
		}
		if key == "" {
			key = d.Principal.String()
		}
		res, err := k.cfg.Limits.Allow(ctx, surface, key, 1)
		out.Rate = res
		if err != nil {
			return deny(contracts.CodeInternal, err)
		}
		if !res.Allowed {
			k.m.rateLimited(ctx, surface)
			return deny(contracts.CodeRateLimited, nil)
		}
	}

	var reserved bool
	if call.Budget != nil {
		if k.cfg.Budget == nil {
			return deny(contracts.CodeInternal, errors.New("talos: call carries a budget but the kernel has none"))
		}
		res, err := k.cfg.Budget.Reserve(ctx, *call.Budget)
		out.Reservation = res
		k.m.reserved(ctx, call.SurfaceID, res.Allowed, err)
		if err != nil {
			return deny(contracts.CodeInternal, err)
		}
		if !res.Allowed {
			return deny(contracts.CodeBudgetExceeded, nil)
		}
		reserved = true
	}

	actual, status, herr := h(ctx, d)
	out.Allowed = true
	out.Status = status
	if out.Status == 0 {
		out.Status = http.StatusOK
	}
	if reserved {
		if herr != nil {
			// The work failed: free the hold. A failed release is reported
			// but the reservation still expires by its TTL.
			if rerr := k.cfg.Budget.Release(ctx, out.Reservation.ID); rerr != nil {
				herr = errors.Join(herr, rerr)
			}
		} else {
			st, cerr := k.cfg.Budget.Commit(ctx, out.Reservation.ID, actual)
			out.Settlement = st
			if cerr != nil {
				herr = cerr
			}
		}
	}
	if herr != nil {
		out.Code = contracts.CodeOf(herr)
		if out.Status < 400 {
			out.Status = contracts.HTTPStatus(out.Code)
		}
		return out, herr
	}
	return out, nil
}

func (k *Kernel) audit(ctx context.Context, call Call, out *Outcome) (audit.Receipt, error) {
	reqID := call.RequestID
	if reqID == "" {
		reqID = contracts.NewUUIDv7()
	}
	d := out.Decision
	principal := audit.AnonymousPrincipal()
	if !d.Principal.IsZero() {
		team := call.Team
		if team == "" {
			team = "default"
		}
		principal = audit.SignedPrincipal(d.Principal.String(), team, d.Principal.String())
	}
	meta := map[string]any{}
	if b, ok := ctx.Value(bearerKey{}).(bearerAuth); ok {
		if !d.Principal.IsZero() {
			principal = audit.BearerPrincipal(principal.PrincipalID, principal.TeamID)
		}
		for k, v := range b.meta {
			meta[k] = v
		}
	}
	for k, v := range call.Meta {
		meta[k] = v
	}
	meta["decision_reason"] = string(d.Reason)
	if d.CapabilityHash != "" {
		meta["capability_hash"] = d.CapabilityHash
	}
	if d.Tool != "" {
		meta["tool"] = d.Tool
		meta["action"] = d.Action
	}
	if out.Code != "" {
		meta["error_code"] = string(out.Code)
	}
	if out.Reservation.ID != "" {
		meta["budget_reservation"] = out.Reservation.ID
	}
	if out.Reservation.Warned {
		meta["budget_warned"] = true
	}
	if out.Settlement.ID != "" {
		meta["cost_micros"] = out.Settlement.Actual
	}
	d2 := audit.Decision{
		RequestID:    reqID,
		SurfaceID:    call.SurfaceID,
		TemplatePath: call.TemplatePath,
		Status:       out.Status,
		Principal:    principal,
		Meta:         meta,
	}
	// Drafted, not built: Append validates and seals it, once.
	var ev audit.Event
	if call.HTTP != nil {
		var err error
		if ev, err = k.cfg.Events.Draft(call.HTTP, d2); err != nil {
			return audit.Receipt{}, err
		}
	} else {
		// Not an HTTP request: recorded as a POST with no client address.
		ev = k.cfg.Events.DraftEvent(http.MethodPost, netip.Addr{}, d2)
	}
	return k.cfg.Audit.Append(ctx, ev)
}

// bearerKey is the context key of [WithBearerAuth].
type bearerKey struct{}

// bearerAuth is the value of [WithBearerAuth].
type bearerAuth struct{ meta map[string]any }

// WithBearerAuth returns a copy of ctx under which the Kernel audits every
// call as one authenticated by a bearer credential (an OAuth access token,
// a session) rather than by a request signature: the event's principal
// has auth_mode "bearer" and no signer_key_id, where it would otherwise be
// "signed" with the principal's DID as signer_key_id. meta (copied) is
// added to the event's meta, under the surface's allowlist like
// [Call.Meta], which wins over it, as the Kernel's own members do. Only
// the audit record changes: the call is authorized, limited and budgeted
// as before.
//
// Use it where the server itself verified the bearer credential and then
// serves the call as its principal; never record the credential in meta
// (a hash of its identifier at most).
func WithBearerAuth(ctx context.Context, meta map[string]any) context.Context {
	m := make(map[string]any, len(meta))
	for k, v := range meta {
		m[k] = v
	}
	return context.WithValue(ctx, bearerKey{}, bearerAuth{meta: m})
}
