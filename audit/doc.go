// Package audit is the verifiable audit log of Talos: contract audit events,
// an RFC 6962 Merkle log with signed checkpoints and proofs, and the
// hash-chain helpers of the A2A and TGA contracts.
//
// # Hash chains
//
// [ChainDigest], [Chain] and [VerifyChain] implement the one digest rule
// shared by A2A session and group events (event_digest, previous_digest)
// and the TGA execution log (entry_digest, prev_entry_digest):
// digest = SHA-256(RFC 8785 canonical JSON of the object without its digest
// field), with the link to the previous object inside the preimage.
// [VerifyArtifactChain] checks the TGA artifact trace ActionRequest →
// SupervisorDecision → ToolCall → ToolEffect, and [ExecutionMachine] the
// TGA execution state machine with the STATE_* error codes.
//
// # Security properties
//
// Chain verification recomputes every digest from the received bytes after
// rejecting duplicate keys, lone surrogates and integers beyond ±(2^53−1),
// so two parsers cannot disagree on what was hashed. Failed verification
// leaves a [Chain] unchanged.
//
// # Concurrency
//
// [Chain] and [ExecutionMachine] are single-owner values.
//
// # Compatibility
//
// Digests match the contracts' vectors (tga/golden_trace_chain.json,
// tga/state_transition_vectors.json). TGA digests are written in hex by
// default (the reference vectors) and accepted in hex or base64url (the v1
// schemas).
package audit
