// Package capability implements Talos capability tokens and the
// Authorizer: who may call which tool action, proven by signed tokens,
// narrowed by delegation, limited by RBAC and a tool registry, and
// revocable at once.
//
// # Model
//
// A [Token] is the contract v1.0 capability (schemas/capability_token.json):
// an issuer grants a subject a scope of [Grant]s ({tool, actions}) until
// exp, signed with Ed25519 over the token's canonical JSON without its
// signature. [Issue] signs one with any crypto.Signer holding an Ed25519
// key (a wallet's Signer, or a key in a KMS or HSM), [Parse] reads one from its wire form
// (base64url of the JSON, or the JSON itself), [Verify] checks signature
// and validity window, and [Token.Authorize] is the contract's exact-match
// authorize_fast.
//
// A [Chain] is a delegation chain of v1.0 tokens, root first. [Delegate]
// issues a child that can only narrow its parent: same or fewer
// tool/action pairs, no later expiry, the parent's audience and read-only
// flag kept, and metadata.parent naming the parent's capability hash.
// [VerifyChain] checks all of it for every link, with a depth limit of 8.
//
// The [Verifier] is the [Authorizer]: given a [Request] (the presented
// token or chain, the principal proven by the transport, tool and action)
// it returns a [Decision] with a [ReasonCode], the capability hash, the
// matched grant and the root issuer — what the audit log records. It
// keeps verified chains in a bounded cache keyed by a hash of the
// presented bytes, so a repeated request costs a map lookup and no
// allocation (well under 1/50 of one ed25519.Verify).
//
// Optional parts: a [ToolRegistry] classifies actions as read or write
// (unknown actions are denied; read-only tokens get only reads), an
// [RBAC] engine adds role bindings with the contract's scope matching,
// a [ReplayStore] rejects reused request nonces, and [SignMCPRequest] /
// [VerifyMCPRequest] / [VerifyMCPResponse] sign and check MCP payloads.
// [ParseLegacy] reads the older TS/Python SDK token form through its own,
// explicitly named entry point.
//
// # Read-only limits and unknown tools
//
// Three things can be limited to read-class actions, all enforced by a
// [Verifier] with the classes of its [ToolRegistry]:
//
//   - a whole token: metadata.read_only = true ([IssueOptions].ReadOnly);
//   - one grant: [Grant].ReadOnly, the scope item member "read_only": true;
//   - one role: [Role].ReadOnly; its permissions allow a tool action only
//     when RBACConfig.Registry classifies it as read ([RBAC.CheckTool]).
//
// Without a registry nothing is known to only read, so a read-only token,
// grant or role allows nothing. Delegation keeps every limit: a child may
// add read_only to a grant or token, never drop it ([Delegate] refuses,
// [VerifyChain] rejects the link).
//
// An unknown tool is denied (UNKNOWN_TOOL) only when Config.Registry is
// set: configuring a Registry is how that rule is obtained. Without one, a
// Verifier allows whatever tool and action a token grants. Set a Registry
// in every deployment that serves tools; leave it out only where tokens
// name nothing but trusted, fixed tools.
//
// # Reserved metadata
//
// The contract leaves metadata free-form. This package reads three
// members, all inside the signed bytes: "aud" (audience; a Verifier
// configured with Config.Audience requires it, and one without an
// audience refuses tokens that carry one), "parent" (the parent's
// capability hash in a chain) and "read_only" (boolean). Scope items are
// read strictly too, with one extension member: "read_only": true on a
// grant (never false: the member is true or absent).
//
// # Security properties
//
//   - Parsing is strict: unknown or mis-cased fields, duplicate keys, null,
//     floats, integers beyond ±(2^53−1), -0 (anywhere a number appears,
//     also inside metadata and legacy constraints: it is 0 spelled a second
//     way), versions other than "1.0",
//     malformed did:key identifiers, short nonces, non-canonical base64url
//     and inputs over the limits in limits.go are rejected with
//     TALOS_INVALID_CAPABILITY. Signatures cover the canonical re-encoding,
//     so every accepted encoding of a token means the same token.
//   - Holder binding: a Verifier allows only the chain leaf's subject. The
//     transport must prove the principal: an HTTP request attested with
//     the subject's key (talos.Middleware), or an MCP payload signed by it
//     ([VerifyMCPRequest]).
//   - Time: the clock is injected (Config.Now) and a skew of 60 s is
//     tolerated: a token is valid while nbf − skew ≤ now ≤ exp + skew.
//     Cached chains die at the earliest exp of any link.
//   - Revocation is by capability hash ([HashKey]) or nonce ([NonceKey]) of
//     any link, so revoking a link revokes every descendant. With a
//     [RevocationWatcher] store (memory, or Redis pub/sub in
//     capability/redis) cached chains are evicted as revocations arrive;
//     while the watch feed is down, or with any other store, the store is
//     asked on every request. A session (Request.SessionID) never outlives
//     a revocation: a chain whose revocation check raced an eviction is
//     neither cached nor trusted, and a session bound to it asks the store
//     on every use. The bound on how late a revocation made elsewhere is
//     enforced is the store's ([RevocationWatcher]): capability/redis
//     enforces it on every replica within its MaxStaleness, or fails closed.
//   - Fail closed: a store error denies (STORE_UNAVAILABLE, contract code
//     INTERNAL, retryable). There is no fail-open option.
//   - Denials carry a reason for logs and audit, but [Decision.Err] and
//     the HTTP middleware tell callers only the contract code.
//
// # Concurrency
//
// Tokens, chains, registries and RBAC engines are immutable and safe for
// concurrent use. A Verifier and the stores are safe for concurrent use;
// call [Verifier.Close] to stop a revocation watch.
//
// # Compatibility
//
// Tokens are wire-compatible with the contract schema and the
// sdk/capability_verify.json and sdk/mcp_sign_verify.json vectors.
// Delegation and audience use only metadata, so every link is a valid
// v1.0 token for any other implementation. A read-only grant adds the
// member "read_only": true to its scope item; the contract schema allows
// members beyond tool and actions in scope items and the signature covers
// the whole canonical token, so other SDKs still parse and verify such a
// token (they ignore the limit, and grant the pair unrestricted: give
// read-only grants only to holders whose verifiers run this package). The error codes are the
// contract's (contracts.Code*).
package capability
