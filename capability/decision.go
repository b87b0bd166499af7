package capability

import (
	"encoding/json"
	"log/slog"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// A ReasonCode says why an authorization was allowed or denied. The values
// are the TS SDK's denial reasons plus the ones this package adds.
type ReasonCode string

// Reason codes.
const (
	ReasonAllowed           ReasonCode = "ALLOWED"
	ReasonNoCapability      ReasonCode = "NO_CAPABILITY"      // nothing presented, or not parseable
	ReasonExpired           ReasonCode = "EXPIRED"            // a link's exp + skew is past
	ReasonNotYetValid       ReasonCode = "NOT_YET_VALID"      // a link's nbf − skew is in the future
	ReasonRevoked           ReasonCode = "REVOKED"            // a link's hash or nonce is revoked
	ReasonSignatureInvalid  ReasonCode = "SIGNATURE_INVALID"  // bad signature, or untrusted root issuer
	ReasonScopeMismatch     ReasonCode = "SCOPE_MISMATCH"     // no grant covers tool/action
	ReasonDelegationInvalid ReasonCode = "DELEGATION_INVALID" // a link widens or is not linked
	ReasonUnknownTool       ReasonCode = "UNKNOWN_TOOL"       // the tool registry does not know the tool
	ReasonReplay            ReasonCode = "REPLAY"             // the request nonce was seen before
	ReasonAudienceMismatch  ReasonCode = "AUDIENCE_MISMATCH"  // metadata.aud is not this verifier
	ReasonHolderMismatch    ReasonCode = "HOLDER_MISMATCH"    // the principal is not the subject
	ReasonRBACDenied        ReasonCode = "RBAC_DENIED"        // no role binding grants the permission
	ReasonStoreUnavailable  ReasonCode = "STORE_UNAVAILABLE"  // a back-end failed: fail closed
)

// A Decision is the outcome of one authorization: a plain value carrying
// everything the audit log and a trace need. The zero Decision denies.
type Decision struct {
	Allowed bool
	Reason  ReasonCode
	// CapabilityHash is the capability hash of the presented token (the
	// chain's leaf), when one was parsed.
	CapabilityHash string
	// Grant is the grant that matched, when allowed.
	Grant Grant
	// Principal is the requesting principal.
	Principal identity.DID
	Tool      string
	Action    string
	// Issuer is the chain's root issuer, when a token was parsed.
	Issuer identity.DID
	// ChainDepth is the number of tokens in the presented chain (1 for a
	// plain token, 0 when none was parsed).
	ChainDepth int
	// ArgsDigest is copied from the Request.
	ArgsDigest string
}

// ErrorCode maps the reason to the contract error code a caller is told:
// REVOKED → AUTH_REVOKED, EXPIRED → AUTH_EXPIRED, SIGNATURE_INVALID →
// AUTH_INVALID_SIGNATURE, RBAC_DENIED → RBAC_DENIED, REPLAY →
// REPLAY_DETECTED, STORE_UNAVAILABLE → INTERNAL, malformed or
// mis-delegated or not-yet-valid capabilities → TALOS_INVALID_CAPABILITY,
// everything else → TALOS_DENIED. It returns "" for an allowed decision.
func (d Decision) ErrorCode() contracts.Code {
	if d.Allowed {
		return ""
	}
	switch d.Reason {
	case ReasonRevoked:
		return contracts.CodeAuthRevoked
	case ReasonExpired:
		return contracts.CodeAuthExpired
	case ReasonSignatureInvalid:
		return contracts.CodeAuthInvalidSignature
	case ReasonRBACDenied:
		return contracts.CodeRBACDenied
	case ReasonReplay:
		return contracts.CodeReplayDetected
	case ReasonStoreUnavailable:
		return contracts.CodeInternal
	case ReasonNoCapability, ReasonDelegationInvalid, ReasonNotYetValid, ReasonAudienceMismatch:
		return contracts.CodeInvalidCapability
	default:
		return contracts.CodeDenied
	}
}

// Err returns nil for an allowed decision, else a *contracts.Error with
// ErrorCode and a message naming only the reason code (safe to show to the
// caller), which wraps the reason's sentinel: errors.Is(d.Err(),
// capability.ErrAuthExpired) reports an expired chain, and errors.Is with
// a contracts sentinel matches the code. A store failure is marked
// retryable.
func (d Decision) Err() error {
	if d.Allowed {
		return nil
	}
	reason := d.Reason
	if reason == "" {
		reason = ReasonNoCapability
	}
	e := contracts.Wrap(d.ErrorCode(), "capability: denied: "+string(reason), reason.Err())
	e.Retryable = reason == ReasonStoreUnavailable
	return e
}

// decisionJSON is the JSON form of a Decision.
type decisionJSON struct {
	Allowed        bool       `json:"allowed"`
	Reason         ReasonCode `json:"reason"`
	CapabilityHash string     `json:"capability_hash,omitempty"`
	Grant          *Grant     `json:"grant,omitempty"`
	Principal      string     `json:"principal,omitempty"`
	Tool           string     `json:"tool,omitempty"`
	Action         string     `json:"action,omitempty"`
	Issuer         string     `json:"issuer,omitempty"`
	ChainDepth     int        `json:"chain_depth,omitempty"`
	ArgsDigest     string     `json:"args_digest,omitempty"`
}

func (d Decision) toJSON() decisionJSON {
	j := decisionJSON{Allowed: d.Allowed, Reason: d.Reason, CapabilityHash: d.CapabilityHash,
		Principal: d.Principal.String(), Tool: d.Tool, Action: d.Action, Issuer: d.Issuer.String(),
		ChainDepth: d.ChainDepth, ArgsDigest: d.ArgsDigest}
	if j.Reason == "" {
		j.Reason = ReasonNoCapability
	}
	if d.Grant.Tool != "" {
		g := d.Grant
		j.Grant = &g
	}
	return j
}

// MarshalJSON encodes the decision for logs and audit records, with DIDs
// as strings and unset members omitted. It never fails on a zero
// Decision.
func (d Decision) MarshalJSON() ([]byte, error) { return json.Marshal(d.toJSON()) }

// LogValue implements slog.LogValuer. A Decision holds no secret.
func (d Decision) LogValue() slog.Value {
	j := d.toJSON()
	return slog.GroupValue(
		slog.Bool("allowed", j.Allowed), slog.String("reason", string(j.Reason)),
		slog.String("capability_hash", j.CapabilityHash), slog.String("principal", j.Principal),
		slog.String("tool", j.Tool), slog.String("action", j.Action), slog.String("issuer", j.Issuer),
		slog.Int("chain_depth", j.ChainDepth))
}
