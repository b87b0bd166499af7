package contracts

import (
	"encoding/json"
	"errors"
	"net/http"
)

// A Code is a contract error code, such as "TALOS_DENIED". Its JSON form is
// the plain string.
type Code string

// Error codes of the Talos contracts. Each family is quoted exactly from the
// contracts (sdk/ERROR_TAXONOMY.md, schemas/error.schema.json,
// schemas/common/errors.schema.json, ai_gateway/error.schema.json, the HTTP
// attestation, ratchet, X3DH, TGA and stream specifications).
const (
	// SDK taxonomy (sdk/ERROR_TAXONOMY.md, api_surface.required_errors).
	CodeDenied            Code = "TALOS_DENIED"
	CodeInvalidCapability Code = "TALOS_INVALID_CAPABILITY"
	CodeProtocolMismatch  Code = "TALOS_PROTOCOL_MISMATCH"
	CodeFrameInvalid      Code = "TALOS_FRAME_INVALID"
	CodeCryptoError       Code = "TALOS_CRYPTO_ERROR"
	CodeInvalidInput      Code = "TALOS_INVALID_INPUT"
	CodeTransportTimeout  Code = "TALOS_TRANSPORT_TIMEOUT"
	CodeTransportError    Code = "TALOS_TRANSPORT_ERROR"

	// schemas/error.schema.json additions.
	CodeRBACDenied           Code = "RBAC_DENIED"
	CodeAuthRevoked          Code = "AUTH_REVOKED"
	CodeAuthExpired          Code = "AUTH_EXPIRED"
	CodeAuthInvalidSignature Code = "AUTH_INVALID_SIGNATURE"
	CodeNotFound             Code = "NOT_FOUND"
	CodeInternal             Code = "INTERNAL"

	// HTTP attestation v1 (crypto/http_attestation_v1.json).
	CodeAuthInvalid           Code = "AUTH_INVALID"
	CodeSchemaValidationError Code = "SCHEMA_VALIDATION_ERROR"
	CodeReplayDetected        Code = "REPLAY_DETECTED"

	// AI gateway (ai_gateway/error.schema.json).
	CodePolicyDenied          Code = "POLICY_DENIED"
	CodeModelNotAllowed       Code = "MODEL_NOT_ALLOWED"
	CodeRateLimited           Code = "RATE_LIMITED"
	CodeBudgetExceeded        Code = "BUDGET_EXCEEDED"
	CodeUpstreamTimeout       Code = "UPSTREAM_TIMEOUT"
	CodeUpstream5xx           Code = "UPSTREAM_5XX"
	CodeMCPProtocol           Code = "MCP_PROTOCOL"
	CodeSchemaMismatch        Code = "SCHEMA_MISMATCH"
	CodeStreamingNotSupported Code = "STREAMING_NOT_SUPPORTED"

	// Double Ratchet and X3DH (sdk/ERROR_TAXONOMY.md).
	CodeRatchetAuthFailed      Code = "RATCHET_AUTH_FAILED"
	CodeRatchetMaxSkipExceeded Code = "RATCHET_MAX_SKIP_EXCEEDED"
	CodeRatchetInvalidHeader   Code = "RATCHET_INVALID_HEADER"
	CodeRatchetInvalidDHKey    Code = "RATCHET_INVALID_DH_KEY"
	CodeX3DHInvalidSignature   Code = "X3DH_INVALID_SIGNATURE"
	CodeX3DHMissingPrekey      Code = "X3DH_MISSING_PREKEY"

	// TGA (schemas/common/errors.schema.json).
	CodeTGAInvalidSignature   Code = "TGA_INVALID_SIGNATURE"
	CodeTGATokenExpired       Code = "TGA_TOKEN_EXPIRED"
	CodeTGAConstraintMismatch Code = "TGA_CONSTRAINT_MISMATCH"
	CodeTGASchemaInvalid      Code = "TGA_SCHEMA_INVALID"
	CodeTGARateLimited        Code = "TGA_RATE_LIMITED"
	CodeTGAEventTooLarge      Code = "TGA_EVENT_TOO_LARGE"
	CodeTGAHashChainBroken    Code = "TGA_HASH_CHAIN_BROKEN"
	CodeTGADBUnavailable      Code = "TGA_DB_UNAVAILABLE"

	// TGA state machine (tga/state_transition_vectors.json).
	CodeStateInvalidTransition Code = "STATE_INVALID_TRANSITION"
	CodeStateSequenceGap       Code = "STATE_SEQUENCE_GAP"
	CodeMissingToolCallID      Code = "MISSING_TOOL_CALL_ID"

	// Legacy SDK error list (sdk/error_codes.json), unrelated to the
	// taxonomy above; recognised so that errors from older SDKs map.
	CodeErrUnknown      Code = "TALOS_ERR_UNKNOWN"
	CodeErrCrypto       Code = "TALOS_ERR_CRYPTO"
	CodeErrFrame        Code = "TALOS_ERR_FRAME"
	CodeErrNetwork      Code = "TALOS_ERR_NETWORK"
	CodeErrValidation   Code = "TALOS_ERR_VALIDATION"
	CodeErrNotFound     Code = "TALOS_ERR_NOT_FOUND"
	CodeErrUnauthorized Code = "TALOS_ERR_UNAUTHORIZED"

	// Stream protocol (schemas/stream/error_codes.json).
	CodeAuthFailed        Code = "AUTH_FAILED"
	CodeCapabilityExpired Code = "CAPABILITY_EXPIRED"
	CodeInvalidMessage    Code = "INVALID_MESSAGE"
	CodeSlowConsumer      Code = "SLOW_CONSUMER"
	CodeInternalError     Code = "INTERNAL_ERROR"
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
// errors.Is(err, target) is true when target is a [Sentinel] of the same
// code and no message (as the sentinels below are), so they match every
// error of their code:
//
//	if errors.Is(err, contracts.ErrInvalidCapability) { ... }
type Error struct {
	Code      Code           `json:"code"`
	Message   string         `json:"message"`
	Details   map[string]any `json:"details,omitempty"`
	RequestID string         `json:"request_id,omitempty"`
	Retryable bool           `json:"retryable"`
	Cause     error          `json:"-"`
}

// A Sentinel is an immutable error value with a contract code, a message
// and a retryable flag: the type of every exported error variable of the
// library. Its fields cannot be changed by callers, so a sentinel means the
// same thing to every package of a program. Compare with errors.Is:
//
//   - errors.Is(err, s) is true when err is s or wraps it;
//   - a Sentinel with an empty message (like [ErrInvalidCapability]) also
//     matches every [*Error] and every Sentinel of its code.
//
// errors.As(err, &e) with e a *contracts.Error succeeds on a Sentinel: e is
// then a fresh *Error with the sentinel's code, message and retryable flag
// that wraps the sentinel, so CodeOf, HTTPStatus and contract error writers
// treat sentinels as they treat *Error. Its JSON form is the contract error
// object, as for *Error.
type Sentinel struct {
	code      Code
	msg       string
	retryable bool
}

// NewSentinel returns a Sentinel with the code and message (which must not
// contain secrets). Declare package errors with it:
//
//	var ErrGone = contracts.NewSentinel(contracts.CodeNotFound, "mypkg: gone")
func NewSentinel(code Code, message string) Sentinel {
	return Sentinel{code: code, msg: message}
}

// WithRetryable returns a copy of s with the retryable flag set to r.
func (s Sentinel) WithRetryable(r bool) Sentinel {
	s.retryable = r
	return s
}

// Code returns the sentinel's contract code.
func (s Sentinel) Code() Code { return s.code }

// Message returns the sentinel's message.
func (s Sentinel) Message() string { return s.msg }

// Retryable reports whether the sentinel's errors are retryable.
func (s Sentinel) Retryable() bool { return s.retryable }

// Error returns "CODE: message", or the code when the message is empty.
func (s Sentinel) Error() string {
	if s.msg == "" {
		return string(s.code)
	}
	return string(s.code) + ": " + s.msg
}

// Is reports whether target is a code-only Sentinel (or a code-only *Error
// with no cause) of the same code. Equal sentinels match through ==.
func (s Sentinel) Is(target error) bool {
	switch t := target.(type) {
	case Sentinel:
		return t.msg == "" && t.code == s.code
	case *Error:
		return t != nil && t.Message == "" && t.Cause == nil && t.Code == s.code
	}
	return false
}

// As sets *target, when target is a **Error, to [Sentinel.New].
func (s Sentinel) As(target any) bool {
	if p, ok := target.(**Error); ok {
		*p = s.New()
		return true
	}
	return false
}

// New returns a fresh *Error with the sentinel's code, message and
// retryable flag, wrapping the sentinel (so errors.Is(e, s) holds).
// Changing it does not change the sentinel.
func (s Sentinel) New() *Error {
	return &Error{Code: s.code, Message: s.msg, Retryable: s.retryable, Cause: s}
}

// Wrap returns a fresh *Error with the sentinel's code and retryable flag,
// the given message, and a cause that joins the sentinel and cause (either
// may be found with errors.Is); cause may be nil.
func (s Sentinel) Wrap(message string, cause error) *Error {
	var c error = s
	if cause != nil {
		c = errors.Join(s, cause)
	}
	return &Error{Code: s.code, Message: message, Retryable: s.retryable, Cause: c}
}

// MarshalJSON encodes the sentinel as a contract error object.
func (s Sentinel) MarshalJSON() ([]byte, error) {
	return json.Marshal(Error{Code: s.code, Message: s.msg, Retryable: s.retryable})
}

// Sentinels, one per commonly branched-on code: each matches every error of
// its code. Compare with errors.Is.
var (
	ErrDenied            = NewSentinel(CodeDenied, "")
	ErrInvalidCapability = NewSentinel(CodeInvalidCapability, "")
	ErrProtocolMismatch  = NewSentinel(CodeProtocolMismatch, "")
	ErrFrameInvalid      = NewSentinel(CodeFrameInvalid, "")
	ErrCrypto            = NewSentinel(CodeCryptoError, "")
	ErrInvalidInput      = NewSentinel(CodeInvalidInput, "")
	ErrTransportTimeout  = NewSentinel(CodeTransportTimeout, "")
	ErrTransport         = NewSentinel(CodeTransportError, "")
	ErrNotFound          = NewSentinel(CodeNotFound, "")
	ErrInternal          = NewSentinel(CodeInternal, "")
	ErrRateLimited       = NewSentinel(CodeRateLimited, "")
	ErrBudgetExceeded    = NewSentinel(CodeBudgetExceeded, "")
	ErrReplay            = NewSentinel(CodeReplayDetected, "")
	ErrAuthInvalid       = NewSentinel(CodeAuthInvalid, "")
	ErrSchemaValidation  = NewSentinel(CodeSchemaValidationError, "")
)

// New returns a new *Error with the code and message; the message is used as
// given (it is not a format). It must not contain secrets: it may reach logs
// and, for the gateway, clients.
func New(code Code, message string) *Error {
	return &Error{Code: code, Message: message}
}

// Wrap returns a new *Error with the code and message that wraps cause.
// The cause is reachable through errors.Is/As but is never serialized.
func Wrap(code Code, message string, cause error) *Error {
	return &Error{Code: code, Message: message, Cause: cause}
}

// Error returns "CODE: message" (or the cause's text when no message is set).
func (e *Error) Error() string {
	msg := e.Message
	if msg == "" && e.Cause != nil {
		msg = e.Cause.Error()
	}
	if msg == "" {
		return string(e.Code)
	}
	return string(e.Code) + ": " + msg
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Cause }

// Is reports whether target is a code-only Sentinel of the same code, a
// code-only *Error of the same code (an empty Message and no Cause), or the
// same error value.
func (e *Error) Is(target error) bool {
	switch t := target.(type) {
	case Sentinel:
		return t.msg == "" && t.code == e.Code
	case *Error:
		if t == e {
			return true
		}
		return t != nil && t.Code == e.Code && t.Message == "" && t.Cause == nil
	}
	return false
}

// WithRetryable returns a copy of e with Retryable set.
func (e *Error) WithRetryable(r bool) *Error {
	c := *e
	c.Retryable = r
	return &c
}

// CodeOf returns the contract code of the first *Error or Sentinel in err's
// chain (searched as errors.As searches), "" for nil, and CodeInternal for
// any other error. It does not allocate.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	if c, ok := codeOf(err); ok {
		return c
	}
	return CodeInternal
}

func codeOf(err error) (Code, bool) {
	for err != nil {
		switch e := err.(type) {
		case *Error:
			if e == nil {
				return "", false
			}
			return e.Code, true
		case Sentinel:
			return e.code, true
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if c, ok := codeOf(e); ok {
					return c, true
				}
			}
			return "", false
		default:
			return "", false
		}
	}
	return "", false
}

// HTTPStatus maps a contract code to the HTTP status a gateway answers with.
// It follows ai_gateway/error_mapping.json, the A2A and RBAC enforcement
// vectors, and gateway practice for the rest; unknown codes map to 500.
func HTTPStatus(code Code) int {
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
