package llm

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"

	"github.com/talosgo/talos/gateway/internal/httpx"
)

// SurfaceID is the audit surface and attestation opcode of proxied chat
// completions, RateSurface the Kernel's rate-limit surface for them, and
// Tool the capability tool they are authorized as (action = the model).
const (
	SurfaceID   = "llm.chat.completions"
	RateSurface = "llm"
	Tool        = "llm"
)

// Pattern is the route the proxy is served at ([Proxy.Handler]), and
// TemplatePath the route template recorded in audit events.
const (
	Pattern      = "POST /v1/chat/completions"
	TemplatePath = "/v1/chat/completions"
)

// Audit meta keys the proxy adds to a call's event (allow them for
// SurfaceID in the audit.EventBuilder's MetaAllowlist to record them):
// the upstream that answered, and how a stream ended (StreamDone,
// StreamBudgetCut, …).
const (
	MetaUpstream  = "upstream"
	MetaStreamEnd = "stream_end"
)

// HeaderBudgetWarning is set (to "exceeded") on answers whose call
// exceeded a warn-mode budget: the call went through; hard budgets refuse
// instead.
const HeaderBudgetWarning = "X-Talos-Budget-Warning"

// Limits of the proxy.
const (
	// MaxBody bounds a chat completion request body.
	MaxBody = 1 << 20
	// MaxResponse bounds the upstream's answer.
	MaxResponse = 4 << 20
	// DefaultMaxTokens is reserved per choice when a request gives no
	// max_tokens (refused under a hard budget).
	DefaultMaxTokens = 1024
	// MaxMaxTokens caps max_tokens.
	MaxMaxTokens = 128_000
	// MaxChoices caps n.
	MaxChoices = 16
	// DefaultTimeout bounds one upstream call when Config.Timeout is zero.
	DefaultTimeout = 120 * time.Second
)

// Route is the attested route of the proxy, for the [talos.RouteTable] of
// the [talos.Attester] it is mounted behind. It is AttestOnly: the model
// comes from the body, and the proxy asks the Kernel itself.
func Route() talos.Route {
	return talos.Route{Pattern: Pattern, Opcode: SurfaceID, AttestOnly: true}
}

// Config configures a [Proxy]. Kernel is required, and Upstream or
// Routes.
type Config struct {
	// Kernel decides, rate-limits (surface RateSurface), charges and
	// audits every call.
	Kernel *talos.Kernel
	// Upstream is the OpenAI-compatible base URL, e.g.
	// http://127.0.0.1:9000/v1; requests go to Upstream + "/chat/completions".
	// Without Routes it serves every model at PricePer1K; with Routes it is
	// the upstream named "default" they may name.
	Upstream string
	// Upstreams and Routes route models to several upstreams (OpenAI
	// compatible or Anthropic), with per-model prompt and completion
	// prices and fallback: with Routes, only routed models are served
	// (others are refused, MODEL_NOT_ALLOWED).
	Upstreams []Upstream
	Routes    []ModelRoute
	// Breaker configures each upstream's circuit breaker.
	Breaker BreakerConfig
	// NoStreamUsage is [Upstream.NoStreamUsage] for Upstream.
	NoStreamUsage bool
	// APIKey, if set, is sent to the upstream as a bearer token. It never
	// appears in errors, logs or audit events.
	APIKey string
	// Client sends upstream requests. If nil, a new http.Client.
	Client *http.Client
	// PricePer1K is the price of 1000 tokens (prompt or completion) in
	// micro-USD on Upstream without Routes.
	PricePer1K int64
	// Timeout bounds one upstream call (default DefaultTimeout); for a
	// streamed completion, the wait for each chunk.
	Timeout time.Duration
	// StreamTimeout bounds a whole streamed completion (default
	// DefaultStreamTimeout).
	StreamTimeout time.Duration
	// WriteTimeout is the server's write deadline per response
	// (http.Server.WriteTimeout): the handler extends a request's deadline
	// to Timeout+WriteTimeout from when it starts. Zero (a server without
	// a write deadline) leaves the deadline alone.
	WriteTimeout time.Duration
	// Team, if set, returns the team of a call's principal, recorded in
	// its audit event and passed to Budget. ok false refuses the call
	// (AUTH_INVALID).
	Team func(ctx context.Context, principal identity.DID) (team string, ok bool)
	// Models, if set, are the models served: GET /v1/models lists those
	// the caller's grants allow, and a chat completion for another model
	// is refused (MODEL_NOT_ALLOWED) before anything else. Empty: every
	// model the grants allow is forwarded, and the listing asks the
	// upstream (GET Upstream + "/models").
	Models []string
	// Authorizer answers the model listing's per-model questions; it must
	// be the Kernel's authorizer (the same verifier and policy). Without
	// it GET /v1/models is refused.
	Authorizer capability.Authorizer
	// Budget, if set, returns what a call reserves: amount micro-USD (the
	// worst case) for principal of team, or nil for no budget.
	Budget func(ctx context.Context, principal identity.DID, team string, amount int64) *budget.ReserveRequest
	// Dynamic lets New start with neither Upstream nor Routes: routes are
	// then set at run time ([Proxy.SetRouting]); until then every model is
	// refused (MODEL_NOT_ALLOWED).
	Dynamic bool
}

// A Proxy forwards OpenAI-compatible chat completions to the upstreams
// of each model. Each call is authorized with capability tool "llm" and
// action = the model (so grants are model allowlists), reserves budget for
// the worst case (one token per request byte plus max_tokens per choice,
// at the model's prices) and settles with the usage the upstream reports.
type Proxy struct {
	cfg    Config
	rt     atomic.Pointer[routing]                   // replaced by SetRouting
	pol    atomic.Pointer[map[string]*RoutingPolicy] // replaced by SetPolicies; never nil
	served map[string]bool
	now    func() time.Time
}

// routing is what SetRouting replaces at once.
type routing struct {
	routes  map[string]*route
	def     *route   // serves every model without Routes
	models0 []string // the models listed: Config.Models, or the routed ones; sorted
}

// New checks cfg and returns the proxy.
func New(cfg Config) (*Proxy, error) {
	if cfg.Kernel == nil {
		return nil, contracts.New(contracts.CodeInvalidInput, "llm: Config.Kernel is required")
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{}
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.StreamTimeout <= 0 {
		cfg.StreamTimeout = DefaultStreamTimeout
	}
	if len(cfg.Models) > MaxModels {
		return nil, contracts.New(contracts.CodeInvalidInput, "llm: too many Config.Models")
	}
	if cfg.Breaker.Failures <= 0 {
		cfg.Breaker.Failures = DefaultBreakerFailures
	}
	if cfg.Breaker.Cooldown <= 0 {
		cfg.Breaker.Cooldown = DefaultBreakerCooldown
	}
	routes, def, err := buildRoutes(&cfg)
	if err != nil {
		return nil, err
	}
	p := &Proxy{cfg: cfg, served: map[string]bool{}, now: time.Now}
	for _, m := range cfg.Models {
		if err := checkModelName(m); err != nil {
			return nil, contracts.New(contracts.CodeInvalidInput, "llm: bad model name in Config.Models")
		}
		p.served[m] = true
	}
	p.rt.Store(p.newRouting(routes, def))
	p.pol.Store(&map[string]*RoutingPolicy{})
	return p, nil
}

func (l *Proxy) newRouting(routes map[string]*route, def *route) *routing {
	r := &routing{routes: routes, def: def, models0: slices.Sorted(maps.Keys(l.served))}
	if len(r.models0) == 0 {
		r.models0 = slices.Sorted(maps.Keys(routes))
	}
	return r
}

// SetRouting replaces, at run time, the upstreams and routes added to the
// configured ones (Config.Upstreams, Config.Routes, Config.Upstream):
// calls that start afterwards are routed by the new table, calls in flight
// finish on the old one. It checks them as New does (names distinct from
// the configured ones) and changes nothing on error. Circuit breakers of
// the replaced upstreams start closed.
func (l *Proxy) SetRouting(upstreams []Upstream, routes []ModelRoute) error {
	c := l.cfg
	c.Upstreams = append(slices.Clone(l.cfg.Upstreams), upstreams...)
	c.Routes = append(slices.Clone(l.cfg.Routes), routes...)
	rs, def, err := buildRoutes(&c)
	if err != nil {
		return err
	}
	l.rt.Store(l.newRouting(rs, def))
	return nil
}

// Routed returns the models routed now, sorted.
func (l *Proxy) Routed() []string { return slices.Sorted(maps.Keys(l.rt.Load().routes)) }

// Cost is the price of tokens in micro-USD at Config.PricePer1K, rounded
// up.
func (l *Proxy) Cost(tokens int64) int64 {
	return (tokens*l.cfg.PricePer1K + 999) / 1000
}

// ChatRequest holds the fields of a chat completion the proxy decides on.
// They are decoded with contracts.UnmarshalFields (field names
// case-sensitive, bodies with two keys equal under case folding refused at
// any depth), so they are exactly what a case-sensitive upstream reads in
// the forwarded bytes.
type ChatRequest struct {
	Model     string `json:"model"`
	MaxTokens *int64 `json:"max_tokens"`
	Stream    bool   `json:"stream"`
	// StreamOptions is OpenAI's stream_options object; the proxy sets its
	// include_usage member on streamed requests.
	StreamOptions json.RawMessage `json:"stream_options"`
	// N is the number of choices: each may generate max_tokens.
	N *int64 `json:"n"`
	// MaxCompletionTokens is OpenAI's newer spelling of the completion
	// bound; refused, so that one field bounds what is budgeted.
	MaxCompletionTokens json.RawMessage `json:"max_completion_tokens"`
}

type chatUsage struct {
	Usage *struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
		TotalTokens      int64 `json:"total_tokens"`
	} `json:"usage"`
}

// Handler returns the proxy's HTTP handler, to be served at [Pattern]
// behind a [talos.Attester] whose route table has [Route]. Requests
// without a verified principal are refused (AUTH_INVALID); every refusal
// is the contract error body.
func (l *Proxy) Handler() http.Handler { return http.HandlerFunc(l.serve) }

func (l *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	did, ok := talos.PrincipalFrom(r.Context())
	if !ok {
		talos.WriteError(w, r, contracts.New(contracts.CodeAuthInvalid, "request is not attested"))
		return
	}
	var team string
	if l.cfg.Team != nil {
		if team, ok = l.cfg.Team(r.Context(), did); !ok {
			talos.WriteError(w, r, contracts.New(contracts.CodeAuthInvalid, "unknown principal"))
			return
		}
	}
	if l.cfg.WriteTimeout > 0 {
		httpx.ExtendWriteDeadline(w, l.cfg.Timeout+l.cfg.WriteTimeout)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "request body too large or unreadable"))
		return
	}
	req, maxTokens, choices, err := ParseChatRequest(body)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	rt := l.routeFor(req.Model)
	if rt == nil || (len(l.served) > 0 && !l.served[req.Model]) {
		talos.WriteError(w, r, contracts.New(contracts.CodeModelNotAllowed, "model is not served"))
		return
	}
	pl := l.planFor(rt, did.String())
	if l.cfg.WriteTimeout > 0 && pl.total > l.cfg.Timeout {
		// Retries and their backoff may take longer than one attempt.
		httpx.ExtendWriteDeadline(w, pl.total+l.cfg.WriteTimeout)
	}
	// The bytes each kind of upstream is sent, checked before anything is
	// reserved: the client's document (for a stream, encoded again with
	// include_usage and checked again) or its Anthropic translation.
	bodies := map[string][]byte{}
	var clientUsage bool
	openaiBody := body
	if req.Stream {
		if openaiBody, clientUsage, err = withUsage(body); err != nil {
			talos.WriteError(w, r, err)
			return
		}
		req2, mt2, ch2, err := ParseChatRequest(openaiBody)
		if err != nil || req2.Model != req.Model || mt2 != maxTokens || ch2 != choices || !req2.Stream {
			talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "request body cannot be forwarded as checked"))
			return
		}
	}
	if rt.sends(bodyWithUsage) {
		bodies[bodyWithUsage] = openaiBody
	}
	if rt.sends(bodyClient) {
		bodies[bodyClient] = body
	}
	if rt.sends(bodyAnthropic) {
		b, err := ToAnthropic(body, maxTokens, choices)
		if err != nil {
			talos.WriteError(w, r, err)
			return
		}
		bodies[bodyAnthropic] = b
	}
	// Worst case, conservatively: every byte of the request is a prompt
	// token (tokenizers emit at least one byte per token; len/4 let a dense
	// prompt overspend a hard cap), plus max_tokens per choice.
	var worstPrompt int64
	for _, b := range bodies {
		worstPrompt = max(worstPrompt, int64(len(b)))
	}
	worstCompletion := choices * maxTokens
	worstCost := rt.cost(worstPrompt, worstCompletion)
	var budgetReq *budget.ReserveRequest
	if l.cfg.Budget != nil {
		budgetReq = l.cfg.Budget(r.Context(), did, team, worstCost)
	}
	hard := HardBudget(budgetReq)
	// Under a hard budget the settle is bounded by the reservation: an
	// upstream reporting more than the request could generate is not
	// allowed to push the spend past it.
	charge := func(prompt, completion int64) int64 {
		c := rt.cost(prompt, completion)
		if hard && c > worstCost {
			c = worstCost
		}
		return c
	}
	var status int
	var respBody []byte
	var started bool
	// The Kernel settles and audits even when the client has gone (a
	// canceled request context would fail the budget commit and leave
	// streamed spend uncounted); the upstream call still stops with the
	// client.
	client := r.Context()
	// Filled by the handler; the Kernel reads it when it audits, after.
	meta := map[string]any{}
	out, err := l.cfg.Kernel.Do(context.WithoutCancel(client), talos.Call{
		Meta: meta,
		Request: capability.Request{
			Capability: r.Header.Get(talos.HeaderCapability), Principal: did, Tool: Tool, Action: req.Model,
		},
		HTTP: r, SurfaceID: SurfaceID, TemplatePath: TemplatePath, Team: team,
		RateSurface: RateSurface,
		Budget:      budgetReq,
	}, func(ctx context.Context, d capability.Decision) (int64, int, error) {
		if req.MaxTokens == nil && hard {
			// The upstream would not be bound by the default reserved.
			return 0, 0, contracts.New(contracts.CodeInvalidInput, "max_tokens is required under a hard budget")
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(client, cancel)()
		if req.Stream {
			prompt, completion, st, err := l.stream(ctx, client, w, pl, streamCall{
				bodies: bodies, model: req.Model, choices: choices, maxTokens: maxTokens, hard: hard, clientUsage: clientUsage, meta: meta,
			})
			started = st
			if err != nil {
				return 0, 0, err
			}
			return charge(prompt, completion), http.StatusOK, nil
		}
		rb, prompt, completion, ok, name, err := l.forward(ctx, client, pl, bodies, req.Model)
		if err != nil {
			return 0, 0, err
		}
		meta[MetaUpstream] = name
		status, respBody = http.StatusOK, rb
		if !ok { // a success reporting no usage is charged the worst case
			prompt, completion = worstPrompt, worstCompletion
		}
		return charge(prompt, completion), status, nil
	})
	if started {
		return // the stream was answered, and ended with an error event if it failed
	}
	if err != nil || !out.Allowed {
		code := out.Code
		if code == "" {
			code = contracts.CodeOf(err)
		}
		e := contracts.New(code, "request refused")
		var ce *contracts.Error
		if errors.As(err, &ce) && ce.Code == code && handlerCode(string(code)) {
			e = contracts.New(code, ce.Message) // the proxy's own words, never the upstream's
		}
		switch code {
		case contracts.CodeRateLimited, contracts.CodeBudgetExceeded, contracts.CodeUpstream5xx, contracts.CodeUpstreamTimeout:
			e = e.WithRetryable(true)
		}
		talos.WriteError(w, r, e)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if out.Reservation.Warned {
		w.Header().Set(HeaderBudgetWarning, "exceeded")
	}
	w.WriteHeader(status)
	w.Write(respBody)
}

// ParseChatRequest decodes the fields the proxy decides on and checks
// them: the model, the completion bound per choice (max_tokens, or
// DefaultMaxTokens) and the number of choices. Errors are
// *contracts.Error.
func ParseChatRequest(body []byte) (req ChatRequest, maxTokens, choices int64, err error) {
	// OpenAI requests carry floats (temperature), so the strict rules for
	// signed objects do not apply; duplicate keys, keys equal under case
	// folding, mis-cased field names and bad UTF-8 are refused: the bytes
	// forwarded are the document authorized, budgeted and audited.
	if err := contracts.UnmarshalFields(body, &req); err != nil {
		return req, 0, 0, err
	}
	if req.Model == "" || len(req.Model) > 128 {
		return req, 0, 0, contracts.New(contracts.CodeInvalidInput, "model is required")
	}
	if req.MaxCompletionTokens != nil {
		return req, 0, 0, contracts.New(contracts.CodeInvalidInput, "max_completion_tokens is not supported: bound the completion with max_tokens")
	}
	maxTokens = int64(DefaultMaxTokens)
	if req.MaxTokens != nil {
		if *req.MaxTokens < 1 || *req.MaxTokens > MaxMaxTokens {
			return req, 0, 0, contracts.New(contracts.CodeInvalidInput, "max_tokens out of range")
		}
		maxTokens = *req.MaxTokens
	}
	choices = 1
	if req.N != nil {
		if *req.N < 1 || *req.N > MaxChoices {
			return req, 0, 0, contracts.New(contracts.CodeInvalidInput, "n out of range")
		}
		choices = *req.N
	}
	return req, maxTokens, choices, nil
}

// HardBudget reports whether some scope of req is enforced in hard mode.
func HardBudget(req *budget.ReserveRequest) bool {
	if req == nil {
		return false
	}
	for _, sc := range req.Scopes {
		if sc.Mode == budget.ModeHard {
			return true
		}
	}
	return false
}

// routeFor returns the route of model, nil when it is not served.
func (l *Proxy) routeFor(model string) *route {
	r := l.rt.Load()
	if rt := r.routes[model]; rt != nil {
		return rt
	}
	return r.def
}

// upstreamStatus maps an upstream's refusal to the contract error callers
// get instead of the upstream's body (which may echo the request, name the
// upstream or its key): a timeout is UPSTREAM_TIMEOUT, a rate limit
// RATE_LIMITED, a refusal of the proxy's own credentials (401, 403, 407)
// and every 5xx UPSTREAM_5XX, and other 4xx TALOS_INVALID_INPUT (the
// request was refused as sent). Nothing is charged for any of them.
func upstreamStatus(status int) error {
	switch {
	case status == http.StatusRequestTimeout || status == http.StatusGatewayTimeout:
		return contracts.New(contracts.CodeUpstreamTimeout, "upstream timed out")
	case status == http.StatusTooManyRequests:
		return contracts.New(contracts.CodeRateLimited, "upstream rate limit reached")
	case status == http.StatusUnauthorized || status == http.StatusForbidden || status == http.StatusProxyAuthRequired:
		return contracts.New(contracts.CodeUpstream5xx, "upstream refused the gateway's credentials")
	case status >= 400 && status < 500:
		return contracts.New(contracts.CodeInvalidInput, "upstream refused the request (status "+strconv.Itoa(status)+")")
	default:
		return contracts.New(contracts.CodeUpstream5xx, "upstream failed")
	}
}

// handlerCode reports whether code is one the proxy's handler refuses
// with, whose message it wrote itself.
func handlerCode(code string) bool {
	switch code {
	case string(contracts.CodeUpstream5xx), string(contracts.CodeUpstreamTimeout), string(contracts.CodeRateLimited), string(contracts.CodeInvalidInput):
		return true
	}
	return false
}

// forward sends a chat completion to the plan's upstreams in turn
// ([Proxy.attempt]) and returns the answer as a chat completion and the
// prompt and completion tokens it reports (ok false when it reports
// none). An upstream refusal is an error (upstreamStatus).
func (l *Proxy) forward(ctx, client context.Context, pl plan, bodies map[string][]byte, model string) (out []byte, prompt, completion int64, ok bool, name string, err error) {
	err = l.attempt(client, pl, func(u *upstream, timeout time.Duration) error {
		name = u.name
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		resp, err := l.post(ctx, u, bodies[u.body])
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return upstreamStatus(resp.StatusCode)
		}
		rb, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponse+1))
		if err != nil || len(rb) > MaxResponse {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return contracts.New(contracts.CodeUpstreamTimeout, "upstream timed out")
			}
			return contracts.New(contracts.CodeUpstream5xx, "upstream response unreadable or too large")
		}
		if u.kind == KindAnthropic {
			out, prompt, completion, ok, err = FromAnthropic(rb, model, l.now())
			return err
		}
		out, ok = rb, false
		var cu chatUsage
		if json.Unmarshal(rb, &cu) == nil && cu.Usage != nil {
			us := cu.Usage
			const lim = MaxMaxTokens * 4
			if us.TotalTokens >= 0 && us.TotalTokens <= lim && us.PromptTokens >= 0 && us.PromptTokens <= lim &&
				us.CompletionTokens >= 0 && us.CompletionTokens <= lim {
				// Tokens in the total beyond prompt + completion are
				// charged as completion tokens.
				prompt, completion, ok = us.PromptTokens, max(us.CompletionTokens, us.TotalTokens-us.PromptTokens), true
			}
		}
		return nil
	})
	return out, prompt, completion, ok, name, err
}
