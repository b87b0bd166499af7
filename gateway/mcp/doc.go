// Package mcp is the Talos MCP tool gateway: one MCP server, served over
// streamable HTTP, whose tools are the tools of its upstream MCP servers
// (named "<upstream>.<tool>"), built on the official go-sdk
// (github.com/modelcontextprotocol/go-sdk).
//
// A [Gateway] is built with [New] from a [Config]: the upstreams (a
// [Dialer] each: [HTTPUpstream], [InMemoryUpstream] or any go-sdk
// transport), the tool registry that classifies each tool as a read or a
// write, the [talos.Kernel] that decides every call (normally built by the
// gateway from [Config.NewKernelConfig]), and the cost of a call with a
// function returning the caller's budgets. Mount [Gateway.Handler] at
// [Pattern] behind a [talos.Attester] whose route table has [Route]:
//
//	routes, _ := talos.NewRouteTable([]talos.Route{mcp.Route()})
//	att, _ := talos.NewAttester(talos.AttesterConfig{Routes: routes, Attestation: ...})
//	g, _ := mcp.New(ctx, mcp.Config{NewKernelConfig: ..., Upstreams: map[string]mcp.Dialer{"files": mcp.HTTPUpstream(url, nil)}})
//	defer g.Close()
//	mux.Handle(mcp.Pattern, att.Wrap(g.Handler()))
//
// Clients list tools and call them as with any MCP server; each request
// presents a capability token in the X-Talos-Capability header
// ([talos.HeaderCapability]). A refused call is a JSON-RPC error with code
// -32000 whose data holds the contract code and HTTP status ([DenyError]).
//
// # Lists, refreshes and writes
//
//   - tools/list shows a caller only the tools its capability allows: each
//     tool is asked of the Kernel's Authorizer (the one
//     [Config.NewKernelConfig] returns, or [Config.Authorizer]) and the
//     list is one Kernel call — rate-limited, audited once (action
//     [ListAction]). A capability that does not verify refuses the list;
//     without a known Authorizer every list is refused.
//   - Upstream tool lists are listed again on
//     notifications/tools/list_changed and after every reconnection. A
//     derived registry follows (the Kernel is rebuilt for it); a tool that
//     disappeared is refused by the Kernel as UNKNOWN_TOOL, audited.
//   - Tools whose registry entry requires an idempotency key (every write)
//     need params._meta[[MetaIdempotencyKey]]. The first call with a key
//     runs and its outcome is kept ([IdempotencyStore],
//     [MemIdempotencyStore] by default); a repeat from the same principal
//     with the same argument digest gets that outcome without reaching the
//     upstream (marked [MetaReplayed], charged nothing); other arguments
//     under the key, or a repeat while the first runs, are REPLAY_DETECTED.
//     Document tools are checked against the registry's document spec
//     (size, encoding, pointers, [MetaExpectedDocumentHashes]), and a
//     declared [MetaArgsDigest] must match the arguments. Package
//     gateway/mcp/postgres keeps keys on PostgreSQL.
//   - Resources and prompts of upstreams that offer them are listed and
//     proxied by the same rules: capability tool = the upstream, action
//     [ActionReadResource] or [ActionGetPrompt]; prompts are named
//     "<upstream>.<prompt>".
//
// # Security
//
//   - Identity is the attestation, never a header: the principal of a call
//     is [talos.PrincipalFrom] of its context, the did:key whose signature
//     the Attester verified for that very HTTP request (the go-sdk runs
//     each stateless request's tool handlers under the request's context).
//     The handler refuses requests without one (AUTH_INVALID).
//   - One decision per call: every tools/call is asked of the Kernel once
//     (capability tool = the upstream name, action = the tool name, args
//     digest = SHA-256 of the canonical arguments), then rate-limited,
//     reserved against the budgets [Config.Budget] returns, forwarded,
//     settled and audited — denied calls included. Nothing reaches an
//     upstream before the Kernel admits it; any back-end failure denies.
//   - Read/write classes: the Kernel's authorizer must classify tools with
//     the same registry ([Config.Registry], or the one derived from the
//     upstreams' readOnlyHint annotations, given to [Config.NewKernel]):
//     read-only tokens get only reads, and tools the registry does not
//     list are always denied (UNKNOWN_TOOL).
//   - The bytes checked are the bytes forwarded: bodies are bounded
//     ([MaxBody]) and must be one JSON-RPC 2.0 request or notification
//     with case-sensitive member names and no two keys equal under case
//     folding at any depth ([CheckJSONRPC]); the go-sdk decodes with
//     encoding/json, which matches names regardless of case. The
//     arguments forwarded are the canonical form whose digest was
//     authorized.
//   - A failed upstream call is never retried (tools have side effects);
//     a transport failure drops the session and the next call reconnects.
//     Upstream errors reach clients only as contract codes (MCP_PROTOCOL,
//     UPSTREAM_5XX, UPSTREAM_TIMEOUT), and the go-sdk's own plain-text
//     HTTP refusals are replaced by the contract error body.
package mcp
