// Package talos is the root of Talos for Go, an embeddable trust layer for
// autonomous AI agents. It speaks the Talos Protocol contracts v1.x wire
// formats, so Go agents interoperate with the other Talos SDKs.
//
// # The map
//
//   - [github.com/talosgo/talos/identity]: Ed25519 wallets, did:key
//     identities, HTTP request attestation v1, key rings for sealed secrets.
//   - [github.com/talosgo/talos/capability]: capability tokens (contract v1.0),
//     delegation that can only narrow, RBAC, revocation and replay stores, MCP
//     request signing, and the Authorizer.
//   - [github.com/talosgo/talos/ratchet]: X3DH-style prekeys, Double Ratchet
//     sessions, channels, groups and A2A encrypted frames.
//   - [github.com/talosgo/talos/audit]: contract audit events in an RFC 6962
//     Merkle log with C2SP signed checkpoints, proofs and durable stores.
//   - [github.com/talosgo/talos/budget]: budgets and GCRA rate limits that are
//     never overspent, in memory or on Redis.
//   - [github.com/talosgo/talos/contracts]: canonical JSON, strict base64url,
//     UUIDv7, cursors, frames, error codes and embedded JSON Schemas.
//
// Services built on these packages live in the separate module
// github.com/talosgo/talos/gateway, one package per surface, each a handler
// plus a small store: gateway/mcp (MCP tool gateway), gateway/llm
// (OpenAI-compatible proxy), gateway/a2a (A2A v1 tasks and the A2A relay),
// gateway/auditapi (checkpoints, proofs and C2SP tiles), gateway/admin
// (principals, RBAC, budgets, capability issue and revocation),
// gateway/kernelapi (the Kernel over HTTP), gateway/config and
// gateway/secrets, with gateway/pgsplit and gateway/otelredact beside
// them. examples/server wires all of them into one service.
//
// This package holds the version constants and the pieces that compose the
// packages above: [Kernel] (authorize → rate-limit → reserve budget → run →
// commit → audit, one decision flowing through) and the HTTP layer that
// services build on. It imports no back-end, starts no goroutine and has no
// init side effects.
//
// # The HTTP layer
//
//   - [RouteTable]: the protected routes as net/http ServeMux patterns
//     ("POST /tools/{id}/run"), each with its tool action and the opcode
//     clients sign. Clients and servers share it: [RouteTable.Opcode] is
//     what identity.AttestationVerifierConfig.Opcode and
//     identity.AttestingTransport expect.
//   - [Attester]: verifies HTTP attestation and puts the principal in the
//     request context ([PrincipalFrom]), for routes that authorize on
//     their own.
//   - [Middleware]: the Attester plus capability authorization
//     ([DecisionFrom]).
//   - [Kernel.Middleware]: the Attester plus the Kernel's whole pipeline,
//     once per request: one decision, one audit event.
//   - [WriteError]: the contract error object, for every handler.
//
// Wrap a whole *http.ServeMux (its patterns decide the route; public routes
// such as /health pass with [PassThrough]), or single routes of it, or the
// routes of another router through AttesterConfig.RoutePattern.
//
// # Security properties
//
//   - Deny by default: every stage of the Kernel and the middleware fails
//     closed. A back-end that errors (revocation, replay, budget, rate-limit
//     or audit store) denies the call; the only fail-open switches are named
//     …Unsafe and live on the limiters.
//   - Holder binding: the middleware takes the principal from the key that
//     verified the request's HTTP attestation, never from a header the
//     client chooses, and the Authorizer requires it to be the capability's
//     subject.
//   - Authorized as served: the route a request is attested and authorized
//     for is the route the ServeMux dispatches it to (the mux's own
//     matching on the escaped path, so "/a%2Fb" is one segment); a route
//     the table does not list is unmatched, never its neighbour's route.
//     Unmatched requests are denied (404) unless [PassThrough] is chosen,
//     and a wildcard pattern is never a literal path (route tables refuse
//     to build under GODEBUG=httpmuxgo121=1).
//   - A request without attestation gets 401; every denial names only its
//     code. Requests that fail attestation are not audited, so anonymous
//     traffic cannot grow the audit log; every attested request under
//     [Kernel.Middleware] is audited once, allowed or denied.
//   - Denials tell the caller the contract code and nothing more; the
//     reason, the capability hash and the matched grant go to the audit
//     event and the trace span.
//   - Nothing in this module logs; secrets (seeds, KEKs, ratchet keys, IP
//     hash keys) are redacted from every fmt verb, slog and JSON.
//
// # Concurrency
//
// A Kernel and the middleware are safe for concurrent use when the
// Authorizer, stores and audit log they are given are; every library
// implementation of those is.
//
// # Compatibility
//
// The wire formats follow the contracts release pinned by
// [ContractManifestHash]. The Go API is pre-1.0 and may change.
package talos
