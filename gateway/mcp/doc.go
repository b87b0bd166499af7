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
// # Upstreams at run time
//
// [Gateway.AddUpstream] and [Gateway.RemoveUpstream] change the upstreams
// without a restart: an added one is connected and listed (and, with a
// derived registry, classified and given to a rebuilt Kernel) before
// AddUpstream returns; a removed one's session is closed, its tools are
// no longer listed and calls to them are refused by the Kernel
// (UNKNOWN_TOOL, audited). [Config.Dynamic] starts a gateway with none.
// With a fixed [Config.Registry], an added upstream's tools are served
// only where the registry lists them.
//
// # Governed writes
//
// With [Config.Governance], every call to a tool the registry classifies
// as a write runs as a TGA trace (the contract's tga/v1 artifacts): the
// gateway records an action_request, asks the [Supervisor] for a
// supervisor_decision (a policy function, [SupervisorFunc], or a human
// through the approval queue, [HumanApproval]), then records the
// tool_call, dispatches it (its tool_call_id and idempotency key in the
// upstream call's _meta, [MetaToolCallID], [MetaIdempotencyKey]) and
// records the tool_effect. Each artifact carries its _digest (SHA-256 of
// its canonical JSON, hex) and its parent's digest; each is the
// artifact_data of an execution_log_entry whose entry_digest chains to the
// previous entry (audit.ExecutionLogChain, genesis 32 zero bytes), checked
// against the contract's state machine before it is written, and persisted
// in the [TraceStore] ([FileTraceStore], fsynced; gateway/mcp/postgres
// TraceStore for replicas) before the next step is taken. A trace is
// verified with audit.VerifyExecutionLog and audit.VerifyArtifactChain
// whenever it is read ([Gateway.TraceEntries] returns its entries).
//
// A denial is POLICY_DENIED and never reaches the upstream. A pending
// request waits in the approval queue — [Gateway.Approvals],
// [Gateway.Decide], and the admin routes of [Gateway.RegisterApprovals]
// (GET /v1/admin/approvals, POST /v1/admin/approvals/{id}
// {"decision":"approve"|"deny","reason"}, tool admin.approvals) — while the
// caller's tools/call waits (its replica polls the store, so a decision on
// any replica counts), and is denied when GovernanceConfig.ApprovalTimeout
// passes; the replica that records an approval executes the call. A
// repeated idempotency key is answered from the trace, never executed
// again, also after a restart.
//
// [Gateway.Recover], called at start-up, follows the contract's recovery
// rules for traces a crash interrupted: a pending request is supervised
// again, an authorized one is executed, one that ends in its tool_call is
// re-dispatched with the same tool_call_id and idempotency key
// (RE_DISPATCH_SAME_TOOL_CALL: an upstream that executes a key once makes
// this at most once; GovernanceConfig.NoRedispatch records an ERROR effect
// instead), and a finished one is only replayed to the client's retry
// (REPLAY_ONLY_NO_DISPATCH). Recovered executions are not charged to
// budgets again (their reservation ended with the crashed process) and
// are not Kernel calls: a crash also cut the original call off before the
// Kernel audited it, so each [Recovered] names the trace's principal,
// upstream and tool for the caller to record (examples/server audits
// every finished recovery). Two replicas
// recovering the same trace at once may both re-dispatch it (the store's
// seq check keeps one effect); the idempotency key covers the upstream.
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
