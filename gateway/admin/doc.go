// Package admin is a gateway's administration surface: the principal
// registry (who may sign attested requests, and in which team), RBAC roles
// and bindings, key and team budgets, capability issue, delegation checks
// and revocation, and its own admin identities, roles and sessions. A [Handler] serves the API and holds the state;
// a [Store] persists it ([FileStore] in one file, gateway/admin/postgres
// shared by replicas; both pass gateway/admin/admintest).
//
// # Admin identities and authentication
//
// Admins are did:key identities (not agent principals) with a built-in
// role: owner (every admin tool, read and write), operator (every tool,
// but only read on admin.admins and admin.secrets), auditor (read
// admin.audit and admin.stats) and viewer (read every tool but
// admin.audit and admin.secrets). A role is a set of capability grants
// (tool, action) over the admin tools ([Tools]), compiled with
// capability.RBAC. [Handler.Require] puts a route behind a declared
// (tool, action): it accepts an HTTP-attested request (the X-Talos-*
// headers, opcode "admin", verified against the identity's did:key with
// the shared nonce store) or "Authorization: Bearer talos_session_..." of
// a live session, answers 401 AUTH_INVALID otherwise and 403 RBAC_DENIED
// when the role lacks the grant. A route with an unknown tool or action
// denies everyone. [Handler.RequireTool] takes the action from the method
// (GET reads, the rest write).
//
// # Routes
//
// [Handler.Register] mounts ([Handler.Routes] lists them with their
// grants):
//
//	POST   /v1/admin/bootstrap            create an owner with the bootstrap or recovery credential ([BootstrapRequest], 201)
//	GET    /v1/admin/whoami               the caller's DID, role, auth_mode and permissions (any admin)
//	POST   /v1/admin/sessions             mint a session (attested only; [SessionRequest] → [SessionResponse], 201)
//	DELETE /v1/admin/sessions/current     revoke the presented session
//	GET    /v1/admin/identities           admin identities (admin.admins read)
//	GET|PUT|DELETE /v1/admin/identities/{did}  one identity; PUT {"role":...} (admin.admins)
//	POST   /v1/capabilities               issue a capability ([IssueRequest] → [TokenResponse], 201; recorded)
//	GET    /v1/capabilities               issued capabilities, ?subject=&revoked= ([IssuedCapability], never the token)
//	GET    /v1/capabilities/{hash}        one issued capability
//	POST   /v1/capabilities/delegations   check a delegation chain against the issuer ([DelegationRequest])
//	POST   /v1/capabilities/revocations   revoke by capability_hash or nonce ([RevokeRequest])
//	GET    /v1/capabilities/revocations   recorded revocations ([Revocation])
//	GET    /v1/rbac/roles, /v1/rbac/roles/{id}        roles ([RoleView])
//	PUT    /v1/rbac/roles/{id}            put a role ([RoleRequest])
//	GET    /v1/rbac/bindings, /v1/rbac/bindings/{id}  bindings, ?principal_id=&role_id= ([BindingView])
//	PUT    /v1/rbac/bindings/{id}         bind a principal to a role in a scope ([BindingRequest])
//	GET    /v1/principals                 registered agents, ?team= ([Principal])
//	PUT    /v1/principals/{did}           register an agent's did:key in a team ([PrincipalRequest] → [Principal])
//	GET    /v1/principals/{did}           read a registration
//	DELETE /v1/principals/{did}           unregister
//	GET    /v1/budgets                    budgets with live usage ([BudgetView])
//	PUT    /v1/budgets/{scope}            set the budget of key:<did> or team:<id> ([BudgetRequest])
//	GET    /v1/budgets/{scope}            limit, used, reserved and remaining USD in the current period
//
// Every list takes ?limit= (1 to 500, default 100) and ?cursor= (the
// opaque next_cursor of the previous page) and answers {"items": [...],
// "next_cursor": "..."} ([List]), next_cursor omitted on the last page,
// sorted by a stable key; a bad limit, cursor or unknown query parameter
// is TALOS_INVALID_INPUT.
//
// # Bootstrap and recovery
//
// [Bootstrap] makes the bootstrap credential (talos_admin_..., hash-only,
// in a sealed [BootstrapStore]); POST /v1/admin/bootstrap accepts it only
// while no owner exists, and the first success spends it (a marker
// created once across replicas), after which it answers 401. Recovery:
// `talos admin recover` writes [RecoveryFileName] in the data directory
// ([WriteRecoveryFile]: the credential's SHA-256 and created_at under an
// HMAC keyed by [RecoveryKey] of the master key); the server accepts that
// credential even if owners exist, when [CheckRecoveryFile] admits it
// (MAC, less than [RecoveryMaxAge] old), and deletes the file first, so
// it is used once. testdata/admin-recovery-v1.json is the format's test
// vector.
//
// # Sessions
//
// A session is 32 random bytes, talos_session_ and base64url, of which
// only the SHA-256 is stored (in the Store, so every replica sharing it
// accepts it), with its admin's DID, its role (the admin's or a narrower
// one), and an expiry (60 s to 8 h, default 15 min). A session acts with
// at most what its identity's current role grants: deleting or demoting
// the identity ends or narrows it at once. Identities and sessions are
// read from the Store on each request.
//
// # Replicas
//
// [Handler.Reload] re-reads every document and swaps the registry,
// policy and budgets at once (a failure keeps the old state); every
// applied change calls [Config].OnChange with its kind, for the hook that
// tells other replicas to reload.
//
// Bodies are read strictly (at most 64 KiB; duplicate, unknown, mis-cased
// or case-folded keys, null and floats refused) and every error is the
// contract error body of talos.WriteError.
//
// # Wiring
//
// The rest of the gateway uses the Handler's state: [Handler.Principals]
// is the identity.KeyResolver of the talos.Attester (only registered keys
// verify) and, through [Registry.Registered] or [Registry.FromContext],
// gives handlers the caller's registration; [Policy.Authorizer] wraps the
// capability.Verifier given to the talos.Kernel so that RBAC bindings
// narrow what capabilities allow; [Budgets.Reservation] builds the
// talos.Call budget reservation of a principal's key and team budgets.
//
// # Security
//
//   - Every route but the bootstrap route is behind [Handler.Require];
//     the bootstrap credential creates the first owner and nothing else.
//   - Every admin action is audited (surface "admin") with the acting
//     admin's DID as principal_id (auth_mode "signed" for an attested
//     request, "bearer" for a session, as the audit event schema has it;
//     meta.admin_auth_mode says "attested" or "session"); the bootstrap
//     event has meta.via "bootstrap" or "recovery".
//   - A change is validated, then stored, then applied, then audited:
//     invalid input changes nothing; a store failure changes nothing; an
//     audit failure is answered as a failure (the change is applied).
//   - An unregistered key id does not authenticate; a registry whose
//     store does not answer denies (retryable INTERNAL).
//   - On a shared store a replica trusts its cached registration for at
//     most [PrincipalCacheTTL] (a deletion elsewhere takes that long).
//   - The file store is for one process; stored documents are not secret
//     (principals, roles, budgets), and nothing is logged.
package admin
