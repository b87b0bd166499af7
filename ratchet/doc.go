// Package ratchet implements forward-secret agent channels: prekey
// bundles, the Double Ratchet of the Talos contracts v1.1.0, sealed session
// state and its stores, channels over pluggable transports, A2A encrypted
// frames and group messaging.
//
// # Model
//
// A responder publishes a [PrekeyBundle] (made by [GeneratePrekey]). An
// initiator calls [Initiate] with it and can send at once; the responder
// calls [Accept] with its [Prekey] and is initialized by the first message.
// Both then exchange messages with [Session.Encrypt] and [Session.Decrypt].
//
// The wire format is the contract's, exactly: X25519; HKDF-SHA256 without
// salt (initial root key HKDF(DH(EK, SPK), "x3dh-init"); KDF_RK over
// rk ‖ dh with info "talos-double-ratchet-root"; KDF_CK as two HKDFs with
// infos "talos-double-ratchet-message" and "talos-double-ratchet-chain");
// ChaCha20-Poly1305 with a random 12-byte nonce; AAD = the canonical header
// {"dh","n","pn"}; and the canonical envelope {"ciphertext","header","nonce"}
// with unpadded base64url fields. The prekey signature is Ed25519 by the
// identity key over the raw 32 prekey bytes.
//
// Around sessions:
//
//   - [Session.MarshalSealed] / [UnmarshalSealed] store state sealed by a
//     [Sealer] (an *identity.Keyring), bound to caller-chosen associated
//     data; [SessionStore] (with [MemStore], ratchet/postgres, and the
//     ratchettest conformance suite) saves it with optimistic concurrency
//     ([ErrConflict]); [LoadSession] and [SaveSession] bind the store id
//     into the seal.
//   - [Channel] is the package's interface: [SessionChannel] runs one
//     session over a [Transport] ([NewMemPipe] in memory), drops duplicates
//     and forgeries, delivers out-of-order messages, and can persist after
//     every message.
//   - [Frame] is the contract's A2A encrypted frame (header_b64u,
//     ciphertext_b64u = b64u(nonce ‖ ct), ciphertext_hash = hex sha256(ct),
//     frame_digest over the JCS preimage); [SeqTracker] applies the
//     receiver-side sender_seq rules (identical resend idempotent, reuse is
//     a replay, more than [MaxSeqAhead] ahead is refused).
//   - [Group] adds group messaging, which the contract lacks: sender keys
//     distributed over pairwise sessions, Ed25519-signed member messages,
//     hash-chained contract group_events, and sender-key rotation on every
//     removal. A group's state seals like a session's
//     ([Group.MarshalSealed], [UnmarshalGroupSealed]), and [GroupChannel]
//     makes a group a [Channel] over a broadcast transport.
//
// # Security properties
//
// Forward secrecy and post-compromise security are those of the Double
// Ratchet. On top of the reference implementation, and without changing the
// wire:
//
//   - Decrypt is transactional: it works on a copy of the state and commits
//     only after the AEAD opens, so forged, corrupted or replayed messages
//     change nothing (a property test feeds 10,000 forgeries). All
//     authentication failures return the same [ErrAuthFailed], without
//     detail. Messages on a chain the session has already stepped past are
//     rejected before any DH work.
//   - One header may skip at most [MaxSkip] keys per chain, and the total
//     skipped-key store is bounded (Config.MaxSkippedKeys, default
//     [DefaultMaxSkippedKeys]); the oldest keys are evicted.
//   - Beyond the skipped-key caps, libsignal's bounds: skipped keys are
//     kept for at most [MaxReceivingChains] chains, one message may make
//     the receiver derive at most [MaxForwardJump] keys even across a DH
//     step, and a [Record] keeps at most [MaxArchivedSessions] earlier
//     sessions with a peer.
//   - Header counters must fit uint32; an all-zero X25519 result is rejected
//     with [ErrInvalidDHKey].
//   - Only the canonical envelope is accepted, so one message has exactly
//     one encoding.
//   - State is never exported unsealed. [Session], [Prekey] and [Group]
//     redact in String, GoString, Format (every fmt verb: %v, %+v, %d, %x,
//     ...) and LogValue, and encoding/json sees no field of theirs. Their
//     keys sit two pointers away from the value, so even a *Session held in
//     an unexported field of another struct prints as an address for every
//     verb (fmt calls no method through unexported fields).
//
// Contract-only setup does NOT authenticate the initiator. The first
// message carries only an ephemeral key and identity keys take no part in
// key agreement, so anyone holding a responder's bundle can open a session
// that the responder cannot attribute to anyone. Authenticate the initiator
// outside the ratchet, or use the setup-proof extension
// ([InitiateAuthenticated], [AcceptAuthenticated]): the initiator signs its
// ephemeral key together with the bundle's prekey and identity key using its
// identity wallet, and the responder checks it against the initiator it
// expects before accepting, then binds the session to that ephemeral key.
// Even then, the protocol does not provide deniability-style or mutual
// key-agreement authentication: the binding is a signature, not a DH.
//
// Frame created_at, and the nonce inside ciphertext_b64u, are not covered
// by frame_digest (contract); a changed nonce still fails the AEAD, but
// created_at is unauthenticated.
//
// # Hybrid setup
//
// [GenerateHybridPrekey] makes a prekey whose bundle also carries an
// ML-KEM-768 encapsulation key (crypto/mlkem) signed by the identity key
// (members pq_prekey, pq_prekey_signature; extra members the contract
// schema allows). [InitiateHybrid] negotiates: with such a bundle it
// encapsulates to the key and mixes the KEM secret with the X25519 output
// into the first root key (Signal's PQXDH, revision 3, adapted to the
// contract's single-DH setup), returning a [HybridSetup] with the KEM
// ciphertext to send beside the first message; with a contract bundle it
// runs the contract setup. [AcceptHybrid] is the responder's side; a nil
// setup is the contract setup. Messages are the contract's wire either way.
//
// Downgrade: stripping the extension from a bundle is detected by a hybrid
// initiator because the bundle's signed prekey itself is committed to it
// (the leading 12 bits of SHA-256("talos.ratchet.pqxdh.v1.commit\n" ‖ SPK)
// are zero, found by drawing about 4,096 X25519 keys): the contract
// signature covers the prekey, so the commitment cannot be removed or added
// by anyone but the identity key's owner, and InitiateHybrid returns
// [ErrDowngrade] for a committed prekey without its ML-KEM key. A peer
// without the extension ignores the mark. Stripping or altering the setup
// data makes the first message fail to decrypt; nothing falls back
// silently. A third-party prekey carries the mark by chance with
// probability 2^-12, and a hybrid initiator then refuses it; [Initiate]
// still talks to it. Like the contract setup, the hybrid setup does not
// authenticate the initiator.
//
// # Header encryption
//
// With Config.HeaderEncryption on both sides of a hybrid setup, a session
// uses the Double Ratchet's header-encrypted variant (Signal's
// specification, section 4): headers are sealed under header keys derived
// from the root KDF (HKs, HKr, NHKs, NHKr), so a relay, such as the A2A
// server carrying [Frame]s, sees no ratchet key and no counter. The request
// is part of the setup data and of the key derivation, so adding or
// removing it on the way makes the first message fail; a responder that
// requires it refuses setup data without it ([ErrDowngrade]). The receiver
// tries at most one header key per kept chain ([MaxReceivingChains]) plus
// its current and next ones, and stays transactional. Such sessions
// exchange a library-private envelope ([Session.HeaderEncrypted]); peers
// that did not negotiate it never see one.
//
// # Concurrency
//
// A [Session] is single-owner: callers serialize its methods (a
// [SessionChannel] does). [Prekey], [MemStore], [SessionChannel],
// [SeqTracker] and [Group] are safe for concurrent use.
//
// # Compatibility
//
// Envelopes, bundles, frames and group events follow the contracts v1.1.0
// and interoperate with their traces byte for byte; a hybrid bundle is a
// contract bundle with two extra members. The sealed state formats
// (sessions v1 and v2, prekeys v1 and v2, records), the setup proof, the
// hybrid setup data, the header-encrypted envelope, and the group control
// and message formats are library-private extensions, each versioned.
// [ParseBundleLegacy] reads bundles as the Python SDK writes them (padded
// standard base64); [ParseBundle] never does.
package ratchet
