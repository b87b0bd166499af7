// Package llm is the Talos LLM proxy: an OpenAI-compatible chat
// completions endpoint (POST /v1/chat/completions) that forwards to one
// upstream or, with [Config.Routes], routes each model to its upstreams
// (OpenAI-compatible or Anthropic's messages API, [KindAnthropic]) with
// its own prompt and completion prices, falling back to the next upstream
// on a 5xx or timeout and skipping failing ones ([BreakerConfig]), or as a
// [RoutingPolicy] says (strategy, timeout, retries, cooldown); each
// call authorized, rate-limited, budgeted and audited by a [talos.Kernel].
//
// A [Proxy] is built with [New] from a [Config] (the Kernel, the upstream
// base URL and bearer key, the price of 1000 tokens, and functions giving a
// principal's team and budgets). Mount [Proxy.Handler] at [Pattern] behind
// a [talos.Attester] whose route table has [Route]:
//
//	p, _ := llm.New(llm.Config{Kernel: k, Upstream: "https://llm.internal/v1", APIKey: key, PricePer1K: 2000})
//	mux.Handle(llm.Pattern, att.Wrap(p.Handler()))
//
// Callers present a capability token in X-Talos-Capability granting tool
// "llm" with the model as the action: grants are model allowlists. Answers
// are the upstream's bytes; a call past a warn-mode budget carries
// [HeaderBudgetWarning]. Upstream refusals reach callers only as contract
// error bodies (see upstreamStatus in the source: 4xx TALOS_INVALID_INPUT,
// 429 RATE_LIMITED, 401/403 and 5xx UPSTREAM_5XX, 408 UPSTREAM_TIMEOUT).
//
// # Models
//
// [Proxy.ModelsHandler] serves GET /v1/models ([ModelsRoute]): the models
// served (Config.Models, or the upstream's list) that the caller's token
// grants, asked of Config.Authorizer model by model, rate-limited and
// audited once per request (surface llm.models.list). With Config.Models
// set, chat completions for other models are refused (MODEL_NOT_ALLOWED).
//
// # Streaming
//
// A request with "stream": true is answered as a server-sent event stream,
// chunk by chunk (each flushed, the write deadline extended per chunk;
// Config.Timeout bounds the wait for each chunk and Config.StreamTimeout
// the whole stream). The proxy asks the upstream for a final usage chunk
// (stream_options.include_usage, set by encoding the checked document
// again, which is checked again before it is forwarded; the chunk is
// passed on only to clients that asked for it) and counts the completion
// tokens of every chunk itself ([ParseStreamChunk]: at least one token per
// 4 bytes of generated text). The reservation is the same worst case; a
// stream whose next chunk would exceed it under a hard budget is cut with
// a final "event: error" whose data is the contract error body
// (BUDGET_EXCEEDED), as is a malformed upstream stream (UPSTREAM_5XX) or
// an idle one (UPSTREAM_TIMEOUT). At the end the call is charged the
// larger of the reported usage and the prompt plus the counted completion
// (bounded by the reservation under a hard budget) and audited once, also
// when the client disconnected mid-stream.
//
// # Routing at run time
//
// [Proxy.SetRouting] replaces, without a restart, the upstreams and model
// routes added to the configured ones (an admin API's upstreams and model
// groups): the new table is checked as New checks the configuration and
// installed at once, calls in flight finish on the old one, and a refused
// table changes nothing. [Config.Dynamic] starts a proxy with no route
// (every model MODEL_NOT_ALLOWED until routes are set).
// [Upstream.Client] sends one upstream's requests with a client of its own
// (examples/server gives admin-added upstreams one whose dialer refuses
// loopback, link-local and private addresses).
//
// # Routing policies
//
// A [RoutingPolicy] (contract ai_gateway/routing_policy, decoded by
// [ParseRoutingPolicy] with the contract's defaults) governs how calls to
// a model group are spread and retried. [Proxy.SetPolicies] replaces the
// set at once (calls in flight finish under the old one); a route follows
// the policy its [ModelRoute.Policy] names, else the one whose ID is its
// model, else none (its upstreams in order, once each, Config.Timeout and
// Config.Breaker, as before policies existed). Under a policy:
//
//   - The strategy picks the order of the upstreams for each call:
//     [StrategyWeightedHash] by weighted rendezvous hashing of the
//     caller's principal over [ModelRoute.Weights] (one caller sticks to
//     one upstream while the group is unchanged; weight 0 drains an
//     upstream), [StrategyRoundRobin] starting each call on the next
//     upstream, [StrategyLeastLatency] on the upstream with the lowest
//     EWMA of observed latency (unmeasured ones first).
//   - Timeout bounds each attempt (for a stream, the wait for its answer
//     and then for each chunk).
//   - MaxAttempts attempts in all go round that order, with Backoff before
//     the second multiplied by BackoffMultiplier before each later one;
//     only a 5xx, a timeout or no answer is retried, never a 4xx or 429,
//     and never a stream once its answer has started.
//   - Cooldown is each upstream's breaker: Failures failures within
//     Window open it for Cooldown, then one trial call closes it again or
//     reopens it. Breaker and latency state belong to the upstream (shared
//     by the routes that name it) and survive SetPolicies, not SetRouting.
//
// # Security
//
//   - Identity is the attestation: the principal is [talos.PrincipalFrom]
//     of the request, never a forwarded header; requests without one are
//     refused (AUTH_INVALID).
//   - The bytes checked are the bytes forwarded: the body is bounded
//     ([MaxBody]) and decoded with contracts.UnmarshalFields
//     ([ParseChatRequest]): field names are case-sensitive and objects
//     with two keys equal under case folding, at any depth, are refused,
//     so the model authorized and the max_tokens and n budgeted are those
//     a case-sensitive upstream reads. max_completion_tokens is refused so
//     that one field bounds the completion.
//   - Worst-case reservation: a call reserves one token per request byte
//     (no tokenizer emits fewer than one byte per token) plus max_tokens
//     per choice, before anything is sent upstream. Under a hard budget
//     max_tokens is required, and the settled cost is bounded by the
//     reservation even when the upstream reports more usage; otherwise it
//     is the reported usage, or the worst case when a success reports none.
//     Refusals and upstream failures charge nothing.
//   - One decision per call, audited allowed or denied; any back-end
//     failure denies. The upstream key is sent only to the upstream and
//     never appears in errors, logs or audit events; upstream failures
//     reach callers only as contract codes (UPSTREAM_5XX, UPSTREAM_TIMEOUT).
package llm
