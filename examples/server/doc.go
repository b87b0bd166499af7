// Command server is the Talos service: the kernel, gateway, audit and config
// surfaces built only from the library's public packages over net/http.
//
//	go run ./examples/server                 # embedded defaults, ./talos-data
//	go run ./examples/server -h              # every setting
//
// # Model
//
// On first start the server creates its data directory (0700), a master key
// (unless TALOS_MASTER_KEY is set), a key-encryption key sealed under it, and
// its Ed25519 identity sealed under that; it prints its did:key and a one-time
// admin bootstrap credential, of which only the SHA-256 is stored. Later
// starts unseal the same identity and print only the DID. Settings come from
// defaults, a talos.config v1 JSON file (validated against the contract
// schema), the environment and flags, in increasing precedence.
//
// With TALOS_POSTGRES_URL the sealed secrets and the config versions live in
// PostgreSQL (writes on the primary; listings on TALOS_POSTGRES_REPLICA_URL
// behind a circuit breaker that falls back to the primary, with
// read-your-writes: see the consistency model); without it they
// live in the data directory (secrets.json, config-versions.jsonl).
//
// # Admins
//
// The bootstrap credential does one thing: POST /v1/admin/bootstrap with
// {"did":"did:key:z6Mk..."} makes that did:key the first owner, and the
// credential is then spent (401 for ever, on every replica). Admins sign
// their requests like agents (X-Talos-* headers, opcode "admin") or
// present an admin session (Authorization: Bearer talos_session_...,
// minted by a signed POST /v1/admin/sessions, 60 s to 8 h, only its
// SHA-256 stored). Roles owner, operator, auditor and viewer grant read
// (GET) or write on admin tools: admin.principals, admin.rbac,
// admin.capabilities, admin.budgets (the admin API), admin.config
// (/v1/config/*), admin.audit (/v1/audit/events, entries, bundles,
// entry tiles when the log is not public), admin.admins
// (/v1/admin/identities). No admin is 401 AUTH_INVALID; a lacking grant
// is 403 RBAC_DENIED. Every admin action is audited with the admin's DID.
// Recovery when no owner is left: `talos admin recover --data-dir DIR`
// writes DIR/admin-recovery.json (HMAC under a key derived from the
// master key, valid 24 h) and prints a new talos_admin_ credential, which
// POST /v1/admin/bootstrap accepts once.
// Routes: see gateway/admin's package documentation. Besides it:
//
//	GET /v1/audit/stream?surface=&principal_id=&outcome=   live audit events (SSE), resume after Last-Event-ID or ?after=   admin.audit read
//	GET /v1/admin/stats?window=15m                         decision statistics of this replica (gateway/stats)          admin.stats read
//	GET /v1/admin/a2a/sessions[/{id}], /v1/admin/a2a/groups[/{id}]   A2A metadata, counts, chain_verified          admin.a2a read
//	GET /v1/config?limit=&cursor=                          config documents, latest version and digest                   admin.config read
//
// The stream (streamwire.go) reads the shared audit store, so events
// appended on any replica appear: this replica's at once (each append
// wakes the stream), the others' within half a second; it sends a ": ping"
// every 15 s, disconnects a client that does not take a write within 10 s,
// and ends when shutdown begins. The statistics (statswire.go) are fed by
// the Kernels' own measurements (talos.decisions, talos.call.duration, ...)
// in this process: "scope":"replica"; the audit log is the cluster-wide
// record.
//
// # Upstream administration and governed writes
//
// MCP upstream servers, LLM upstreams and model groups are also managed at
// run time, without a restart (upstreamadmin.go):
//
//	GET|PUT|DELETE /v1/admin/mcp/servers[/{id}]       {"url"}                          admin.mcp.servers
//	GET|PUT|DELETE /v1/admin/llm/upstreams[/{id}]     {"kind","url","api_key_secret_id","no_stream_usage"}  admin.llm.upstreams
//	GET|PUT|DELETE /v1/admin/llm/model-groups[/{id}]  {"upstreams",
//	                "prompt_per_1k_micro_usd","completion_per_1k_micro_usd",
//	                "routing_policy_id"?,"weights"?}                                        admin.llm.model-groups
//
// A PUT is applied first (an MCP server is connected and its tools listed,
// else 502 UPSTREAM_5XX; the LLM routing is checked, else 400) and then
// stored as a new version of the config store's document mcp.servers or
// llm.routing (PostgreSQL, or DataDir/upstream-admin.jsonl) over the one
// it edited, audited inside the write and as an admin action. The other
// replicas apply it on the change message ("upstreams", replicas.go),
// and re-read the documents every TALOS_UPSTREAM_SYNC and at start. Calls to a
// removed MCP server are refused (UNKNOWN_TOOL); a removed model group's
// model is MODEL_NOT_ALLOWED. API keys are ids of the sealed secret store
// (/v1/secrets), read when applied, never returned. Upstream URLs must be
// http(s) without credentials, query or fragment; loopback
// (TALOS_UPSTREAM_ALLOW_LOOPBACK) and private addresses
// (TALOS_UPSTREAM_ALLOW_PRIVATE) are refused unless allowed, link-local,
// unspecified and multicast always, on the URL and again on every dial.
// Servers and upstreams configured by TALOS_MCP_UPSTREAMS and
// TALOS_LLM_UPSTREAMS are not managed here.
//
// With TALOS_MCP_SUPERVISOR=approve or human, MCP write tools are governed
// (gateway/mcp's TGA runtime): action_request, supervisor_decision,
// tool_call and tool_effect are hash-chained and each persisted
// (<prefix>mcp_tga_traces and _entries on PostgreSQL, else DataDir/tga)
// before the next step; at start the server recovers interrupted traces
// (re-dispatching a tool call with its idempotency key, never executing a
// finished one again). With human, each write waits for an admin:
//
//	GET  /v1/admin/approvals?limit=&cursor=                         admin.approvals read
//	POST /v1/admin/approvals/{id} {"decision":"approve"|"deny","reason"}  admin.approvals write
//
// for TALOS_MCP_APPROVAL_TIMEOUT, then it is denied (POLICY_DENIED).
// TALOS_TEST_TGA_BLOCK_AFTER=n (0 to 4) is a test hook, not a setting: it
// blocks a governed write after step n is persisted (0: after the
// dispatch) so that the crash test can kill the process there; production
// mode ignores it.
//
// # Many replicas: the consistency model
//
// Replicas agree through two shared stores, never through each other.
// Redis (one node with TALOS_REDIS_URL, a Cluster with
// TALOS_REDIS_CLUSTER_ADDRS, or Sentinel with TALOS_REDIS_SENTINEL_ADDRS and
// TALOS_REDIS_SENTINEL_MASTER, all through go-redis UniversalClient) holds
// what every decision reads or writes: budget spend and reservations, rate
// limit counters, attestation nonces and revocations. PostgreSQL holds the
// documents: admin state (principals, roles, bindings, budget definitions,
// admin identities and sessions, issued capabilities), config versions,
// A2A state, sealed secrets and the audit log. Decisions therefore agree at
// once: a nonce claimed on one replica is a replay on every other, a hard
// budget is one counter whoever spends it, and one audit log holds every
// replica's events.
//
// What a replica caches (the principal registry, the RBAC policy, the
// budget definitions, and the budgets defined by budget config documents)
// is refreshed by change propagation (replicas.go over gateway/notify):
// every admin edit and every stored config document bumps a per-kind
// version in the shared store and publishes it (Redis pub/sub, or
// PostgreSQL LISTEN/NOTIFY without Redis); every replica, the editing one
// included, reloads that kind. Each replica also reads the versions every
// second, so a lost message or a subscription that was down is caught on
// the next read: a change is enforced everywhere within the message
// latency (tens of milliseconds between three processes on one machine,
// TestThreeReplicasPropagation) and at worst about one second plus the
// reload. Revocations travel on capability/redis's own feed and are also
// checked in Redis whenever that feed is not proven fresh. A budget config
// document (PUT /v1/config/budget/{name}, contract ai_gateway/budget) is a
// hard budget on its team or key scope (max_usd, period daily or monthly;
// used_usd and reset_at are informational) that overrides the admin API's
// budget of the same scope. A routing policy document (PUT
// /v1/config/policy/{name}, contract ai_gateway/routing_policy) is
// installed in the LLM proxy (gateway/llm RoutingPolicy: strategy
// weighted_hash by the caller's principal, round_robin or least_latency;
// timeout_ms per attempt; retries with backoff on 5xx and timeouts only,
// never once a stream started; cooldown: failure_threshold failures
// within window_seconds open an upstream for cooldown_seconds) on this
// replica when the PUT commits and on the others within the propagation
// bound; stored policies are installed at start. A model group follows
// the policy its routing_policy_id names, else the policy whose name is
// the group id (only lowercase ids can be document names), else none (its
// upstreams in order, once each, TALOS_LLM_TIMEOUT). A policy past the
// proxy's limits (e.g. max_attempts over 10, timeout_ms over 1 h), like a
// budget document whose max_usd is out of range, is refused at PUT
// (SCHEMA_VALIDATION_ERROR), so every accepted version is one in force; one
// stored before these limits is not installed and logged, and its groups
// route as without a policy (policywire.go).
//
// Periodic jobs run once per interval across the replicas: KEK rotation
// (gateway/secrets RotateIfDue, under the rotation lock) and, with the
// audit log in PostgreSQL, checkpoint publication (a transaction-scoped
// advisory lock and the job's last run in <prefix>jobs, by the database's
// clock).
//
// Reads that scale: with TALOS_POSTGRES_REPLICA_URL (a streaming standby of
// TALOS_POSTGRES_URL) the read-heavy GET routes read the replica: the
// admin lists (/v1/principals, /v1/rbac/*, /v1/budgets, /v1/admin/*,
// including the A2A session and group lists), audit event searches (GET
// /v1/audit/events) and the config document lists and versions
// (/v1/config). Everything else reads the primary, and always the reads that
// decide or must be current: admin identity and session lookups,
// principal lookups, RBAC and budget state outside those listings,
// revocations and nonces (in Redis), relay membership and A2A task reads,
// the audit tree (proofs, checkpoints, entries by index, the live stream).
// A listing is at most the replica's lag behind the primary, except for the
// caller that wrote: after every mutating request the server records the
// primary's WAL position for the request's credential (the SHA-256 of its
// Authorization header, in memory), and that caller's listings go to the
// replica only once pg_last_wal_replay_lsn() has reached it, to the primary
// until then (gateway/pgsplit). The marks are kept in <prefix>read_marks on
// the primary as well, so this holds whichever server replica serves the
// write and the read (each listing by a named caller looks its mark up
// there; a failed lookup reads the primary).
// A replica that fails is skipped by its circuit breaker (reads fall back to
// the primary) and /health/ready reports it degraded.
//
// On a store outage the server fails closed. Without Redis, budget
// reservations, rate limits, nonce claims and revocation checks fail, so
// decisions are denied, and /health/ready answers 503; without PostgreSQL,
// admin and config edits and audit appends fail (a call whose event cannot
// be appended answers an error, not a decision) and /health/ready answers
// 503. Change propagation keeps the last applied state: a publication
// that fails is retried every second, and a replica whose subscription
// comes back reads the versions at once. /health/ready reports the
// propagation check ("degraded" while neither the subscription nor the
// version read works) and, under "state", where each piece of state lives;
// production mode refuses per-process state unless -single-node.
//
// # OAuth for stock MCP clients
//
// With TALOS_OAUTH_ISSUER and TALOS_OAUTH_RESOURCE, POST /mcp is also an
// OAuth 2.1 resource server per the MCP authorization specification
// (gateway/oauth, oauth.go): besides HTTP attestation it takes
// "Authorization: Bearer <JWT access token>" from that issuer.
//
//	GET  /.well-known/oauth-protected-resource[/mcp]   RFC 9728 metadata (public): resource, authorization_servers, scopes_supported, bearer_methods_supported
//	POST /mcp                                          attested, or a bearer token
//	GET  /v1/admin/oauth/principals/{value}            the did:key a claim value maps to, registered or not   admin.principals read
//
// A token is verified against the issuer's JWKS (RS256, ES256 or EdDSA;
// exact iss; aud containing TALOS_OAUTH_RESOURCE, RFC 8707; exp, nbf, iat
// with 30 s of skew; at most 8 KiB; keys refetched on an unknown kid at
// most every 30 s; no keys, no access). The claim TALOS_OAUTH_PRINCIPAL_CLAIM
// (sub or client_id) names the principal: its did:key is derived from the
// server's identity key, and it must be in TALOS_OAUTH_PRINCIPALS
// (value=team) or registered with PUT /v1/principals/{did}. The token's
// scopes become capability grants by TALOS_OAUTH_SCOPES (default
// tools:read=read,tools:write=write: every read tool, every write tool).
// The server then mints a capability (at most 5 min, never past the
// token's exp) and signs the request as the principal, so the call goes
// through the Attester, the registration check and the Kernel like any
// attested one (RBAC, rate limits, budgets; audited with the principal's
// did:key and the minted capability's hash, as auth_mode "bearer" with
// meta oauth_issuer, oauth_claim and oauth_jti_sha256, the hex SHA-256 of
// the token's jti; never the token). The client's Authorization
// and X-Talos-* headers are dropped first: nothing of the token reaches an
// upstream. A request without a credential is 401 with a Bearer challenge
// (resource_metadata, scope) beside the attestation one; a token that does
// not verify 401 error="invalid_token"; a tools/call its scopes do not
// cover 403 error="insufficient_scope" naming the scopes that would (the
// denial is audited); a valid token of an unregistered principal 403.
//
// # Security properties
//
// Secrets are sealed with identity.Keyring envelopes (contract
// secrets/envelope.v1, AES-256-GCM, AAD "talos.secret.v1:<id>"). A background
// worker adds a KEK and rewraps every secret (TALOS_KEK_ROTATION),
// coordinated across replicas by a PostgreSQL advisory lock; older KEKs stay
// loaded, so no read fails during a rotation.
//
// The master key trade-off: without TALOS_MASTER_KEY the key is generated
// and written to DataDir/master.key (0600). That protects copies of the
// sealed data made without the key file (a database dump, a backup of
// secrets.json) and nothing more: whoever reads the data directory reads
// every secret. Production mode (-production, or global.env "prod" in the
// config file) refuses to start without TALOS_MASTER_KEY, so the key can stay
// in a secret manager and never touch the disk. Every replica sharing one
// PostgreSQL needs the same TALOS_MASTER_KEY.
//
// Traces (OpenTelemetry SDK; OTLP/HTTP or stdout) pass a redacting exporter
// wrapper before they leave the process: Authorization and X-Talos-* headers,
// capability tokens, A2A frame payloads, signatures, nonces, the admin
// credential and every secret the server has unsealed are masked in span
// names, attributes, events, links and status. Errors reach clients only as
// the contract error body {code, message, retryable, request_id}, whose
// request_id is the trace id.
//
// Every surface that decodes JSON from outside (LLM proxy, MCP gateway
// JSON-RPC bodies, A2A, kernel API, admin routes, config documents and the
// config file) refuses objects, at any depth, with two member names equal
// under simple case folding, and matches field names case-sensitively
// (contracts.UnmarshalFields, contracts.CheckCaseFold): the bytes an upstream
// receives are exactly the document that was authorized, budgeted and
// audited. The LLM proxy reserves one token per request byte plus max_tokens
// per choice, requires max_tokens under a hard budget, refuses
// max_completion_tokens, and settles a hard budget at most at its
// reservation.
//
// Audit privacy is one rule: checkpoints, hash tiles and proofs are public;
// entry bytes (events, entries, evidence bundles, /tlog/tile/entries/... and
// the entry_b64u of inclusion proofs) go only to callers with the admin
// credential, unless TALOS_AUDIT_PUBLIC publishes the log. A checkpoint is
// published at start, every TALOS_AUDIT_CHECKPOINT_INTERVAL while the log
// grows (once per interval across replicas sharing a PostgreSQL log), and at
// shutdown; GET /v1/audit/checkpoint answers the current tree
// from memory (signed once per new size) and, like /health/ready (whose data
// directory probe runs at most every 10 s), never writes to disk per call.
//
// Every response has a write deadline (TALOS_WRITE_TIMEOUT); gateway calls
// extend theirs by their upstream deadline with http.ResponseController. The
// data directory is created 0700, tightened to 0700 when others can read
// it, and refused when others can write to it.
//
// # The HTTP layer
//
// The server uses the library's HTTP layer and nothing of its own: one
// talos.RouteTable lists every attested route and its opcode (published as
// attested_routes by GET /v1/identity, and the table the tests' agents sign
// with); one talos.Attester verifies them against the principal registry,
// so only registered keys authenticate, and puts the principal in the
// request context. Routes take their opcode from the pattern the mux
// dispatched to, so an escaped slash (/v1%2Fauthorize) cannot be authorized
// as one route and served as another. The kernel API, the MCP gateway and
// the LLM proxy ask the Kernel once per call (tool and action come from the
// body); the A2A surface runs through Kernel.Middleware, which rate-limits
// and audits every attested A2A request once, reads and refusals included.
// MCP tool handlers read the principal from their context (the go-sdk
// passes the HTTP request's context values to stateless sessions), never
// from a forwarded header. Every error is written by talos.WriteError, and
// the tiles are audit/file's handler behind the entry privacy rule.
//
// # Operations
//
// GET /health/live answers 200 while the process runs. GET /health/ready
// checks the data directory, the PostgreSQL primary, Redis (503 naming the
// failed check) and the replica (200 "degraded": reads fall back to the
// primary). On SIGTERM or SIGINT the server stops accepting connections,
// answers /health/ready with 503, drains in-flight requests until
// TALOS_SHUTDOWN_TIMEOUT, stops its background workers and then runs the
// flush hooks (audit log, trace exporter, stores).
//
// GET /openapi.json serves, without a credential, the OpenAPI 3.1 document
// of every route (examples/server/openapi, embedded), with a strong ETag
// and Cache-Control public, max-age=300.
//
// GET /ui/ serves the admin dashboard (ui/static, embedded; uiwire.go): its
// own ES modules only, under a strict Content-Security-Policy, with nosniff
// and no-referrer. The assets need no credential; the page signs in with an
// admin session taken from the URL fragment (#session=…, as printed by
// `talos admin session`) or pasted, keeps it in sessionStorage and sends it
// as a bearer token (no cookie). It verifies audit inclusion proofs and
// checkpoint signatures in the browser with the key from /v1/identity.
//
// # Concurrency
//
// Server is safe for concurrent use (as are the gateway packages it wires).
//
// # Compatibility
//
// An example program: its flags, environment variables and routes follow the
// library's version but carry no separate stability promise.
package main
