// Package secrets keeps a gateway's secrets sealed at rest and rotates the
// keys that seal them.
//
// A [Vault] holds two levels of keys. The master key (32 bytes, supplied by
// the operator: an environment variable, a KMS, a key file) seals the
// key-encryption keys (KEKs), stored as records "kek/<id>"; the newest KEK
// seals every secret, each with associated data "talos.secret.v1:<id>"
// (identity.Keyring envelopes, contract secrets/envelope.v1, AES-256-GCM).
// [Vault.Rotate] adds a KEK and rewraps every secret under it; the old KEKs
// stay loaded, so an envelope read just before a rewrap still opens: no read
// fails during a rotation. A replica that meets an envelope under a KEK it
// has not loaded yet reloads the KEK records first. After a complete
// rotation, KEKs older than the newest four that no envelope names are
// retired.
//
// The envelopes live in a [Store]: [FileStore] (one JSON file, rewritten
// atomically) for a single process, gateway/secrets/postgres for replicas
// sharing PostgreSQL (its rotation lock is an advisory lock, so one replica
// rotates at a time). Both pass the conformance suite in
// gateway/secrets/secretstest.
//
// # Security properties
//
//   - Stores see only envelopes, never plaintext or key material; a secret
//     moved to another id does not open (the id is in the associated data).
//   - Plaintext is returned only by [Vault.Get]; [Config.OnReveal] sees it
//     first, so a caller can register it with a trace or log redactor.
//   - Errors and log records name secret ids and KEK ids, never values or
//     keys. A wrong master key is one error naming no key.
//   - Back-end failures are errors (code INTERNAL, retryable): nothing is
//     guessed or served from a stale copy.
//   - The master key protects copies of the store made without it; whoever
//     holds both the store and the master key reads every secret.
//
// # Concurrency
//
// A Vault and the stores of this package are safe for concurrent use.
// Rotation holds the store's rotation lock and never blocks readers.
// Scheduled rotation ([Vault.RotateEvery], [Vault.RotateIfDue]) decides
// under that lock from the primary KEK's age by the store's clock
// ([Store.Age]), so every process sharing a store rotates once per interval
// between them; [Vault.Rotate] (the operator's) always rotates.
//
// # Compatibility
//
// The envelope format is contract secrets/envelope.v1; the file format is
// "talos-server-secrets-v1" and the PostgreSQL table layout is documented in
// gateway/secrets/postgres. Both are those examples/server used before this
// package existed, so existing data directories and tables open unchanged.
package secrets
