// Package auditapi serves a Talos audit log over HTTP: signed checkpoints,
// inclusion and consistency proofs, event queries, entries, evidence
// bundles, and the log as C2SP tlog-tiles under /tlog/ for every store.
//
// Build a [Handler] from an audit.Log and its Store with [New], mount it
// with [Handler.Register] (the routes are listed there), and run
// [Handler.Publisher] so that the store's checkpoint (the tile clients'
// tree head) follows the log: publish once at start, every interval while
// the log grows, and at shutdown before the store closes.
//
// [Stream] serves the live audit stream, GET /v1/audit/stream, as
// Server-Sent Events: new events in log order from the shared store (so
// events appended on any replica appear), resumable without gap or
// duplicate from the cursor in Last-Event-ID (or ?after=), filtered by
// surface, principal_id and outcome, with a ": ping" comment every 15 s.
// Every subscriber holds at most one chunk of entries, and one that does
// not take a write within StreamConfig.WriteTimeout is disconnected; one
// shared poller reads the store's size while anyone listens and stops with
// the last subscriber. Streams end on client disconnect, on [Stream.Close]
// and when StreamConfig.Draining reports the server is shutting down.
//
// The tiles are audit/file's own Store.Handler when the store is the file
// store, and audit.NewTileHandler (the same bytes and headers, tested
// against it) for any other store, PostgreSQL and memory included.
//
// # Security properties
//
//   - One privacy rule. Checkpoints, hash tiles and proofs are public: they
//     reveal hashes only, and anyone holding the log's verifier key checks
//     the log's growth and the inclusion of a hash it holds. Entry bytes
//     name principals, tools and costs: events, entries, evidence bundles,
//     entry bundles (/tlog/tile/entries/...) and the entry_b64u of
//     inclusion proofs go only to requests Config.IsReader admits, unless
//     Config.Public. Refusals are 401 AUTH_INVALID with WWW-Authenticate.
//   - Entry bundles are sent with Cache-Control private unless the log is
//     public, so no shared cache keeps them.
//   - The entry rule reads the path the tile handler serves; escaped paths
//     (tile%2Fentries/...) are refused, so no spelling of a path slips past
//     it, and only C2SP tile paths and the checkpoint are served (never a
//     journal or lock file).
//   - GET /v1/audit/checkpoint never writes: a size already signed is
//     served from memory, a new size is signed once (audit.Log.CheckpointAt),
//     so anonymous callers cannot make the server write.
//   - Query parameters are parsed strictly (unsigned integers, RFC 3339,
//     limit 1–1000, bundles of at most MaxBundleEvents); every refusal is
//     the contract error body, and store failures are INTERNAL.
//
// # Concurrency
//
// A Handler is safe for concurrent use.
package auditapi
