// Package a2a serves agent-to-agent traffic on Talos: the A2A v1 task
// protocol (JSON-RPC 2.0 at POST /rpc and /a2a/v1/rpc, the legacy
// dispatcher at POST /a2a/v1/, signed agent cards at
// /.well-known/agent-card.json) and the contracts' encrypted relay
// ([Relay]: ratchet sessions, frames and groups under /a2a/).
//
// # The relay
//
// [Relay] serves the A2A REST surface of the contracts ([RelayRoutes]):
// sessions (create, accept, rotate, close), encrypted frames (send, list
// with a cursor) and groups (create, add and remove members, close), with
// hash-chained session and group events. It stores ratchet state blobs
// and frames opaque; it checks digests and the sender_seq rule
// ([CheckSenderSeq]: an identical resend is a duplicate, a different
// frame at a used sender_seq REPLAY_DETECTED, more than
// ratchet.MaxSeqAhead ahead STATE_SEQUENCE_GAP), never decrypts. Its
// [Store] is [MemStore] here or gateway/a2a/postgres.Store shared by
// replicas; both pass gateway/a2a/a2atest.Run and apply the one rule.
// Mount it with [Relay.Mount] behind the server's talos.Kernel
// middleware ([RelayConfig].Wrap) and add [RelayTalosRoutes] to the
// route table.
//
// # Methods and scopes
//
// Every method needs capability grants under tool "a2a" ([Tool]) with the
// scope as action:
//
//	method                              aliases                                      scopes
//	GetExtendedAgentCard                agent/getAuthenticatedExtendedCard           a2a.discovery.read
//	SendMessage                         message.send, message/send                   a2a.send
//	SendStreamingMessage (SSE)          message.stream, message/stream               a2a.send, a2a.subscribe
//	GetTask                             tasks.get, tasks/get                         a2a.get
//	CancelTask                          tasks.cancel, tasks/cancel                   a2a.cancel
//	ListTasks                           tasks.list, tasks/list                       a2a.list
//	SubscribeToTask (SSE)               tasks.resubscribe, tasks/resubscribe         a2a.subscribe
//	CreateTaskPushNotificationConfig    tasks.pushNotificationConfig.set, .../set    a2a.push_config.write
//	GetTaskPushNotificationConfig       tasks.pushNotificationConfig.get, .../get    a2a.push_config.read
//	ListTaskPushNotificationConfigs     tasks.pushNotificationConfig.list, .../list  a2a.push_config.read
//	DeleteTaskPushNotificationConfig    tasks.pushNotificationConfig.delete, ...     a2a.push_config.write
//
// The compat dispatcher (POST /a2a/v1/) serves tasks.send, tasks.get,
// tasks.list and tasks.cancel under the single scope a2a.invoke.
//
// An example call (attested with identity.AttestationSigner, opcode
// "a2a.v1.rpc", the capability in talos.HeaderCapability):
//
//	{"jsonrpc":"2.0","id":"1","method":"SendMessage",
//	 "params":{"message":{"messageId":"m1","role":"user","parts":[{"text":"Hello"}]}}}
//
// Errors: -32700 parse error (including duplicate or case-folded keys),
// -32600 invalid request, -32601 unknown method, -32602 invalid params,
// -32603 internal, and -32000 with data.talos_code and data.http_status
// for every contract code (denials, NOT_FOUND, RATE_LIMITED, ...).
//
// # Mounting
//
// Add [Routes] to the server's talos.RouteTable (AttestOnly routes: the
// handler authorizes per method), wrap the mux with a talos.Attester,
// and mount the handler on "POST /rpc" and "POST /a2a/v1/rpc",
// [RPCHandler.Compat] on "POST /a2a/v1/{$}", and [CardHandler] on the
// public "GET /.well-known/agent-card.json" and "GET /.well-known/agent.json".
//
// # Execution
//
// An [Executor] runs each task in the background: [FuncExecutor] plugs a
// user's agent in, [MCPToolExecutor] maps a task onto a tool call of an
// MCP client session (the go-sdk), [ChatCompletionsExecutor] onto an
// OpenAI-compatible chat completion. States follow the contract;
// completed, failed, canceled and rejected are terminal, and no state
// changes out of them. Tasks are stored in a [TaskStore] with optimistic
// versions (compare-and-set on Version): [MemTaskStore] here,
// gateway/a2a/postgres on PostgreSQL, both passing gateway/a2a/a2atest.
// After a restart on a durable store, [RPCHandler.Recover] ends the tasks
// the previous process left running (failed, "interrupted by restart");
// stored tasks stay readable and subscribable.
//
// # Wire details
//
// Tasks carry "version":"1.0" (the v1 task schema requires it; four of
// the contract's own response vectors omit it) and metadata.version, the
// store version. SSE events are JSON-RPC responses whose result is a
// stream_response, with SSE ids "<task>:<version>"; every stream starts
// with the task's current state, so a client that reconnects (with
// SubscribeToTask) resumes from the present state. A SubscribeToTask
// with Last-Event-ID ("<task>:<version>") resumes exactly: at the
// current version no snapshot is sent again, only later changes; behind
// it, the current task, which holds every missed change (status and
// artifacts are cumulative); at a final version the stream ends empty. ListTasks pages are
// ordered by task id; nextPageToken is opaque ("" on the last page).
// The well-known card is the v1 card plus the compat profile, auth and
// x_talos (schemas/a2a/agent_card) and "signatures"; the v1 card schema
// admits neither, so GetExtendedAgentCard answers the unsigned v1 card.
//
// # Security
//
//   - Every request is HTTP-attested (mount behind a talos.Attester with
//     [Routes]); the principal is the attested key, never a header.
//   - Each call runs once through the talos.Kernel: one decision (the
//     method's first scope; further scopes are checked first and a denial
//     is the call's decision), rate limit, budget and one audit event with
//     the method name.
//   - Tasks are visible only to their owner, and to principals granted
//     a2a.list (reading: get, list, subscribe); any other task id answers
//     NOT_FOUND. Changes (cancel, push configuration) are the owner's only.
//   - Request bodies are parsed with contracts.CheckCaseFold and
//     contracts.UnmarshalFields: duplicate keys and keys equal under case
//     folding are refused.
//   - SSE streams end after StreamLimits.MaxDuration, after IdleTimeout
//     without an event, and when the capability no longer authorizes
//     (re-checked every Reauthorize).
//   - Push destinations: https only (unless AllowHTTP), no userinfo, and
//     the resolved address is checked in the dialer's Control hook, so DNS
//     rebinding cannot reach loopback, private or link-local addresses
//     unless explicitly allowed. No proxy, no redirects. Deliveries are
//     HTTP-attested with the server's key (opcode [PushDestinationOp]),
//     retried with doubling back-off a bounded number of times, and
//     reported to OnDelivery; [AuditDeliveries] appends one audit event
//     per delivery outcome (the destination's host only, never its path,
//     query, token or credentials). Credentials are never answered back.
//     Push configurations live in a [PushConfigStore]: memory, or
//     gateway/a2a/postgres's TaskStore (a2atest.TestPushConfigStore).
//   - Agent cards are signed as the A2A spec's AgentCardSignature: a
//     detached JWS (alg EdDSA, kid the did:key) over the RFC 8785 card
//     without "signatures"; [VerifyAgentCard] checks a remote card against
//     the did:key expected out of band.
//   - [AdminList] lists the relay's sessions and groups to operators
//     (GET /v1/admin/a2a/sessions[/{id}], /v1/admin/a2a/groups[/{id}],
//     behind the caller's admin.a2a grant): metadata, frame and event
//     counts, and chain_verified, the event chain recomputed from the
//     genesis up to the head the store holds. Frames, ratchet state and
//     payloads are never listed. The store must be a [Lister] (MemStore
//     and gateway/a2a/postgres's Store are; a2atest.Run checks both).
package a2a
