// Package llm is the Talos LLM proxy: an OpenAI-compatible chat
// completions endpoint (POST /v1/chat/completions) that forwards to one
// upstream, each call authorized, rate-limited, budgeted and audited by a
// [talos.Kernel].
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
// [HeaderBudgetWarning]. Streaming is refused (STREAMING_NOT_SUPPORTED).
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
