package contracts

import (
	"errors"
	"net/http"
)

// Error codes of the Talos contracts. Each family is quoted exactly from the
// contracts (sdk/ERROR_TAXONOMY.md, schemas/error.schema.json,
// schemas/common/errors.schema.json, ai_gateway/error.schema.json, the HTTP
// attestation, ratchet, X3DH, TGA and stream specifications).
const (
	// SDK taxonomy (sdk/ERROR_TAXONOMY.md, api_surface.required_errors).
	CodeDenied            = "TALOS_DENIED"
	CodeInvalidCapability = "TALOS_INVALID_CAPABILITY"
	CodeProtocolMismatch  = "TALOS_PROTOCOL_MISMATCH"
	CodeFrameInvalid      = "TALOS_FRAME_INVALID"
	CodeCryptoError       = "TALOS_CRYPTO_ERROR"
	CodeInvalidInput      = "TALOS_INVALID_INPUT"
	CodeTransportTimeout  = "TALOS_TRANSPORT_TIMEOUT"
	CodeTransportError    = "TALOS_TRANSPORT_ERROR"

	// schemas/error.schema.json additions.
	CodeRBACDenied           = "RBAC_DENIED"
	CodeAuthRevoked          = "AUTH_REVOKED"
	CodeAuthExpired          = "AUTH_EXPIRED"
	CodeAuthInvalidSignature = "AUTH_INVALID_SIGNATURE"
	CodeNotFound             = "NOT_FOUND"
	CodeInternal             = "INTERNAL"

	// HTTP attestation v1 (crypto/http_attestation_v1.json).
	CodeAuthInvalid           = "AUTH_INVALID"
	CodeSchemaValidationError = "SCHEMA_VALIDATION_ERROR"
	CodeReplayDetected        = "REPLAY_DETECTED"

	// AI gateway (ai_gateway/error.schema.json).
	CodePolicyDenied          = "POLICY_DENIED"
	CodeModelNotAllowed       = "MODEL_NOT_ALLOWED"
	CodeRateLimited           = "RATE_LIMITED"
	CodeBudgetExceeded        = "BUDGET_EXCEEDED"
	CodeUpstreamTimeout       = "UPSTREAM_TIMEOUT"
	CodeUpstream5xx           = "UPSTREAM_5XX"
	CodeMCPProtocol           = "MCP_PROTOCOL"
	CodeSchemaMismatch        = "SCHEMA_MISMATCH"
	CodeStreamingNotSupported = "STREAMING_NOT_SUPPORTED"

	// Double Ratchet and X3DH (sdk/ERROR_TAXONOMY.md).
	CodeRatchetAuthFailed      = "RATCHET_AUTH_FAILED"
	CodeRatchetMaxSkipExceeded = "RATCHET_MAX_SKIP_EXCEEDED"
	CodeRatchetInvalidHeader   = "RATCHET_INVALID_HEADER"
	CodeRatchetInvalidDHKey    = "RATCHET_INVALID_DH_KEY"
	CodeX3DHInvalidSignature   = "X3DH_INVALID_SIGNATURE"
	CodeX3DHMissingPrekey      = "X3DH_MISSING_PREKEY"

	// TGA (schemas/common/errors.schema.json).
	CodeTGAInvalidSignature   = "TGA_INVALID_SIGNATURE"
	CodeTGATokenExpired       = "TGA_TOKEN_EXPIRED"
	CodeTGAConstraintMismatch = "TGA_CONSTRAINT_MISMATCH"
	CodeTGASchemaInvalid      = "TGA_SCHEMA_INVALID"
	CodeTGARateLimited        = "TGA_RATE_LIMITED"
	CodeTGAEventTooLarge      = "TGA_EVENT_TOO_LARGE"
	CodeTGAHashChainBroken    = "TGA_HASH_CHAIN_BROKEN"
	CodeTGADBUnavailable      = "TGA_DB_UNAVAILABLE"

	// TGA state machine (tga/state_transition_vectors.json).
	CodeStateInvalidTransition = "STATE_INVALID_TRANSITION"
	CodeStateSequenceGap       = "STATE_SEQUENCE_GAP"
	CodeMissingToolCallID      = "MISSING_TOOL_CALL_ID"

	// Legacy SDK error list (sdk/error_codes.json), unrelated to the
	// taxonomy above; recognised so that errors from older SDKs map.
	CodeErrUnknown      = "TALOS_ERR_UNKNOWN"
	CodeErrCrypto       = "TALOS_ERR_CRYPTO"
	CodeErrFrame        = "TALOS_ERR_FRAME"
	CodeErrNetwork      = "TALOS_ERR_NETWORK"
	CodeErrValidation   = "TALOS_ERR_VALIDATION"
	CodeErrNotFound     = "TALOS_ERR_NOT_FOUND"
	CodeErrUnauthorized = "TALOS_ERR_UNAUTHORIZED"

	// Stream protocol (schemas/stream/error_codes.json).
	CodeAuthFailed        = "AUTH_FAILED"
	CodeCapabilityExpired = "CAPABILITY_EXPIRED"
	CodeInvalidMessage    = "INVALID_MESSAGE"
	CodeSlowConsumer      = "SLOW_CONSUMER"
	CodeInternalError     = "INTERNAL_ERROR"
)

// MCP error categories (schemas/mcp/errors.schema.json): the category member
// of an MCP error object, not a code.
const (
	MCPCategoryConfig          = "CONFIG"
	MCPCategoryDiscoveryDenied = "DISCOVERY_DENIED"
	MCPCategoryToolDenied      = "TOOL_DENIED"
	MCPCategoryTransport       = "TRANSPORT"
	MCPCategoryTimeout         = "TIMEOUT"
	MCPCategorySchemaMismatch  = "SCHEMA_MISMATCH"
	MCPCategoryMCPProtocol     = "MCP_PROTOCOL"
	MCPCategoryInternal        = "INTERNAL"
)

// Error is the one error type of the library: it carries a contract code.
// Its JSON form is the contract error object ({code, message, details?,
// request_id?, retryable}); Cause is never serialized, so wrapped back-end
// errors do not leak to callers over the wire.
//
// errors.Is(err, target) is true when target is an *Error with the same Code
// and an empty Message, so the sentinels below match every error of their code:
//
//	if errors.Is(err, contracts.ErrInvalidCapability) { ... }
type Error struct {
	Code      string         `json:"code"`
	Message   string         `json:"message"`
	Details   map[string]any `json:"details,omitempty"`
	RequestID string         `json:"request_id,omitempty"`
	Retryable bool           `json:"retryable"`
	Cause     error          `json:"-"`
}

// Sentinels, one per commonly branched-on code. Compare with errors.Is.
var (
	ErrDenied            = &Error{Code: CodeDenied}
	ErrInvalidCapability = &Error{Code: CodeInvalidCapability}
	ErrProtocolMismatch  = &Error{Code: CodeProtocolMismatch}
	ErrFrameInvalid      = &Error{Code: CodeFrameInvalid}
	ErrCrypto            = &Error{Code: CodeCryptoError}
	ErrInvalidInput      = &Error{Code: CodeInvalidInput}
	ErrTransportTimeout  = &Error{Code: CodeTransportTimeout}
	ErrTransport         = &Error{Code: CodeTransportError}
	ErrNotFound          = &Error{Code: CodeNotFound}
	ErrInternal          = &Error{Code: CodeInternal}
	ErrRateLimited       = &Error{Code: CodeRateLimited}
	ErrBudgetExceeded    = &Error{Code: CodeBudgetExceeded}
	ErrReplay            = &Error{Code: CodeReplayDetected}
	ErrAuthInvalid       = &Error{Code: CodeAuthInvalid}
	ErrSchemaValidation  = &Error{Code: CodeSchemaValidationError}
)

// Errorf returns a new *Error with the code and message. The message must not
// contain secrets: it may reach logs and, for the gateway, clients.
func Errorf(code, message string) *Error {
	return &Error{Code: code, Message: message}
}

// Wrap returns a new *Error with the code and message that wraps cause.
// The cause is reachable through errors.Is/As but is never serialized.
func Wrap(code, message string, cause error) *Error {
	return &Error{Code: code, Message: message, Cause: cause}
}

// Error returns "CODE: message" (or the cause's text when no message is set).
func (e *Error) Error() string {
	msg := e.Message
	if msg == "" && e.Cause != nil {
		msg = e.Cause.Error()
	}
	if msg == "" {
		return e.Code
	}
	return e.Code + ": " + msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// Is reports whether target is an *Error sentinel of the same code (a target
// with an empty Message matches any message), or the same error value.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	if !ok {
		return false
	}
	if t == e {
		return true
	}
	return t.Code == e.Code && t.Message == "" && t.Cause == nil
}

// WithRetryable returns a copy of e with Retryable set.
func (e *Error) WithRetryable(r bool) *Error {
	c := *e
	c.Retryable = r
	return &c
}

// CodeOf returns the contract code of the first *Error in err's chain, "" for
// nil, and CodeInternal for any other error.
func CodeOf(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// HTTPStatus maps a contract code to the HTTP status a gateway answers with.
// It follows ai_gateway/error_mapping.json, the A2A and RBAC enforcement
// vectors, and gateway practice for the rest; unknown codes map to 500.
func HTTPStatus(code string) int {
	switch code {
	case "":
		return http.StatusOK
	case CodeAuthInvalid, CodeAuthFailed, CodeAuthExpired, CodeAuthInvalidSignature,
		CodeTGAInvalidSignature, CodeTGATokenExpired, CodeCapabilityExpired, CodeErrUnauthorized:
		return http.StatusUnauthorized
	case CodeDenied, CodeInvalidCapability, CodeRBACDenied, CodeAuthRevoked, CodePolicyDenied,
		CodeModelNotAllowed, CodeTGAConstraintMismatch:
		return http.StatusForbidden
	case CodeNotFound, CodeErrNotFound:
		return http.StatusNotFound
	case CodeReplayDetected, CodeStateInvalidTransition, CodeStateSequenceGap:
		return http.StatusConflict
	case CodeTGAEventTooLarge:
		return http.StatusRequestEntityTooLarge
	case CodeRateLimited, CodeBudgetExceeded, CodeTGARateLimited, CodeSlowConsumer:
		return http.StatusTooManyRequests
	case CodeInvalidInput, CodeSchemaValidationError, CodeSchemaMismatch, CodeFrameInvalid,
		CodeProtocolMismatch, CodeTGASchemaInvalid, CodeInvalidMessage, CodeMissingToolCallID,
		CodeRatchetInvalidHeader, CodeRatchetInvalidDHKey, CodeRatchetMaxSkipExceeded,
		CodeRatchetAuthFailed, CodeX3DHInvalidSignature, CodeX3DHMissingPrekey, CodeCryptoError,
		CodeMCPProtocol, CodeTGAHashChainBroken, CodeErrCrypto, CodeErrFrame, CodeErrValidation:
		return http.StatusBadRequest
	case CodeStreamingNotSupported:
		return http.StatusNotImplemented
	case CodeUpstream5xx, CodeTransportError, CodeErrNetwork:
		return http.StatusBadGateway
	case CodeUpstreamTimeout, CodeTransportTimeout:
		return http.StatusGatewayTimeout
	case CodeTGADBUnavailable:
		return http.StatusServiceUnavailable
	default:
		return http.StatusInternalServerError
	}
}
