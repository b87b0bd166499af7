// Package admin is a gateway's administration surface: the principal
// registry (who may sign attested requests, and in which team), RBAC roles
// and bindings, key and team budgets, and capability issue, delegation
// checks and revocation. A [Handler] serves the API and holds the state;
// a [Store] persists it ([FileStore] in one file, gateway/admin/postgres
// shared by replicas; both pass gateway/admin/admintest).
//
// # Routes
//
// [Handler.Register] mounts, each behind [Config].Authenticate:
//
//	POST   /v1/capabilities               issue a capability ([IssueRequest] → [TokenResponse], 201)
//	POST   /v1/capabilities/delegations   check a delegation chain against the issuer ([DelegationRequest])
//	POST   /v1/capabilities/revocations   revoke by capability_hash or nonce ([RevokeRequest])
//	PUT    /v1/rbac/roles/{id}            put a role ([RoleRequest])
//	PUT    /v1/rbac/bindings/{id}         bind a principal to a role in a scope ([BindingRequest])
//	PUT    /v1/principals/{did}           register an agent's did:key in a team ([PrincipalRequest] → [Principal])
//	GET    /v1/principals/{did}           read a registration
//	DELETE /v1/principals/{did}           unregister
//	PUT    /v1/budgets/{scope}            set the budget of key:<did> or team:<id> ([BudgetRequest])
//	GET    /v1/budgets/{scope}            limit, used, reserved and remaining USD in the current period
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
//   - Every route is behind Config.Authenticate; the package has no
//     credential of its own; [Bootstrap] makes a first one (a hash-only
//     bearer credential, checked with [CheckBootstrap]), which
//     examples/server uses.
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
