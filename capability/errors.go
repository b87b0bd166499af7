package capability

import "github.com/talosgo/talos/contracts"

// Sentinel errors. Each is a *contracts.Error; errors.Is matches both the
// sentinel itself and its contract code (for example
// errors.Is(err, contracts.ErrInvalidCapability)).
var (
	// ErrMalformed is wrapped by every parse error of a token or chain.
	ErrMalformed = &contracts.Error{Code: contracts.CodeInvalidCapability, Message: "capability: malformed token"}
	// ErrExpired: the token's exp (plus skew) is in the past.
	ErrExpired = &contracts.Error{Code: contracts.CodeInvalidCapability, Message: "capability: token expired"}
	// ErrNotYetValid: the token's nbf (minus skew) is in the future.
	ErrNotYetValid = &contracts.Error{Code: contracts.CodeInvalidCapability, Message: "capability: token not yet valid"}
	// ErrSignature: the Ed25519 signature does not verify.
	ErrSignature = &contracts.Error{Code: contracts.CodeInvalidCapability, Message: "capability: invalid signature"}
	// ErrIssuerMismatch: the key given to Verify is not the issuer's key.
	ErrIssuerMismatch = &contracts.Error{Code: contracts.CodeInvalidCapability, Message: "capability: invalid signature: key does not match issuer"}
	// ErrUntrustedIssuer: the root of a chain was not issued by a trusted issuer.
	ErrUntrustedIssuer = &contracts.Error{Code: contracts.CodeInvalidCapability, Message: "capability: untrusted issuer"}
	// ErrDelegation: a chain link widens its parent or is not linked to it.
	ErrDelegation = &contracts.Error{Code: contracts.CodeInvalidCapability, Message: "capability: invalid delegation"}
	// ErrAudience: the token's metadata.aud does not name this verifier.
	ErrAudience = &contracts.Error{Code: contracts.CodeInvalidCapability, Message: "capability: audience mismatch"}
	// ErrRevoked: the token or one of its ancestors is revoked.
	ErrRevoked = &contracts.Error{Code: contracts.CodeAuthRevoked, Message: "capability: token revoked"}
	// ErrStore: a revocation or replay store failed; the request is denied.
	ErrStore = &contracts.Error{Code: contracts.CodeInternal, Message: "capability: store unavailable", Retryable: true}
)

func malformed(msg string) error {
	return contracts.Wrap(contracts.CodeInvalidCapability, "capability: malformed token: "+msg, ErrMalformed)
}

func delegationErr(msg string) error {
	return contracts.Wrap(contracts.CodeInvalidCapability, "capability: invalid delegation: "+msg, ErrDelegation)
}
