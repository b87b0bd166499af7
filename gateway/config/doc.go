// Package config serves versioned, schema-checked configuration documents
// (budgets, routing policies, or kinds a gateway registers) over HTTP.
//
// A [Service] validates each PUT (the library's canonical-JSON input rules,
// the contract schema when the library embeds it, then a strict typed
// check: unknown, mis-cased and case-folded duplicate fields are refused)
// and stores the RFC 8785 canonical form as the next version, with its
// SHA-256 as digest and ETag. An identical document, whatever its
// whitespace or member order, adds no version. Versions are dense and
// immutable; GET serves the latest, one version, or a page of the list.
// [Service.Register] documents the routes.
//
// Versions live in a [Store]: [MemStore], [FileStore] (one fsynced JSON
// line per version, replayed at start; a torn last line is cut off, other
// damage refused) and gateway/config/postgres (replicas sharing
// PostgreSQL; writers of one document serialized by an advisory lock, reads
// through an optional replica). All pass gateway/config/configtest.
//
// # Auditing
//
// Config.OnChange runs inside the store's write: when it fails, the version
// is not stored and the PUT fails. [AuditHook] makes it append an audit
// event naming the kind, name, version, digest and previous digest, so no
// change exists without its event.
//
// # Security properties
//
//   - Every route is behind the auth wrapper given to Register; there is no
//     anonymous access.
//   - Bodies are bounded (MaxBody), names are [a-z0-9][a-z0-9._-]{0,63},
//     and every refusal is a *contracts.Error in the contract error body:
//     TALOS_INVALID_INPUT, SCHEMA_VALIDATION_ERROR, NOT_FOUND; a failing
//     store or hook is INTERNAL ("internal error" to the client), and
//     nothing is stored.
//   - Documents are stored canonical and re-checked against their digest
//     when the file store is replayed.
//
// # Concurrency
//
// A Service and the stores are safe for concurrent use; concurrent PUTs of
// one document produce dense versions, also across processes on PostgreSQL.
//
// # Listing
//
// GET /v1/config?limit=&cursor= lists the stored documents (kind, name,
// latest_version, digest, updated_at), sorted by kind then name in byte
// order, with an opaque cursor; the store must be a [Lister] (MemStore,
// FileStore and config/postgres's Store are; configtest.Run checks it).
//
// # Compatibility
//
// The file format (config-versions.jsonl lines of [Version]) and the
// PostgreSQL table (<prefix>config_versions) are those examples/server used
// before this package, so existing data opens unchanged.
package config
