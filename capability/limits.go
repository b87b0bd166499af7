package capability

import "time"

// Limits of the package. Every parser of outside bytes checks its input
// against these before doing any other work, and answers with a
// *contracts.Error of code TALOS_INVALID_CAPABILITY (tokens, chains, legacy
// tokens) or TALOS_INVALID_INPUT (MCP payloads, RBAC documents) when one is
// exceeded.
const (
	// MaxTokenSize bounds one encoded token (base64url or raw JSON), in bytes.
	MaxTokenSize = 16 << 10

	// MaxChainSize bounds one encoded delegation chain, in bytes.
	MaxChainSize = MaxChainDepth * MaxTokenSize

	// MaxChainDepth is the largest number of tokens a chain may hold (the root
	// token plus seven delegations). Config.MaxChainDepth may lower it.
	MaxChainDepth = 8

	// DefaultMaxChainDepth is the chain depth a Verifier accepts when its
	// Config leaves MaxChainDepth at zero.
	DefaultMaxChainDepth = MaxChainDepth

	// MaxGrants bounds the scope entries of one token.
	MaxGrants = 64

	// MaxActions bounds the actions of one grant.
	MaxActions = 64

	// MaxNameLength bounds a tool or action name, in bytes.
	MaxNameLength = 256

	// MinNonceLength is the contract's minimum nonce length, in characters.
	MinNonceLength = 16

	// MaxNonceLength bounds a token nonce, in bytes.
	MaxNonceLength = 256

	// MaxMetadataSize bounds the canonical metadata object of one token.
	MaxMetadataSize = 4 << 10

	// DefaultSkew is the clock skew tolerated on nbf and exp when none is
	// configured: a token is valid while nbf − skew ≤ now ≤ exp + skew.
	DefaultSkew = 60 * time.Second

	// RevocationRetention is how long Verifier.Revoke keeps a revocation
	// after the token's exp plus skew, so that a verifier whose clock runs
	// behind the store's still sees it while it considers the token valid.
	RevocationRetention = time.Hour

	// DefaultCacheSize is the number of verified tokens a Verifier keeps when
	// its Config leaves CacheSize at zero.
	DefaultCacheSize = 10000

	// DefaultSessionCacheSize bounds the session table of a Verifier.
	DefaultSessionCacheSize = 10000

	// DefaultReplayTTL is how long a request nonce is remembered by the
	// Verifier's replay check: twice the default skew window.
	DefaultReplayTTL = 300 * time.Second

	// MaxLegacyTokenSize bounds one legacy (v "1") token.
	MaxLegacyTokenSize = 16 << 10

	// MaxLegacyPaths bounds the paths constraint of a legacy token.
	MaxLegacyPaths = 64

	// MaxMCPPayloadSize bounds a signed MCP payload, in bytes.
	MaxMCPPayloadSize = 1 << 20

	// DefaultMCPWindow is the accepted distance between an MCP payload's
	// timestamp and the verifier's clock.
	DefaultMCPWindow = 60 * time.Second

	// MaxRoles, MaxBindings and MaxPermissions bound an RBAC policy.
	MaxRoles       = 10000
	MaxBindings    = 1000000
	MaxPermissions = 1024

	// MaxRegistryTools bounds a tool registry.
	MaxRegistryTools = 100000
)
