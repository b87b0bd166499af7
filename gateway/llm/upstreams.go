package llm

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/talosgo/talos/contracts"
)

// Upstream kinds ([Upstream.Kind]).
const (
	// KindOpenAI is an OpenAI-compatible chat completions API: requests go
	// to URL + "/chat/completions" with a bearer key, as sent by the
	// client.
	KindOpenAI = "openai"
	// KindAnthropic is Anthropic's messages API: requests go to URL +
	// "/messages" with the key in x-api-key, translated from the chat
	// completion the client sent, and answers (streamed or not) are
	// translated back.
	KindAnthropic = "anthropic"
)

// AnthropicVersion is the anthropic-version header sent to
// KindAnthropic upstreams.
const AnthropicVersion = "2023-06-01"

// MaxPricePer1K bounds a price per 1000 tokens (micro-USD: $1000).
const MaxPricePer1K = 1_000_000_000

// Circuit breaker defaults ([BreakerConfig]).
const (
	DefaultBreakerFailures = 3
	DefaultBreakerCooldown = 30 * time.Second
)

// An Upstream is one LLM API the proxy forwards to.
type Upstream struct {
	// Name identifies the upstream in [ModelRoute.Upstreams].
	Name string
	// Kind is KindOpenAI (the default when empty) or KindAnthropic.
	Kind string
	// URL is the base URL, e.g. https://api.openai.com/v1 or
	// https://api.anthropic.com/v1.
	URL string
	// APIKey, if set, authenticates the proxy to the upstream. It never
	// appears in errors, logs or audit events.
	APIKey string
	// NoStreamUsage is for OpenAI-compatible upstreams that refuse
	// stream_options: streams go to them as the client sent them, and are
	// charged by the proxy's own count (and the usage chunk, if the client
	// asked for one).
	NoStreamUsage bool
	// Client, if set, sends this upstream's requests instead of
	// Config.Client (e.g. one whose dialer refuses private addresses, for
	// upstreams an admin API added).
	Client *http.Client
}

// A ModelRoute routes one model to its upstreams, with its prices.
type ModelRoute struct {
	// Model is the model name callers send (and are granted).
	Model string
	// Upstreams names the upstreams that serve the model, tried in order:
	// the next one is tried when one fails with a 5xx, a timeout or no
	// answer before anything was sent to the caller, or when its circuit
	// breaker is open.
	Upstreams []string
	// PromptPer1K and CompletionPer1K are the prices of 1000 prompt and
	// 1000 completion tokens in micro-USD.
	PromptPer1K, CompletionPer1K int64
	// Policy names the [RoutingPolicy] the route follows ([Proxy.SetPolicies]);
	// empty means the policy whose ID is Model, if there is one. Without
	// a policy the upstreams are tried in order, once each.
	Policy string
	// Weights, if set, has one weight (0 to MaxRouteWeight) per entry of
	// Upstreams for StrategyWeightedHash; a missing weight is 100, and an
	// upstream of weight 0 is never chosen under that strategy.
	Weights []int
}

// BreakerConfig configures the circuit breaker of each upstream: after
// Failures consecutive failures (5xx, timeout, no answer), or with Window
// set Failures failures within Window, the upstream is skipped for
// Cooldown, then one call tries it again (a success closes it, a failure
// opens it for another Cooldown).
type BreakerConfig struct {
	Failures int           // default DefaultBreakerFailures
	Cooldown time.Duration // default DefaultBreakerCooldown
	// Window, if set, counts the failures within it instead of
	// consecutive ones ([RoutingPolicy.Cooldown]).
	Window time.Duration
}

// upstream is a configured Upstream.
type upstream struct {
	name, kind, key string
	base, endpoint  string
	client          *http.Client // nil: Config.Client
	body            string       // key of the bytes it is sent (bodyKind)
	br              breaker
	lat             latency // for StrategyLeastLatency
}

// The bodies a call may send: the client's document as checked, with
// include_usage set (streams), or translated for Anthropic.
const (
	bodyClient    = "client"
	bodyWithUsage = "with-usage"
	bodyAnthropic = "anthropic"
)

// route is a configured ModelRoute.
type route struct {
	model              string
	ups                []*upstream
	weights            []int         // by ups index; missing: 100
	policy             string        // ModelRoute.Policy
	prompt, completion int64         // micro-USD per 1000 tokens
	rr                 atomic.Uint64 // StrategyRoundRobin: calls started
}

// cost is the price of prompt and completion tokens, rounded up.
func (rt *route) cost(prompt, completion int64) int64 {
	return (prompt*rt.prompt + completion*rt.completion + 999) / 1000
}

// sends reports whether one of the route's upstreams is sent body.
func (rt *route) sends(body string) bool {
	for _, u := range rt.ups {
		if u.body == body {
			return true
		}
	}
	return false
}

// breaker is a circuit breaker counting consecutive failures, or those
// within a window (BreakerConfig.Window).
type breaker struct {
	mu        sync.Mutex // guards the fields below
	fails     int        // >= Failures: open (until openUntil, then half-open)
	recent    []time.Time
	openUntil time.Time
	trial     bool // a half-open trial call is in flight
}

// allow reports whether a call may go to the upstream now.
func (b *breaker) allow(now time.Time, cfg BreakerConfig) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.fails < cfg.Failures {
		return true
	}
	if now.Before(b.openUntil) || b.trial {
		return false
	}
	b.trial = true
	return true
}

func (b *breaker) success() {
	b.mu.Lock()
	if b.trial {
		b.recent = b.recent[:0] // the trial closed it: start counting again
	}
	b.fails, b.trial = 0, false
	b.mu.Unlock()
}

func (b *breaker) failure(now time.Time, cfg BreakerConfig) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.trial = false
	if b.fails >= cfg.Failures { // open, or its trial failed: open again
		b.fails = cfg.Failures
		b.openUntil = now.Add(cfg.Cooldown)
		return
	}
	if cfg.Window <= 0 {
		b.fails++
		if b.fails >= cfg.Failures {
			b.openUntil = now.Add(cfg.Cooldown)
		}
		return
	}
	keep := b.recent[:0]
	for _, t := range b.recent {
		if now.Sub(t) < cfg.Window {
			keep = append(keep, t)
		}
	}
	b.recent = append(keep, now)
	if len(b.recent) >= cfg.Failures {
		b.fails = cfg.Failures
		b.openUntil = now.Add(cfg.Cooldown)
		b.recent = b.recent[:0]
	}
}

// release ends a call that says nothing of the upstream's health (the
// client went away).
func (b *breaker) release() {
	b.mu.Lock()
	b.trial = false
	b.mu.Unlock()
}

// checkUpstreamURL accepts an http:// or https:// base URL.
func checkUpstreamURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errors.New("not an http:// or https:// URL")
	}
	return nil
}

// buildRoutes checks cfg's upstreams and routes and returns the routes by
// model; with no routes, the default route (Config.Upstream at
// Config.PricePer1K) serves every model.
func buildRoutes(cfg *Config) (map[string]*route, *route, error) {
	bad := func(msg string) error { return contracts.New(contracts.CodeInvalidInput, "llm: "+msg) }
	if cfg.PricePer1K < 0 || cfg.PricePer1K > MaxPricePer1K {
		return nil, nil, bad("Config.PricePer1K is out of range")
	}
	ups := map[string]*upstream{}
	add := func(u Upstream) error {
		kind := u.Kind
		if kind == "" {
			kind = KindOpenAI
		}
		if kind != KindOpenAI && kind != KindAnthropic {
			return bad("upstream " + u.Name + ": unknown kind")
		}
		if u.Name == "" || ups[u.Name] != nil {
			return bad("upstream names must be set and distinct")
		}
		if checkUpstreamURL(u.URL) != nil {
			return bad("upstream " + u.Name + ": URL must be an http:// or https:// URL")
		}
		base := strings.TrimSuffix(u.URL, "/")
		path := "/chat/completions"
		if kind == KindAnthropic {
			path = "/messages"
		}
		body := bodyWithUsage
		switch {
		case kind == KindAnthropic:
			body = bodyAnthropic
		case u.NoStreamUsage:
			body = bodyClient
		}
		ups[u.Name] = &upstream{name: u.Name, kind: kind, key: u.APIKey, base: base, endpoint: base + path, body: body, client: u.Client}
		return nil
	}
	var def *route
	if cfg.Upstream != "" {
		if checkUpstreamURL(cfg.Upstream) != nil {
			return nil, nil, bad("Config.Upstream must be an http:// or https:// URL")
		}
		if err := add(Upstream{Name: "default", URL: cfg.Upstream, APIKey: cfg.APIKey, NoStreamUsage: cfg.NoStreamUsage}); err != nil {
			return nil, nil, err
		}
		def = &route{ups: []*upstream{ups["default"]}, prompt: cfg.PricePer1K, completion: cfg.PricePer1K}
	}
	for _, u := range cfg.Upstreams {
		if err := add(u); err != nil {
			return nil, nil, err
		}
	}
	routes := map[string]*route{}
	for _, r := range cfg.Routes {
		if checkModelName(r.Model) != nil || routes[r.Model] != nil {
			return nil, nil, bad("route models must be valid names and distinct")
		}
		if r.PromptPer1K < 0 || r.CompletionPer1K < 0 || r.PromptPer1K > MaxPricePer1K || r.CompletionPer1K > MaxPricePer1K {
			return nil, nil, bad("route " + r.Model + ": price out of range")
		}
		if len(r.Upstreams) == 0 {
			return nil, nil, bad("route " + r.Model + ": no upstream")
		}
		if len(r.Weights) > len(r.Upstreams) || len(r.Policy) > 128 {
			return nil, nil, bad("route " + r.Model + ": more weights than upstreams, or a policy id over 128 bytes")
		}
		for _, w := range r.Weights {
			if w < 0 || w > MaxRouteWeight {
				return nil, nil, bad("route " + r.Model + ": weight out of range")
			}
		}
		rt := &route{model: r.Model, prompt: r.PromptPer1K, completion: r.CompletionPer1K, policy: r.Policy, weights: slices.Clone(r.Weights)}
		for _, name := range r.Upstreams {
			u := ups[name]
			if u == nil {
				return nil, nil, bad("route " + r.Model + ": unknown upstream " + name)
			}
			rt.ups = append(rt.ups, u)
		}
		routes[r.Model] = rt
	}
	if len(routes) > 0 {
		def = nil // with routes, only routed models are served
	}
	if def == nil && len(routes) == 0 && !cfg.Dynamic {
		return nil, nil, bad("Config.Upstream or Config.Routes is required")
	}
	return routes, def, nil
}

// retryable reports whether a failed attempt may go to the next upstream.
func retryable(err error) bool {
	switch contracts.CodeOf(err) {
	case contracts.CodeUpstream5xx, contracts.CodeUpstreamTimeout:
		return true
	}
	return false
}

// attempt runs try on the plan's upstreams in its order until one
// succeeds or fails in a way another attempt cannot fix (only a 5xx, a
// timeout or no answer is retried), skipping upstreams whose breaker is
// open: without a policy each upstream once; with one, pl.attempts
// attempts going round the order, waiting the backoff before each retry.
// try is given the attempt's timeout. A failure caused by the client
// going away (client done) neither retries nor counts against the
// upstream.
func (l *Proxy) attempt(client context.Context, pl plan, try func(u *upstream, timeout time.Duration) error) error {
	var last error
	n := len(pl.order)
	made, skipped := 0, 0
	backoff := float64(pl.backoff)
	for i := 0; made < pl.attempts && skipped < n && (pl.cycle || i < n); i++ {
		u := pl.order[i%n]
		if !u.br.allow(l.now(), pl.breaker) {
			skipped++
			continue
		}
		skipped = 0
		if made > 0 && pl.backoff > 0 {
			if !wait(client, time.Duration(backoff)) {
				u.br.release()
				return last
			}
			backoff = min(backoff*pl.mult, float64(MaxPolicyTimeout))
		}
		made++
		start := time.Now()
		err := try(u, pl.timeout)
		switch {
		case err == nil:
			u.lat.observe(time.Since(start))
			u.br.success()
			return nil
		case client.Err() != nil:
			u.br.release()
			return err
		case retryable(err):
			u.lat.observe(time.Since(start))
			u.br.failure(l.now(), pl.breaker)
			last = err
		default:
			u.lat.observe(time.Since(start))
			u.br.success() // the upstream answered; the request was refused
			return err
		}
	}
	if last == nil {
		last = contracts.New(contracts.CodeUpstream5xx, "no upstream available")
	}
	return last
}

// post sends body to u. Errors never name the upstream URL or key.
func (l *Proxy) post(ctx context.Context, u *upstream, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, contracts.New(contracts.CodeInternal, "bad upstream URL")
	}
	req.Header.Set("Content-Type", "application/json")
	if u.kind == KindAnthropic {
		req.Header.Set("anthropic-version", AnthropicVersion)
		if u.key != "" {
			req.Header.Set("x-api-key", u.key)
		}
	} else if u.key != "" {
		req.Header.Set("Authorization", "Bearer "+u.key)
	}
	client := l.cfg.Client
	if u.client != nil {
		client = u.client
	}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(context.Cause(ctx), errIdle) {
			return nil, contracts.New(contracts.CodeUpstreamTimeout, "upstream timed out")
		}
		return nil, contracts.New(contracts.CodeUpstream5xx, "upstream unreachable")
	}
	return resp, nil
}
