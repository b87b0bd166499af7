package capability

import "github.com/talosgo/talos/contracts"

// Sentinel errors. Each is an immutable contracts.Sentinel; errors.Is
// matches both the sentinel itself and its contract code (for example
// errors.Is(err, contracts.ErrInvalidCapability)), and errors.As finds a
// *contracts.Error.
var (
	// ErrMalformed is wrapped by every parse error of a token or chain.
	ErrMalformed = contracts.NewSentinel(contracts.CodeInvalidCapability, "capability: malformed token")
	// ErrExpired: the token's exp (plus skew) is in the past.
	ErrExpired = contracts.NewSentinel(contracts.CodeInvalidCapability, "capability: token expired")
	// ErrNotYetValid: the token's nbf (minus skew) is in the future.
	ErrNotYetValid = contracts.NewSentinel(contracts.CodeInvalidCapability, "capability: token not yet valid")
	// ErrSignature: the Ed25519 signature does not verify.
	ErrSignature = contracts.NewSentinel(contracts.CodeInvalidCapability, "capability: invalid signature")
	// ErrIssuerMismatch: the key given to Verify is not the issuer's key.
	ErrIssuerMismatch = contracts.NewSentinel(contracts.CodeInvalidCapability, "capability: invalid signature: key does not match issuer")
	// ErrUntrustedIssuer: the root of a chain was not issued by a trusted issuer.
	ErrUntrustedIssuer = contracts.NewSentinel(contracts.CodeInvalidCapability, "capability: untrusted issuer")
	// ErrDelegation: a chain link widens its parent or is not linked to it.
	ErrDelegation = contracts.NewSentinel(contracts.CodeInvalidCapability, "capability: invalid delegation")
	// ErrAudience: the token's metadata.aud does not name this verifier.
	ErrAudience = contracts.NewSentinel(contracts.CodeInvalidCapability, "capability: audience mismatch")
	// ErrRevoked: the token or one of its ancestors is revoked.
	ErrRevoked = contracts.NewSentinel(contracts.CodeAuthRevoked, "capability: token revoked")
	// ErrStore: a revocation or replay store failed; the request is denied.
	ErrStore = contracts.NewSentinel(contracts.CodeInternal, "capability: store unavailable").WithRetryable(true)
)

func malformed(msg string) error {
	return contracts.Wrap(contracts.CodeInvalidCapability, "capability: malformed token: "+msg, ErrMalformed)
}

func delegationErr(msg string) error {
	return contracts.Wrap(contracts.CodeInvalidCapability, "capability: invalid delegation: "+msg, ErrDelegation)
}

// Denial sentinels: one for every reason a denying Decision carries, with
// that decision's contract code. [Decision.Err] wraps the sentinel of its
// reason, so callers branch with errors.Is:
//
//	if errors.Is(d.Err(), capability.ErrAuthExpired) { ... refresh the token ... }
//
// ErrNotYetValid, ErrRevoked, ErrDelegation, ErrAudience and ErrStore above
// double as the sentinels of their reasons.
var (
	// ErrNoCapability: nothing was presented, or it does not parse (NO_CAPABILITY).
	ErrNoCapability = contracts.NewSentinel(contracts.CodeInvalidCapability, "capability: denied: NO_CAPABILITY")
	// ErrAuthExpired: a link of the chain has expired (EXPIRED).
	ErrAuthExpired = contracts.NewSentinel(contracts.CodeAuthExpired, "capability: denied: EXPIRED")
	// ErrAuthInvalidSignature: a signature does not verify, or the root
	// issuer is not trusted (SIGNATURE_INVALID).
	ErrAuthInvalidSignature = contracts.NewSentinel(contracts.CodeAuthInvalidSignature, "capability: denied: SIGNATURE_INVALID")
	// ErrScopeMismatch: no grant covers the tool and action (SCOPE_MISMATCH).
	ErrScopeMismatch = contracts.NewSentinel(contracts.CodeDenied, "capability: denied: SCOPE_MISMATCH")
	// ErrUnknownTool: the tool registry does not know the tool (UNKNOWN_TOOL).
	ErrUnknownTool = contracts.NewSentinel(contracts.CodeDenied, "capability: denied: UNKNOWN_TOOL")
	// ErrReplay: the request nonce was used before (REPLAY).
	ErrReplay = contracts.NewSentinel(contracts.CodeReplayDetected, "capability: denied: REPLAY")
	// ErrHolderMismatch: the principal is not the leaf's subject (HOLDER_MISMATCH).
	ErrHolderMismatch = contracts.NewSentinel(contracts.CodeDenied, "capability: denied: HOLDER_MISMATCH")
	// ErrRBACDenied: no role binding grants the permission (RBAC_DENIED).
	ErrRBACDenied = contracts.NewSentinel(contracts.CodeRBACDenied, "capability: denied: RBAC_DENIED")
)

// reasonErrs maps each denying reason to its sentinel.
var reasonErrs = map[ReasonCode]contracts.Sentinel{
	ReasonNoCapability:      ErrNoCapability,
	ReasonExpired:           ErrAuthExpired,
	ReasonNotYetValid:       ErrNotYetValid,
	ReasonRevoked:           ErrRevoked,
	ReasonSignatureInvalid:  ErrAuthInvalidSignature,
	ReasonScopeMismatch:     ErrScopeMismatch,
	ReasonDelegationInvalid: ErrDelegation,
	ReasonUnknownTool:       ErrUnknownTool,
	ReasonReplay:            ErrReplay,
	ReasonAudienceMismatch:  ErrAudience,
	ReasonHolderMismatch:    ErrHolderMismatch,
	ReasonRBACDenied:        ErrRBACDenied,
	ReasonStoreUnavailable:  ErrStore,
}

// Err returns the sentinel of a denying reason (see the Err… variables),
// or nil for ALLOWED and for reasons this package does not define.
func (r ReasonCode) Err() error {
	if e, ok := reasonErrs[r]; ok {
		return e
	}
	return nil
}
