package identity

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/internal/readbody"
)

// Header names, algorithm and version of HTTP request attestation v1
// (schemas/crypto/http_attestation.schema.json).
const (
	HeaderKeyID      = "X-Talos-Key-ID"
	HeaderTimestamp  = "X-Talos-Timestamp"
	HeaderNonce      = "X-Talos-Nonce"
	HeaderSignature  = "X-Talos-Signature"
	HeaderSigAlg     = "X-Talos-Sig-Alg"
	HeaderSigVersion = "X-Talos-Sig-Version"

	AttestationAlg     = "ed25519"
	AttestationVersion = "v1"
)

// AttestationSigningInput returns the HTTP attestation v1 signing input:
//
//	BODY \n METHOD \n RAW_PATH_QUERY \n NONCE \n TIMESTAMP \n OPCODE
//
// canonicalBody is the RFC 8785 canonical JSON of the request body, or
// empty when there is no body; method is upper-cased; rawPathQuery is the
// request target exactly as sent (no normalization or query reordering);
// timestamp is the header text; opcode is the server-side route id (it is
// never sent). Most callers use AttestationSigner and AttestationVerifier,
// which compute it.
func AttestationSigningInput(canonicalBody []byte, method, rawPathQuery, nonce, timestamp, opcode string) []byte {
	b := make([]byte, 0, len(canonicalBody)+signingTailSize(method, rawPathQuery, nonce, timestamp, opcode))
	b = append(b, canonicalBody...)
	return appendSigningTail(b, method, rawPathQuery, nonce, timestamp, opcode)
}

// signingInput is AttestationSigningInput for a raw request body: its
// canonical form is written into the signing input directly.
func signingInput(body []byte, method, rawPathQuery, nonce, timestamp, opcode string) ([]byte, error) {
	b := make([]byte, 0, len(body)+signingTailSize(method, rawPathQuery, nonce, timestamp, opcode))
	if len(body) > 0 {
		var err error
		if b, err = contracts.AppendCanonical(b, body); err != nil {
			return nil, err
		}
	}
	return appendSigningTail(b, method, rawPathQuery, nonce, timestamp, opcode), nil
}

func signingTailSize(method, rawPathQuery, nonce, timestamp, opcode string) int {
	return len(method) + len(rawPathQuery) + len(nonce) + len(timestamp) + len(opcode) + 5
}

func appendSigningTail(b []byte, method, rawPathQuery, nonce, timestamp, opcode string) []byte {
	b = append(b, '\n')
	b = append(b, strings.ToUpper(method)...)
	b = append(b, '\n')
	b = append(b, rawPathQuery...)
	b = append(b, '\n')
	b = append(b, nonce...)
	b = append(b, '\n')
	b = append(b, timestamp...)
	b = append(b, '\n')
	b = append(b, opcode...)
	return b
}

// AttestationHeaders is a parsed, format-checked set of the six attestation
// headers.
type AttestationHeaders struct {
	KeyID     string
	Timestamp int64 // Unix seconds
	Nonce     string
	Signature []byte // 64 bytes
}

func schemaError(msg string) error {
	return contracts.New(contracts.CodeSchemaValidationError, "identity: attestation headers: "+msg)
}

// ParseAttestationHeaders checks the format of the six headers, before any
// cryptography, as the schema does: every header present exactly once;
// X-Talos-Key-ID 1–255 visible ASCII characters; X-Talos-Timestamp a
// non-negative decimal integer without sign or leading zeros;
// X-Talos-Nonce 8–128 printable ASCII characters; X-Talos-Signature strict
// unpadded base64url of 64 bytes; X-Talos-Sig-Alg "ed25519" and
// X-Talos-Sig-Version "v1". Errors are *contracts.Error with code
// SCHEMA_VALIDATION_ERROR.
func ParseAttestationHeaders(h http.Header) (AttestationHeaders, error) {
	var a AttestationHeaders
	get := func(name string) (string, error) {
		v := h.Values(name)
		switch len(v) {
		case 0:
			return "", schemaError("missing " + name)
		case 1:
			return v[0], nil
		default:
			return "", schemaError("repeated " + name)
		}
	}
	keyID, err := get(HeaderKeyID)
	if err != nil {
		return a, err
	}
	if len(keyID) == 0 || len(keyID) > maxKeyIDLength || !isASCIIRange(keyID, '!', '~') {
		return a, schemaError(HeaderKeyID + " must be 1-255 visible ASCII characters")
	}
	ts, err := get(HeaderTimestamp)
	if err != nil {
		return a, err
	}
	unix, ok := parseTimestamp(ts)
	if !ok {
		return a, schemaError(HeaderTimestamp + " must be a non-negative decimal integer")
	}
	nonce, err := get(HeaderNonce)
	if err != nil {
		return a, err
	}
	if len(nonce) < minNonceLength || len(nonce) > maxNonceLength || !isASCIIRange(nonce, ' ', '~') {
		return a, schemaError(HeaderNonce + " must be 8-128 printable ASCII characters")
	}
	sigText, err := get(HeaderSignature)
	if err != nil {
		return a, err
	}
	if len(sigText) == 0 || len(sigText) > maxSignatureTextLength {
		return a, schemaError(HeaderSignature + " has a bad length")
	}
	sig, err := contracts.DecodeBase64URL(sigText)
	if err != nil {
		return a, schemaError(HeaderSignature + " must be unpadded base64url")
	}
	if len(sig) != ed25519.SignatureSize {
		return a, schemaError(HeaderSignature + " must encode 64 bytes")
	}
	alg, err := get(HeaderSigAlg)
	if err != nil {
		return a, err
	}
	if alg != AttestationAlg {
		return a, schemaError(HeaderSigAlg + ` must be "ed25519"`)
	}
	ver, err := get(HeaderSigVersion)
	if err != nil {
		return a, err
	}
	if ver != AttestationVersion {
		return a, schemaError(HeaderSigVersion + ` must be "v1"`)
	}
	return AttestationHeaders{KeyID: keyID, Timestamp: unix, Nonce: nonce, Signature: sig}, nil
}

// Set writes the six headers of a into h, replacing any present.
func (a AttestationHeaders) Set(h http.Header) {
	h.Set(HeaderKeyID, a.KeyID)
	h.Set(HeaderTimestamp, strconv.FormatInt(a.Timestamp, 10))
	h.Set(HeaderNonce, a.Nonce)
	h.Set(HeaderSignature, contracts.EncodeBase64URL(a.Signature))
	h.Set(HeaderSigAlg, AttestationAlg)
	h.Set(HeaderSigVersion, AttestationVersion)
}

func isASCIIRange(s string, lo, hi byte) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < lo || s[i] > hi {
			return false
		}
	}
	return true
}

func parseTimestamp(s string) (int64, bool) {
	if s == "" || len(s) > maxTimestampDigits || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n, true
}

// readBody reads and restores r.Body, bounded by limit. It returns nil for
// a request without a body.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	orig := r.Body
	body, err := readbody.Read(orig, limit, r.ContentLength)
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeInvalidInput, "identity: attestation: reading the request body", err)
	}
	if int64(len(body)) > limit {
		return nil, contracts.New(contracts.CodeInvalidInput, "identity: attestation: request body exceeds "+strconv.FormatInt(limit, 10)+" bytes")
	}
	r.Body = readCloser{Reader: bytes.NewReader(body), Closer: orig}
	return body, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// rawPathQuery returns the request target as received: r.RequestURI for
// server requests (with the scheme and authority of an absolute-form
// target removed), r.URL.RequestURI() for client requests.
func rawPathQuery(r *http.Request) string {
	u := r.RequestURI
	if u == "" {
		return r.URL.RequestURI()
	}
	if !strings.HasPrefix(u, "/") {
		if i := strings.Index(u, "://"); i >= 0 {
			rest := u[i+3:]
			if j := strings.IndexAny(rest, "/?"); j >= 0 {
				u = rest[j:]
				if strings.HasPrefix(u, "?") {
					u = "/" + u
				}
			} else {
				u = "/"
			}
		}
	}
	return u
}

// AttestationSignerConfig configures an AttestationSigner.
type AttestationSignerConfig struct {
	// Signer signs the requests; its Public must be an ed25519.PublicKey.
	// Required: use Wallet.Signer().
	Signer crypto.Signer
	// KeyID is sent as X-Talos-Key-ID. If empty, the did:key of the
	// signer's public key is sent.
	KeyID string
	// Now returns the current time. If nil, time.Now is used.
	Now func() time.Time
	// Nonce returns a fresh nonce. If nil, 16 random bytes in base64url
	// (22 characters) are used. A nonce must be 8-128 printable ASCII
	// characters without leading or trailing spaces.
	Nonce func() (string, error)
	// MaxBodySize bounds the body read for signing. If zero,
	// DefaultMaxAttestedBody is used.
	MaxBodySize int64
}

// An AttestationSigner adds HTTP attestation v1 headers to outgoing
// requests. It is safe for concurrent use if its Signer is.
type AttestationSigner struct {
	cfg AttestationSignerConfig
}

// NewAttestationSigner validates cfg and returns a signer. Errors have code
// TALOS_INVALID_INPUT.
func NewAttestationSigner(cfg AttestationSignerConfig) (*AttestationSigner, error) {
	if cfg.Signer == nil {
		return nil, contracts.New(contracts.CodeInvalidInput, "identity: AttestationSignerConfig.Signer is required")
	}
	pub, ok := cfg.Signer.Public().(ed25519.PublicKey)
	if !ok || len(pub) != ed25519.PublicKeySize {
		return nil, contracts.New(contracts.CodeInvalidInput, "identity: attestation signer must hold an Ed25519 key")
	}
	if cfg.KeyID == "" {
		d, _ := DIDFromPublicKey(pub)
		cfg.KeyID = d.String()
	}
	if len(cfg.KeyID) > maxKeyIDLength || !isASCIIRange(cfg.KeyID, '!', '~') {
		return nil, contracts.New(contracts.CodeInvalidInput, "identity: attestation key id must be 1-255 visible ASCII characters")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Nonce == nil {
		cfg.Nonce = randomNonce
	}
	if cfg.MaxBodySize <= 0 {
		cfg.MaxBodySize = DefaultMaxAttestedBody
	}
	return &AttestationSigner{cfg: cfg}, nil
}

func randomNonce() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return contracts.EncodeBase64URL(b[:]), nil
}

// Sign sets the six X-Talos-* headers on r for the route's opcode. It reads
// the body (which must be empty or JSON) and restores it, also setting
// GetBody so that redirects and retries resend it. The signed path and
// query are r.URL.RequestURI(), which is what net/http sends. Errors are
// *contracts.Error with code TALOS_INVALID_INPUT (bad body, opcode or
// nonce) or TALOS_CRYPTO_ERROR (the signer failed).
func (s *AttestationSigner) Sign(r *http.Request, opcode string) error {
	if opcode == "" || strings.ContainsRune(opcode, '\n') {
		return contracts.New(contracts.CodeInvalidInput, "identity: attestation opcode must be non-empty without newlines")
	}
	body, err := readBody(r, s.cfg.MaxBodySize)
	if err != nil {
		return err
	}
	if body != nil {
		r.ContentLength = int64(len(body))
		r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	nonce, err := s.cfg.Nonce()
	if err != nil {
		return contracts.Wrap(contracts.CodeCryptoError, "identity: attestation: generating a nonce", err)
	}
	if len(nonce) < minNonceLength || len(nonce) > maxNonceLength || !isASCIIRange(nonce, ' ', '~') ||
		nonce[0] == ' ' || nonce[len(nonce)-1] == ' ' {
		return contracts.New(contracts.CodeInvalidInput, "identity: attestation nonce must be 8-128 printable ASCII characters")
	}
	unix := s.cfg.Now().Unix()
	if unix < 0 {
		return contracts.New(contracts.CodeInvalidInput, "identity: attestation clock is before 1970")
	}
	ts := strconv.FormatInt(unix, 10)
	method := r.Method
	if method == "" {
		method = http.MethodGet
	}
	input, err := signingInput(body, method, rawPathQuery(r), nonce, ts, opcode)
	if err != nil {
		return contracts.Wrap(contracts.CodeInvalidInput, "identity: attestation: request body is not JSON", err)
	}
	sig, err := s.cfg.Signer.Sign(rand.Reader, input, crypto.Hash(0))
	if err != nil {
		return contracts.Wrap(contracts.CodeCryptoError, "identity: attestation: signing failed", err)
	}
	if r.Header == nil {
		r.Header = make(http.Header)
	}
	AttestationHeaders{KeyID: s.cfg.KeyID, Timestamp: unix, Nonce: nonce, Signature: sig}.Set(r.Header)
	return nil
}

// AttestationVerifierConfig configures an AttestationVerifier. Opcode, Keys
// and Nonces are required; there is no permissive default for any of them.
type AttestationVerifierConfig struct {
	// Opcode derives the route's opcode from the received request (e.g.
	// "llm.chat.completions" for POST /v1/chat/completions). It must be
	// route-exact. An error denies the request: a *contracts.Error is
	// returned as is, any other error becomes AUTH_INVALID.
	Opcode func(r *http.Request) (string, error)
	// Keys maps X-Talos-Key-ID to the signer's public key, e.g.
	// DIDKeys(nil) for did:key ids or StaticKeys for a registry.
	Keys KeyResolver
	// Nonces remembers (public key, nonce) pairs. An error from it denies
	// the request.
	Nonces NonceStore
	// Now returns the current time. If nil, time.Now is used.
	Now func() time.Time
	// Window is the accepted clock distance of X-Talos-Timestamp. If zero,
	// DefaultAttestationWindow (60 s) is used.
	Window time.Duration
	// NonceTTL is how long nonces are remembered; it must be at least twice
	// Window. If zero, DefaultNonceTTL (300 s) is used.
	NonceTTL time.Duration
	// MaxBodySize bounds the request body. If zero, DefaultMaxAttestedBody
	// is used.
	MaxBodySize int64
}

// An AttestationVerifier checks HTTP attestation v1 on incoming requests.
// It is safe for concurrent use if its Opcode, Keys and Nonces are.
type AttestationVerifier struct {
	cfg AttestationVerifierConfig
}

// An Attestation is the result of a successful verification.
type Attestation struct {
	// KeyID is the X-Talos-Key-ID header. It is not covered by the
	// signature; bind principals to PublicKey or DID, or to KeyID only
	// when no two key ids resolve to the same key.
	KeyID string
	// PublicKey is the key that verified the signature.
	PublicKey ed25519.PublicKey
	// DID is the did:key of PublicKey.
	DID DID
	// Nonce and Timestamp are the verified header values.
	Nonce     string
	Timestamp time.Time
	// Opcode is the server-derived opcode that was verified.
	Opcode string
}

// NewAttestationVerifier validates cfg and returns a verifier. Errors have
// code TALOS_INVALID_INPUT.
func NewAttestationVerifier(cfg AttestationVerifierConfig) (*AttestationVerifier, error) {
	if cfg.Opcode == nil || cfg.Keys == nil || cfg.Nonces == nil {
		return nil, contracts.New(contracts.CodeInvalidInput,
			"identity: AttestationVerifierConfig.Opcode, .Keys and .Nonces are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Window == 0 {
		cfg.Window = DefaultAttestationWindow
	}
	if cfg.NonceTTL == 0 {
		cfg.NonceTTL = DefaultNonceTTL
	}
	if cfg.Window < time.Second || cfg.NonceTTL < 2*cfg.Window {
		return nil, contracts.New(contracts.CodeInvalidInput,
			"identity: attestation window must be at least 1s and NonceTTL at least twice the window")
	}
	if cfg.MaxBodySize <= 0 {
		cfg.MaxBodySize = DefaultMaxAttestedBody
	}
	return &AttestationVerifier{cfg: cfg}, nil
}

// msgNotVerified is the one message of an attestation whose key id is
// unknown or whose signature does not verify.
const msgNotVerified = "signature not verified"

// ErrUnknownKeyID and ErrBadSignature are the two reasons behind the one
// AUTH_INVALID error "identity: attestation: signature not verified" of
// [AttestationVerifier.Verify]: the key id resolved to no key, or the
// signature did not verify under the key it resolved to. The error text,
// code and HTTP response are identical for both (no oracle for which key
// ids are registered); a server tells them apart for its own audit log
// with errors.Is. The resolver's own error, if any, is wrapped too.
var (
	ErrUnknownKeyID = errors.New("identity: attestation: unknown key id")
	ErrBadSignature = errors.New("identity: attestation: bad signature")
)

// placeholderKey stands in for an unknown key so that a request naming one
// costs the same signature check as any other. Its private key is no
// secret (the seed is this package's text); Verify fails such a request
// whatever the check says.
var placeholderKey = func() ed25519.PublicKey {
	seed := sha256.Sum256([]byte("talos identity: attestation placeholder key"))
	return ed25519.NewKeyFromSeed(seed[:]).Public().(ed25519.PublicKey)
}()

func authInvalid(msg string, cause error) error {
	return contracts.Wrap(contracts.CodeAuthInvalid, "identity: attestation: "+msg, cause)
}

// Verify checks the attestation of r and, on success, leaves r.Body
// readable from the start for the next handler. The steps, in order:
// header format (SCHEMA_VALIDATION_ERROR), timestamp within the window,
// opcode derivation, key resolution, body canonicalization and the
// Ed25519 signature (AUTH_INVALID), and only then the nonce claim
// (REPLAY_DETECTED), so unauthenticated requests never fill the nonce
// store. A body over the limit is TALOS_INVALID_INPUT. A nonce store or key
// resolver failure denies the request with its own code (INTERNAL,
// TALOS_TRANSPORT_*), retryable.
//
// The replay key is (public key, nonce), not (key id, nonce): the key id
// is not signed, so two ids of one key must not give a nonce two lives.
func (v *AttestationVerifier) Verify(r *http.Request) (*Attestation, error) {
	h, err := ParseAttestationHeaders(r.Header)
	if err != nil {
		return nil, err
	}
	now := v.cfg.Now()
	window := int64(v.cfg.Window / time.Second)
	if d := now.Unix() - h.Timestamp; d > window || d < -window {
		return nil, authInvalid("timestamp outside the accepted window", nil)
	}
	opcode, err := v.cfg.Opcode(r)
	if err != nil {
		switch err.(type) {
		case *contracts.Error, contracts.Sentinel:
			return nil, err
		}
		return nil, authInvalid("no opcode for this route", err)
	}
	if opcode == "" || strings.ContainsRune(opcode, '\n') {
		return nil, authInvalid("no opcode for this route", nil)
	}
	ctx := r.Context()
	pub, err := v.cfg.Keys.ResolveKey(ctx, h.KeyID)
	// unknown is the reason when the key id resolves to no key. It is
	// reported exactly like a bad signature, after the same body and
	// signature work against a placeholder key, so that responses do not
	// tell which key ids are registered.
	var unknown error
	if err != nil {
		switch contracts.CodeOf(err) {
		case contracts.CodeTransportError, contracts.CodeTransportTimeout, contracts.CodeInternal:
			return nil, contracts.Wrap(contracts.CodeOf(err), "identity: attestation: key resolution failed", err).WithRetryable(true)
		}
		unknown = errors.Join(ErrUnknownKeyID, err)
	} else if len(pub) != ed25519.PublicKeySize {
		unknown = ErrUnknownKeyID
	}
	if unknown != nil {
		pub = placeholderKey
	}
	body, err := readBody(r, v.cfg.MaxBodySize)
	if err != nil {
		return nil, err
	}
	input, err := signingInput(body, r.Method, rawPathQuery(r), h.Nonce, r.Header.Get(HeaderTimestamp), opcode)
	if err != nil {
		return nil, authInvalid("request body is not canonicalizable JSON", err)
	}
	if !ed25519.Verify(pub, input, h.Signature) || unknown != nil {
		if unknown == nil {
			unknown = ErrBadSignature
		}
		return nil, authInvalid(msgNotVerified, unknown)
	}
	did, _ := DIDFromPublicKey(pub)
	first, err := ClaimNonce(ctx, v.cfg.Nonces, did.String(), replayKey(pub, h.Nonce), v.cfg.NonceTTL)
	if err != nil {
		if errors.Is(err, ErrNonceRateLimited) {
			return nil, contracts.Wrap(contracts.CodeRateLimited, "identity: attestation: too many requests from this key; request denied", err).WithRetryable(true)
		}
		return nil, contracts.Wrap(contracts.CodeInternal, "identity: attestation: nonce store unavailable; request denied", err).WithRetryable(true)
	}
	if !first {
		return nil, contracts.New(contracts.CodeReplayDetected, "identity: attestation: nonce already used")
	}
	return &Attestation{
		KeyID: h.KeyID, PublicKey: append(ed25519.PublicKey(nil), pub...), DID: did,
		Nonce: h.Nonce, Timestamp: time.Unix(h.Timestamp, 0), Opcode: opcode,
	}, nil
}

func replayKey(pub ed25519.PublicKey, nonce string) string {
	return "talos:attest:v1:" + contracts.EncodeBase64URL(pub) + ":" + nonce
}

type attestationKey struct{}

// AttestationFromContext returns the Attestation that Middleware stored in
// a request's context.
func AttestationFromContext(ctx context.Context) (*Attestation, bool) {
	a, ok := ctx.Value(attestationKey{}).(*Attestation)
	return a, ok
}

// Middleware verifies every request before next. A rejected request gets
// the contract error object ({code, message, retryable}) as JSON with the
// status contracts.HTTPStatus(code); an accepted one reaches next with its
// body restored and its Attestation in the context (AttestationFromContext).
func (v *AttestationVerifier) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, err := v.Verify(r)
		if err != nil {
			e := &contracts.Error{Code: contracts.CodeOf(err), Message: "identity: attestation failed"}
			var ce *contracts.Error
			if errors.As(err, &ce) {
				e = &contracts.Error{Code: ce.Code, Message: ce.Message, Retryable: ce.Retryable}
			}
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(contracts.HTTPStatus(e.Code))
			_ = json.NewEncoder(w).Encode(e)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), attestationKey{}, a)))
	})
}
