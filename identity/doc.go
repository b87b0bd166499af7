// Package identity holds who an agent is in Talos: Ed25519 wallets and
// their did:key identifiers, DID resolution, HTTP request attestation v1,
// single-use nonces and a keyring of key-encryption keys for secret
// envelopes.
//
// # Model
//
// A [Wallet] is an Ed25519 key pair (the 32-byte seed is the private key,
// RFC 8032) with a name. Its public identity is a [DID], the did:key form
//
//	did:key:z + base58btc(0xED 0x01 || public key)
//
// and its [Wallet.Address] is the lowercase hex SHA-256 of the public key.
// [Verify] checks a signature against a raw public key and never panics.
//
// A [Resolver] turns a DID into a [Document]: [DIDKeyResolver] (local),
// [WebResolver] (did:web over HTTPS, bounded and cached) and
// [MultiResolver] (per method). A [KeyResolver] turns a key id into an
// Ed25519 key: [DIDKeys] over a Resolver, or [StaticKeys].
//
// HTTP request attestation v1 (Talos contracts, crypto/http_attestation):
// an [AttestationSigner] sets X-Talos-Key-ID, -Timestamp, -Nonce,
// -Signature, -Sig-Alg and -Sig-Version on a request; an
// [AttestationVerifier] checks them against the server-derived opcode of
// the route and returns an [Attestation] naming the verified key and DID.
// The signing input is
//
//	canonical JSON body \n METHOD \n raw path?query \n nonce \n timestamp \n opcode
//
// A [NonceStore] remembers used nonces; [MemNonceStore] is bounded.
//
// A [Keyring] holds AES-256-GCM key-encryption keys with ids and a primary,
// seals secrets into the contract secrets/envelope.v1 JSON, opens that and
// the hex envelope form, and rewraps after rotation.
//
// # Security properties
//
//   - A wallet's seed never appears in String, GoString, any fmt verb (also
//     when a Wallet value is printed inside another struct), LogValue or
//     MarshalJSON; the only serialization is [Wallet.MarshalPrivateText]
//     ("talos-wallet-seed:" + base64url), which is deliberately not
//     encoding.TextMarshaler. Wallets compare in constant time with
//     [Wallet.Equal] and cannot be compared with ==. Keyring KEKs are never
//     printed either; the raw KEK is not even retained after Add.
//   - [ParseDID] accepts exactly one encoding of each key: it rejects other
//     multicodecs, non-base58 characters, wrong lengths, trailing data and DID
//     URL suffixes, so ParseDID(s) succeeding implies String() == s.
//   - Attestation: header format is checked before any cryptography
//     (SCHEMA_VALIDATION_ERROR); the timestamp must be within ±60 s, and the
//     key, opcode, body and signature must all check out (AUTH_INVALID); only
//     then is the nonce claimed (REPLAY_DETECTED), so unauthenticated
//     requests cannot fill or probe the nonce store. The replay key is the
//     verified public key and the nonce: the key id is not covered by the
//     signature, so a replay under another id of the same key is still a
//     replay. A nonce store or key resolver that fails denies the request.
//     Bodies are bounded ([DefaultMaxAttestedBody]) and JSON bodies with
//     duplicate keys are rejected. Like the contract, attestation v1 does
//     not bind the host, scheme or key id: share nonce stores between
//     gateways that share keys.
//   - [MemNonceStore] never forgets an unexpired nonce to make room: when
//     full of live nonces it denies ([ErrNonceStoreFull]). So that one
//     principal cannot fill it and deny everyone else, claims made through
//     [ClaimNonce] (the AttestationVerifier's, accounted to the verified
//     key's DID) are rate-limited per principal and capped at
//     MaxPerPrincipal live keys (by default 1/16 of the store); a principal
//     over either limit alone is denied with RATE_LIMITED
//     ([ErrNonceRateLimited]). Replays are answered before any quota is
//     charged, so replaying a victim's requests cannot use up its quota.
//     Expired keys are forgotten oldest first. Filling the store still
//     takes 16 principals at their cap: with keys anyone can mint
//     (DIDKeys), size the store and the limits for that, or use a shared
//     store with its own limits.
//   - An unknown key id and a bad signature are one AUTH_INVALID error,
//     "signature not verified", with the same message and status, after
//     the same body and signature work (an unknown key is checked against
//     a placeholder key), so responses reveal no registrations. The reason
//     stays available to the server: errors.Is(err, [ErrUnknownKeyID]) or
//     [ErrBadSignature].
//   - [Keyring.Open] returns one opaque [ErrEnvelopeOpen] for every
//     decryption or authentication failure; the AAD is always the caller's
//     (an envelope's aad_b64u must match it). Each KEK seals at most 2^32
//     messages per process.
//   - [WebResolver] fetches only https://<domain>[:port]/<segments>/did.json
//     with unreserved path characters, follows no redirects, bounds size and
//     time, and rejects documents with private keys. It does not filter
//     destination addresses: give it an http.Client with a guarded dialer when
//     DIDs come from untrusted parties.
//   - [Wallet.Sign] signs any bytes. Library protocols sign structured,
//     domain-specific inputs only; do not offer a "sign anything" service with
//     a wallet whose signatures are also accepted by a protocol.
//   - Every error for outside input is a *contracts.Error with a contract
//     code; all sizes are bounded (see the Default* constants and limits.go).
//
// # Concurrency
//
// Wallet, DID, Keyring, MemNonceStore, WebResolver, MultiResolver,
// AttestationSigner and AttestationVerifier are safe for concurrent use
// (the last two as far as the functions and stores they are given are).
//
// # Compatibility
//
// Wallets, DIDs, signatures, the attestation signing input and the
// envelope.v1 form are byte-compatible with the Talos contracts v1.x
// (test_vectors/sdk/signing_verify.json, crypto/ed25519_signatures.json,
// crypto/http_attestation_v1.json, crypto/replay_nonce.json,
// secrets/envelope_v1.json and envelope_vectors.json).
//
// Deviations from the contract API: the contract's Wallet.sign(msg) is
// [Wallet.Sign], so a Wallet cannot also be a crypto.Signer (whose Sign
// method has another signature); [Wallet.Signer] returns one. The replay
// scope is (public key, nonce) rather than (key id, nonce), which rejects
// strictly more replays.
package identity
