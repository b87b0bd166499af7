// Package ratchet implements forward-secret agent channels: prekey
// bundles, the Double Ratchet of the Talos contracts v1.1.0, sealed session
// state, channels over pluggable transports, A2A encrypted frames and
// group messaging.
//
// # Model
//
// A responder publishes a [PrekeyBundle] (made by [GeneratePrekey]). An
// initiator calls [Initiate] with it and can send at once; the responder
// calls [Accept] with its [Prekey] and is initialized by the first message.
// Both then exchange messages with [Session.Encrypt] and [Session.Decrypt].
//
// The wire format is the contract's, exactly: X25519, HKDF-SHA256 with no
// salt (KDF_RK over rk ‖ dh with info "talos-double-ratchet-root", KDF_CK as
// two HKDFs with infos "talos-double-ratchet-message" and
// "talos-double-ratchet-chain"), ChaCha20-Poly1305 with a random 12-byte
// nonce, AAD = the canonical header {"dh","n","pn"}, and the canonical
// envelope {"ciphertext","header","nonce"} with unpadded base64url fields.
//
// # Security properties
//
// Forward secrecy and post-compromise security are those of the Double
// Ratchet. On top of the reference implementation, and without changing the
// wire:
//
//   - Decrypt is transactional: it works on a copy of the state and commits
//     only after the AEAD opens, so forged, corrupted or replayed messages
//     change nothing. Authentication failures all return the same
//     [ErrAuthFailed], without detail.
//   - One header may skip at most [MaxSkip] keys per chain, and the total
//     skipped-key store is bounded (Config.MaxSkippedKeys, default
//     [DefaultMaxSkippedKeys]); the oldest keys are evicted.
//   - Header counters must fit uint32; an all-zero X25519 result is rejected
//     with [ErrInvalidDHKey].
//   - Only the canonical envelope is accepted, so one message has one
//     encoding.
//
// Contract-only setup does NOT authenticate the initiator: the first
// message carries only an ephemeral key, and identity keys take no part in
// key agreement, so anyone holding a responder's bundle can open a session
// that the responder cannot attribute. Authenticate the initiator outside
// the ratchet, or use the setup-proof extension ([InitiateAuthenticated],
// [AcceptAuthenticated]), in which the initiator signs its ephemeral key
// and the bundle's prekey with its identity wallet.
//
// # Concurrency
//
// A [Session] is single-owner: callers serialize its methods. A [Prekey] is
// immutable and safe for concurrent use.
//
// # Compatibility
//
// Envelopes and bundles follow contract v1.1.0 and interoperate with its
// traces byte for byte. The serialized session state is a library-private,
// versioned format that is only ever stored sealed.
package ratchet
