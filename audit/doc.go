// Package audit is the verifiable audit log of Talos: contract audit
// events, an append-only RFC 6962 Merkle log with C2SP signed checkpoints,
// inclusion and consistency proofs, witnesses, evidence bundles, and the
// hash-chain helpers of the A2A and TGA contracts.
//
// # Model
//
// An [Event] is the contract talos.audit_event v1 with its self-hash
// event_hash = hex(sha256(RFC 8785 canonical JSON of the event without
// event_hash)). An [EventBuilder] makes one from an *http.Request and a
// [Decision] (principal, surface id, template path, status): the client IP
// becomes client_ip_hash = HMAC-SHA256 over its canonical text (net/netip),
// and meta is filtered by a per-surface allowlist with the normative
// redaction markers. A [Redactor] can further drop, HMAC or truncate fields
// before an event is hashed.
//
// A [Log] seals events and appends their canonical bytes as the leaves of
// an RFC 6962 tree (golang.org/x/mod/sumdb/tlog) kept by a [Store]: the
// in-memory [MemStore], the durable file store in audit/file (the C2SP
// tlog-tiles layout, servable by any static file server), or PostgreSQL in
// audit/postgres for logs shared by several processes. Appends are
// group-committed: callers that arrive while a commit runs join one group,
// written with one durable store write; the first caller commits inline,
// and groups that form behind it are committed in order by a goroutine
// that exits when none is queued. A [Receipt] is returned only once its
// entry is durable, and no caller waits for groups after its own.
// [Log.Checkpoint] signs a C2SP tlog-checkpoint note (origin, size, root)
// with an Ed25519 key, typically an identity.Wallet's Signer through
// [NewNoteSigner]. [Log.InclusionProof] and [Log.ConsistencyProof] prove
// membership and append-only growth. [NewTileHandler] serves any Store as
// a C2SP tlog-tiles HTTP endpoint (the file store's own Handler serves its
// directory under the same rules).
//
// The chaining lives beside the events, never inside the hashed object, so
// events stay byte-for-byte the contract's. The Merkle log, checkpoints and
// proofs are an extension: the contracts define only the self-hash.
//
// # Verification with only the public key
//
// [VerifyCheckpoint] (or [OpenCheckpoint]), [VerifyInclusion],
// [VerifyConsistency] and [VerifyBundle] need nothing but the log's
// verifier key ([VerifierKey]). An [EvidenceBundle] carries a range of
// events with inclusion proofs and a checkpoint and verifies offline.
//
// # Witnesses and split views
//
// An [Anchor] publishes checkpoints outside the log's control. The built-in
// [Witness] cosigns (C2SP tlog-cosignature/v1, Ed25519) only checkpoints
// consistent with the last one it cosigned, refuses and records a fork as a
// [SplitViewError], and serves the C2SP tlog-witness add-checkpoint endpoint
// ([Witness.Handler]); [HTTPAnchor] is its client. [DetectSplitView]
// compares two checkpoints of one log.
//
// # Hash chains
//
// [ChainDigest], [Chain] and [VerifyChain] implement the one digest rule
// shared by A2A session and group events (event_digest, previous_digest)
// and the TGA execution log (entry_digest, prev_entry_digest): digest =
// SHA-256 of the canonical JSON of the object without its digest field,
// with the link to the previous object inside the preimage.
// [VerifyArtifactChain] checks the TGA artifact trace ActionRequest →
// SupervisorDecision → ToolCall → ToolEffect, and [ExecutionMachine] the
// TGA execution state machine with the STATE_* error codes.
//
// # Security properties
//
//   - Every parser of outside bytes (events, checkpoints, cosignatures,
//     witness requests, bundles, chain objects) is bounded by limits.go,
//     rejects duplicate keys, lone surrogates and unsafe integers, and
//     returns a *contracts.Error.
//   - A Log refuses a store whose entries do not match its signed
//     checkpoint; [Log.Verify] recomputes the whole tree.
//   - [Log.AppendEntry] stores an outside event only after ParseEvent's
//     checks: its fast path reads a canonically encoded event in one pass,
//     validates it once and re-seals it, and takes it only if the seal
//     reproduces the input byte for byte (which proves both the value read
//     and its event_hash); every other input goes through [ParseEvent].
//   - Redaction happens before hashing: redacted values never reach the
//     stored bytes, proofs or checkpoints.
//   - Store failures are errors (INTERNAL), never "not found"; callers
//     deny by default.
//   - The IP hash key and redaction key are never logged or returned.
//
// # Concurrency
//
// [Log], [MemStore], [EventBuilder], [Redactor] and [Witness] are safe for
// concurrent use. [Chain] and [ExecutionMachine] are single-owner values.
//
// # Compatibility
//
// Events, event hashes and IP hashes match test_vectors/audit_event_vectors.json
// (its failure_meta_filtered case drops a key without the markers that the
// normative case adds; [MarkersNone] reproduces it). Chain digests match
// tga/golden_trace_chain.json and tga/state_transition_vectors.json. TGA
// digests are written in hex by default (the reference vectors) and
// accepted in hex or base64url (the v1 schemas). Checkpoints, cosignatures,
// witness requests and the file layout follow C2SP tlog-checkpoint,
// tlog-cosignature, tlog-witness and tlog-tiles, so standard verifiers,
// witnesses and tile clients work with the log.
package audit
