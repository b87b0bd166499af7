package capability

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// MCPFrameType is the frame type a SignedFrame travels in
// (sdk/mcp_sign_verify.json: frame_type "DATA"), with payload =
// base64url(PayloadBytes) and signature = base64url(Signature).
const MCPFrameType = "DATA"

// A SignedFrame is a signed MCP payload (schemas/mcp_payload.json):
// PayloadBytes is the canonical JSON of {request, session_id,
// correlation_id, tool, action, timestamp} and Signature is Ed25519 over
// exactly those bytes. CorrelationID is an unsigned convenience copy:
// verification never trusts it, only the signed one.
type SignedFrame struct {
	PayloadBytes  []byte
	Signature     []byte
	SignerDID     string
	CorrelationID string
}

// An MCPPayload is the signed content of a SignedFrame.
type MCPPayload struct {
	Request       json.RawMessage `json:"request"`
	SessionID     string          `json:"session_id"`
	CorrelationID string          `json:"correlation_id"`
	Tool          string          `json:"tool"`
	Action        string          `json:"action"`
	Timestamp     int64           `json:"timestamp"`
}

// SignMCPRequest signs an MCP request for session, correlation id, tool and
// action at Unix time ts. request must be a JSON object under the strict
// canonical rules (no null, no non-integer numbers, no duplicate keys).
// signer is the signing identity key as any crypto.Signer holding an
// Ed25519 key (a wallet's [identity.Wallet.Signer], or a key in a KMS or
// HSM); SignerDID is the did:key of its public key. Ed25519 signing is
// deterministic. Errors have code TALOS_INVALID_INPUT (TALOS_CRYPTO_ERROR
// when the signer fails or returns an invalid signature).
func SignMCPRequest(signer crypto.Signer, request json.RawMessage, sessionID, correlationID, tool, action string, ts int64) (*SignedFrame, error) {
	did, pub, err := signerDID(signer, contracts.CodeInvalidInput)
	if err != nil {
		return nil, err
	}
	p := MCPPayload{Request: request, SessionID: sessionID, CorrelationID: correlationID, Tool: tool, Action: action, Timestamp: ts}
	if err := checkMCPFields(&p); err != nil {
		return nil, err
	}
	b, err := contracts.MarshalStrict(p)
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeInvalidInput, "capability: MCP payload is not strict canonical JSON", err)
	}
	if len(b) > MaxMCPPayloadSize {
		return nil, contracts.New(contracts.CodeInvalidInput, "capability: MCP payload too large")
	}
	sig, err := signPayload(signer, pub, b)
	if err != nil {
		return nil, err
	}
	return &SignedFrame{PayloadBytes: b, Signature: sig, SignerDID: did.String(), CorrelationID: correlationID}, nil
}

func checkMCPFields(p *MCPPayload) error {
	if r := bytes.TrimLeft(p.Request, " \t\r\n"); len(r) == 0 || r[0] != '{' {
		return contracts.New(contracts.CodeInvalidInput, "capability: MCP request must be a JSON object")
	}
	for _, s := range []string{p.SessionID, p.CorrelationID, p.Tool, p.Action} {
		if !utf8.ValidString(s) {
			return contracts.New(contracts.CodeInvalidInput, "capability: MCP payload strings must be UTF-8")
		}
	}
	return nil
}

// ParseMCPPayload reads signed payload bytes strictly: they must be the
// canonical JSON of an object with exactly the six payload members (no
// others, none missing), under the strict canonical rules. Errors have
// code TALOS_INVALID_INPUT. It does not verify the signature.
func ParseMCPPayload(b []byte) (*MCPPayload, error) {
	if len(b) > MaxMCPPayloadSize {
		return nil, contracts.New(contracts.CodeInvalidInput, "capability: MCP payload too large")
	}
	c, err := contracts.CanonicalizeStrict(b)
	if err != nil {
		return nil, err
	}
	if !bytes.Equal(c, b) {
		return nil, contracts.New(contracts.CodeInvalidInput, "capability: MCP payload is not canonical JSON")
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, contracts.Wrap(contracts.CodeInvalidInput, "capability: MCP payload is not an object", err)
	}
	for _, k := range []string{"request", "session_id", "correlation_id", "tool", "action", "timestamp"} {
		if _, ok := raw[k]; !ok {
			return nil, contracts.New(contracts.CodeInvalidInput, "capability: MCP payload lacks "+k)
		}
	}
	var p MCPPayload
	if err := contracts.UnmarshalStrict(b, &p); err != nil {
		return nil, err
	}
	if err := checkMCPFields(&p); err != nil {
		return nil, err
	}
	return &p, nil
}

// VerifyMCPResponse reports whether f carries a valid signature by signer
// over a well-formed payload whose *signed* correlation_id equals
// expectedCorrelationID. A bad signature or a different correlation id is
// false with a nil error (sdk/mcp_sign_verify.json); a nil frame, a key
// that is not 32 bytes, or signed bytes that are not a payload is an error
// with code TALOS_INVALID_INPUT.
func VerifyMCPResponse(f *SignedFrame, expectedCorrelationID string, signer ed25519.PublicKey) (bool, error) {
	if f == nil {
		return false, contracts.New(contracts.CodeInvalidInput, "capability: nil frame")
	}
	if len(signer) != ed25519.PublicKeySize {
		return false, contracts.New(contracts.CodeInvalidInput, "capability: signer key must be 32 bytes")
	}
	if len(f.PayloadBytes) > MaxMCPPayloadSize || !ed25519.Verify(signer, f.PayloadBytes, f.Signature) {
		return false, nil
	}
	p, err := ParseMCPPayload(f.PayloadBytes)
	if err != nil {
		return false, err
	}
	return p.CorrelationID == expectedCorrelationID, nil
}

// VerifyMCPRequest is the server side: it verifies f's signature under
// the key of f.SignerDID (a did:key), parses the payload and checks that
// its timestamp is within window of now (DefaultMCPWindow when window is
// zero). It returns the payload and the proven signer, which is the
// Principal to put in a Request. Failures are *contracts.Error:
// TALOS_INVALID_INPUT for malformed frames, AUTH_INVALID_SIGNATURE for a bad
// signature, AUTH_EXPIRED for a stale or future timestamp. Replay is
// checked separately with an MCPReplayGuard.
func VerifyMCPRequest(f *SignedFrame, now time.Time, window time.Duration) (*MCPPayload, identity.DID, error) {
	if f == nil {
		return nil, identity.DID{}, contracts.New(contracts.CodeInvalidInput, "capability: nil frame")
	}
	signer, err := identity.ParseDID(f.SignerDID)
	if err != nil {
		return nil, identity.DID{}, err
	}
	if len(f.PayloadBytes) > MaxMCPPayloadSize || !signer.Verify(f.PayloadBytes, f.Signature) {
		return nil, identity.DID{}, contracts.New(contracts.CodeAuthInvalidSignature, "capability: invalid MCP signature")
	}
	p, err := ParseMCPPayload(f.PayloadBytes)
	if err != nil {
		return nil, identity.DID{}, err
	}
	if window <= 0 {
		window = DefaultMCPWindow
	}
	if d := now.Sub(time.Unix(p.Timestamp, 0)); d > window || d < -window {
		return nil, identity.DID{}, contracts.New(contracts.CodeAuthExpired, "capability: MCP timestamp outside the window")
	}
	return p, signer, nil
}

// An MCPReplayGuard rejects a second use of a correlation id within a
// session (PROTOCOL: correlation ids are unique per session; MCP payloads
// carry no other nonce). It is safe for concurrent use.
type MCPReplayGuard struct {
	store ReplayStore
	ttl   time.Duration
}

// NewMCPReplayGuard returns a guard remembering correlation ids in store
// for ttl (twice DefaultMCPWindow when zero, so an id cannot be replayed
// while its timestamp is still accepted). It panics if store is nil.
func NewMCPReplayGuard(store ReplayStore, ttl time.Duration) *MCPReplayGuard {
	if store == nil {
		panic("capability: NewMCPReplayGuard with a nil store")
	}
	if ttl <= 0 {
		ttl = 2 * DefaultMCPWindow
	}
	return &MCPReplayGuard{store: store, ttl: ttl}
}

// Check claims (session, correlation id) of a verified payload. A replay
// is an error with code REPLAY_DETECTED; a store failure is an error with
// code INTERNAL (deny).
func (g *MCPReplayGuard) Check(ctx context.Context, p *MCPPayload) error {
	return g.check(ctx, "", false, p)
}

// check is Check, accounted to principal (the frame's signer) in a store
// with per-principal quotas when scoped.
func (g *MCPReplayGuard) check(ctx context.Context, principal string, scoped bool, p *MCPPayload) error {
	if p.SessionID == "" || p.CorrelationID == "" {
		return contracts.New(contracts.CodeInvalidInput, "capability: MCP payload needs a session and correlation id")
	}
	key := "mcp:" + strconv.Itoa(len(p.SessionID)) + ":" + p.SessionID + p.CorrelationID
	var first bool
	var err error
	if scoped {
		first, err = identity.ClaimNonce(ctx, g.store, principal, key, g.ttl)
	} else {
		first, err = g.store.Claim(ctx, key, g.ttl)
	}
	if errors.Is(err, identity.ErrNonceRateLimited) {
		return contracts.Wrap(contracts.CodeRateLimited, "capability: nonce quota of this principal exhausted", err).WithRetryable(true)
	}
	if err != nil {
		return contracts.Wrap(contracts.CodeInternal, "capability: replay store failed", err).WithRetryable(true)
	}
	if !first {
		return contracts.New(contracts.CodeReplayDetected, "capability: MCP correlation id replayed")
	}
	return nil
}

// Document error codes of the MCP tool registry's document checks
// (schemas/mcp/hashing_vectors.json).
const (
	CodeDocHashMismatch    contracts.Code = "DOC_HASH_MISMATCH"
	CodeDocSizeExceeded    contracts.Code = "DOC_SIZE_EXCEEDED"
	CodeDocEncodingInvalid contracts.Code = "DOC_ENCODING_INVALID"
	CodeDocPointerInvalid  contracts.Code = "DOC_POINTER_INVALID"
)

// ToolCallDigest returns the request digest of a tool call
// (schemas/mcp/tool_call_envelope.schema.json): lowercase hex SHA-256 of
// the canonical JSON of {tool_server, tool_name, capability:{read_only},
// args}. args must be a JSON object, and the names valid UTF-8 (encoding/json
// would replace invalid bytes with U+FFFD, so two different names would
// share a digest). Errors have code TALOS_INVALID_INPUT.
func ToolCallDigest(toolServer, toolName string, readOnly bool, args json.RawMessage) (string, error) {
	if len(bytes.TrimSpace(args)) == 0 || bytes.TrimSpace(args)[0] != '{' {
		return "", contracts.New(contracts.CodeInvalidInput, "capability: tool call args must be a JSON object")
	}
	if !utf8.ValidString(toolServer) || !utf8.ValidString(toolName) {
		return "", contracts.New(contracts.CodeInvalidInput, "capability: tool server and name must be valid UTF-8")
	}
	env := struct {
		Server     string `json:"tool_server"`
		Name       string `json:"tool_name"`
		Capability struct {
			ReadOnly bool `json:"read_only"`
		} `json:"capability"`
		Args json.RawMessage `json:"args"`
	}{Server: toolServer, Name: toolName, Args: args}
	env.Capability.ReadOnly = readOnly
	b, err := contracts.Marshal(env)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// DocumentDigest returns lowercase hex SHA-256 of a JSON document's
// canonical form.
func DocumentDigest(doc json.RawMessage) (string, error) {
	b, err := contracts.Canonicalize(doc)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// BytesDigest returns lowercase hex SHA-256 of raw document bytes.
func BytesDigest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// A DocSpec says where a write tool's arguments carry document content.
type DocSpec struct {
	WriteContentPointers []string `json:"write_content_pointers"` // RFC 6901 pointers into args
	ReadContentPointers  []string `json:"read_content_pointers"`  // RFC 6901 pointers into results
	MaxWriteBytes        int      `json:"max_write_bytes"`        // after decoding
	MaxReadBytes         int      `json:"max_read_bytes"`         // after decoding
	ContentEncoding      string   `json:"content_encoding"`       // "utf8" or "base64"
}

// A DocHash is the expected digest (BytesDigest of the decoded content) of
// the document at Pointer.
type DocHash struct {
	Pointer string `json:"pointer"`
	Hash    string `json:"hash"`
}

// ValidateDocWrites checks the documents a write tool call carries: each
// pointer must name a string in args (DOC_POINTER_INVALID), decodable in
// the content encoding (DOC_ENCODING_INVALID), of at most MaxWriteBytes
// (DOC_SIZE_EXCEEDED), and matching its expected hash if one is given
// (DOC_HASH_MISMATCH). Errors are *contracts.Error with those codes.
func ValidateDocWrites(spec DocSpec, args json.RawMessage, expected []DocHash) error {
	var doc any
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.UseNumber()
	if err := contracts.CheckJSON(args, false); err != nil {
		return err
	}
	if err := dec.Decode(&doc); err != nil {
		return contracts.Wrap(contracts.CodeInvalidInput, "capability: args are not JSON", err)
	}
	for _, ptr := range spec.WriteContentPointers {
		v, ok := resolvePointer(doc, ptr)
		s, isStr := v.(string)
		if !ok || !isStr {
			return contracts.New(CodeDocPointerInvalid, "capability: document pointer "+strconv.Quote(ptr)+" names no string")
		}
		var content []byte
		switch spec.ContentEncoding {
		case "utf8", "":
			content = []byte(s)
		case "base64":
			b, err := contracts.DecodeBase64Lenient(s)
			if err != nil {
				return contracts.Wrap(CodeDocEncodingInvalid, "capability: document is not base64", err)
			}
			content = b
		default:
			return contracts.New(CodeDocEncodingInvalid, "capability: unknown content encoding")
		}
		if len(content) > spec.MaxWriteBytes {
			return contracts.New(CodeDocSizeExceeded, "capability: document exceeds "+strconv.Itoa(spec.MaxWriteBytes)+" bytes")
		}
		for _, h := range expected {
			if h.Pointer == ptr && h.Hash != BytesDigest(content) {
				return contracts.New(CodeDocHashMismatch, "capability: document hash mismatch")
			}
		}
	}
	return nil
}

// resolvePointer resolves an RFC 6901 JSON pointer.
func resolvePointer(doc any, ptr string) (any, bool) {
	if ptr == "" {
		return doc, true
	}
	if ptr[0] != '/' {
		return nil, false
	}
	cur := doc
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		switch c := cur.(type) {
		case map[string]any:
			v, ok := c[tok]
			if !ok {
				return nil, false
			}
			cur = v
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(c) || (len(tok) > 1 && tok[0] == '0') {
				return nil, false
			}
			cur = c[i]
		default:
			return nil, false
		}
	}
	return cur, true
}

// AuthorizeMCP authorizes a signed MCP request: the holder is proven by
// the payload signature. It verifies f with VerifyMCPRequest (the signer
// becomes the Principal, tool and action come from the signed payload,
// and ArgsDigest is the hex SHA-256 of the canonical request), asks a,
// and, only for an allowed request, claims (session, correlation id) in
// guard so that a replayed frame is denied. A bad or malformed signature
// is SIGNATURE_INVALID, and a timestamp outside the window or a replayed
// correlation id is REPLAY. As with Authorizer, the error is set only for
// back-end failures and misuse, and then the Decision denies.
func AuthorizeMCP(ctx context.Context, a Authorizer, f *SignedFrame, capability string, guard *MCPReplayGuard, now time.Time) (Decision, *MCPPayload, error) {
	if a == nil || guard == nil {
		return Decision{Reason: ReasonNoCapability}, nil, contracts.New(contracts.CodeInvalidInput, "capability: AuthorizeMCP needs an Authorizer and an MCPReplayGuard")
	}
	p, signer, err := VerifyMCPRequest(f, now, 0)
	if err != nil {
		d := Decision{Reason: ReasonSignatureInvalid}
		if contracts.CodeOf(err) == contracts.CodeAuthExpired {
			d.Reason = ReasonReplay
		}
		return d, nil, nil
	}
	sum := sha256.Sum256(mustCanonical(p.Request))
	d, err := a.Authorize(ctx, Request{Capability: capability, SessionID: p.SessionID, Principal: signer,
		Tool: p.Tool, Action: p.Action, ArgsDigest: hex.EncodeToString(sum[:])})
	if err != nil || !d.Allowed {
		d.Allowed = false
		return d, p, err
	}
	if err := guard.check(ctx, signer.String(), true, p); err != nil {
		d.Allowed = false
		if contracts.CodeOf(err) == contracts.CodeReplayDetected {
			d.Reason = ReasonReplay
			return d, p, nil
		}
		d.Reason = ReasonStoreUnavailable
		return d, p, err
	}
	return d, p, nil
}

// mustCanonical returns the canonical form of JSON that ParseMCPPayload
// has already accepted as canonical.
func mustCanonical(b json.RawMessage) []byte {
	if c, err := contracts.Canonicalize(b); err == nil {
		return c
	}
	return b
}
