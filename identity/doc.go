// Package identity holds who an agent is in Talos: Ed25519 wallets and
// their did:key identifiers, DID resolution, HTTP request attestation v1 and
// a keyring of key-encryption keys for secret envelopes.
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
// # Security properties
//
//   - A wallet's seed never appears in String, GoString, any fmt verb,
//     LogValue or MarshalJSON; the only serialization is
//     [Wallet.MarshalPrivateText] ("talos-wallet-seed:" + base64url), which is
//     deliberately not encoding.TextMarshaler. Wallets compare in constant
//     time with [Wallet.Equal] and cannot be compared with ==.
//   - [ParseDID] accepts exactly one encoding of each key: it rejects other
//     multicodecs, non-base58 characters, wrong lengths, trailing data and DID
//     URL suffixes, so ParseDID(s) succeeding implies String() == s.
//   - [Wallet.Sign] signs any bytes. Library protocols sign structured,
//     domain-specific inputs only; do not offer a "sign anything" service with
//     a wallet whose signatures are also accepted by a protocol.
//   - Every error for outside input is a *contracts.Error with a contract code.
//     Sizes of all parsed inputs are bounded (see the Default* constants).
//
// # Concurrency
//
// Wallet, DID and MemoryNonceStore are safe for concurrent use.
//
// # Compatibility
//
// Wallet, DID and signatures are byte-compatible with the Talos contracts
// v1.x (test_vectors/sdk/signing_verify.json). Deviation from the contract
// API: the contract's Wallet.sign(msg) is [Wallet.Sign], so a Wallet cannot
// also be a crypto.Signer (whose Sign method has another signature);
// [Wallet.Signer] returns one.
package identity
