package identity

import "time"

// Size, time and count limits of the package. Every parser of outside bytes
// checks its input against one of these before doing any other work.
const (
	// maxDIDLength bounds a did:key string. A did:key for an Ed25519 key is
	// 56 characters; anything longer is rejected before base58 decoding.
	maxDIDLength = 128

	// maxDIDWebLength bounds a did:web string.
	maxDIDWebLength = 512

	// maxWalletTextLength bounds the private text form of a wallet.
	maxWalletTextLength = 128

	// maxKeyIDLength bounds the X-Talos-Key-ID header and a keyring KEK id.
	maxKeyIDLength = 255

	// minNonceLength and maxNonceLength bound the X-Talos-Nonce header
	// (schemas/crypto/http_attestation.schema.json).
	minNonceLength = 8
	maxNonceLength = 128

	// maxTimestampDigits bounds the X-Talos-Timestamp header: any value with
	// more digits does not fit an int64 number of seconds.
	maxTimestampDigits = 18

	// maxSignatureTextLength bounds the X-Talos-Signature header; an Ed25519
	// signature is 86 characters of unpadded base64url.
	maxSignatureTextLength = 128

	// DefaultMaxAttestedBody is the largest request body an
	// AttestationVerifier or AttestationSigner reads when its config leaves
	// MaxBodySize at zero.
	DefaultMaxAttestedBody = 1 << 20

	// DefaultAttestationWindow is the accepted distance between the
	// X-Talos-Timestamp of a request and the verifier's clock.
	DefaultAttestationWindow = 60 * time.Second

	// DefaultNonceTTL is how long a verifier remembers a nonce; it is at
	// least twice the window so a nonce cannot be replayed while its
	// timestamp is still acceptable.
	DefaultNonceTTL = 300 * time.Second

	// DefaultMaxNonces is the capacity of a MemNonceStore created with a
	// non-positive max.
	DefaultMaxNonces = 1 << 20

	// DefaultNonceRate and DefaultNonceBurst are the per-principal claim
	// rate (per second) and burst of a MemNonceStore whose config leaves
	// them at zero.
	DefaultNonceRate  = 10_000
	DefaultNonceBurst = 20_000

	// maxEnvelopeSize bounds a keyring envelope (either JSON form).
	maxEnvelopeSize = 1 << 20

	// maxKEKs bounds the number of keys held by one Keyring.
	maxKEKs = 1024

	// maxSealsPerKEK bounds the messages sealed under one KEK with random
	// 96-bit nonces (NIST SP 800-38D section 8.3).
	maxSealsPerKEK = 1 << 32

	// DefaultMaxDocumentSize bounds a did:web document when WebResolver
	// leaves MaxDocumentSize at zero.
	DefaultMaxDocumentSize = 64 << 10

	// DefaultResolveTimeout bounds one did:web fetch when WebResolver
	// leaves Timeout at zero.
	DefaultResolveTimeout = 10 * time.Second

	// DefaultCacheTTL is how long WebResolver keeps a document when its
	// config leaves CacheTTL at zero.
	DefaultCacheTTL = 5 * time.Minute

	// DefaultCacheSize bounds the WebResolver cache when its config leaves
	// CacheSize at zero.
	DefaultCacheSize = 1024

	// maxVerificationMethods bounds the verification methods read from one
	// DID document.
	maxVerificationMethods = 64
)
