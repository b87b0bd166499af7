package capability

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// Version is the only token format version this package reads and writes.
const Version = "1.0"

// Reserved metadata members. The contract leaves metadata free-form; this
// package gives three members a meaning, all inside the signed bytes:
//
//   - "aud" (string): the audience; a Verifier configured with an Audience
//     requires it to be equal.
//   - "parent" (64 lowercase hex): the capability hash of the parent token
//     in a delegation chain.
//   - "read_only" (bool): the token grants only actions a ToolRegistry
//     classifies as read.
const (
	MetaAudience = "aud"
	MetaParent   = "parent"
	MetaReadOnly = "read_only"
)

// A Grant is one scope entry of a token: a tool and the actions allowed on
// it. Matching is exact: no wildcards, prefixes or case folding.
//
// ReadOnly limits the grant to actions a [ToolRegistry] classifies as
// read. On the wire it is the scope item member "read_only": true, an
// extension the contract schema tolerates (scope items allow members
// beyond tool and actions, and the signature covers them), so other SDKs
// still verify such a token; they ignore the limit, this package enforces
// it. false is never written: the member is either true or absent, so a
// grant has one encoding.
type Grant struct {
	Tool     string   `json:"tool"`
	Actions  []string `json:"actions"`
	ReadOnly bool     `json:"read_only,omitempty"`
}

// Allows reports whether g names action on tool, exactly. It ignores
// ReadOnly, which needs a tool registry to mean anything: a [Verifier]
// enforces it.
func (g Grant) Allows(tool, action string) bool {
	return g.Tool == tool && slices.Contains(g.Actions, action)
}

// A Token is a contract v1.0 capability token (schemas/capability_token.json):
//
//	{version:"1.0", issuer, subject, scope:[{tool, actions}], exp, nbf?,
//	 nonce, metadata?, signature}
//
// signature = Ed25519(canonical(token − signature)) and the capability hash
// is hex(SHA-256(canonical(token))). A Token is immutable once built by
// [Parse], [Issue] or [Delegate], and safe for concurrent use. Having a
// *Token proves nothing: call [Verify], [VerifyChain] or a [Verifier].
type Token struct {
	issuer, subject       identity.DID
	issuerStr, subjectStr string
	grants                []Grant
	exp, nbf              int64
	hasNbf                bool
	nonce                 string
	metadata              []byte // canonical object, nil when absent
	aud, parent           string
	readOnly              bool
	sig                   [ed25519.SignatureSize]byte

	payload []byte // canonical(token − signature): the signed bytes
	hash    [sha256.Size]byte
	hashHex string
}

// Issuer returns the issuer DID.
func (t *Token) Issuer() identity.DID { return t.issuer }

// Subject returns the subject DID: the holder the token is bound to.
func (t *Token) Subject() identity.DID { return t.subject }

// Grants returns a copy of the token's scope.
func (t *Token) Grants() []Grant {
	out := make([]Grant, len(t.grants))
	for i, g := range t.grants {
		out[i] = Grant{Tool: g.Tool, Actions: slices.Clone(g.Actions), ReadOnly: g.ReadOnly}
	}
	return out
}

// Expiry returns exp.
func (t *Token) Expiry() time.Time { return time.Unix(t.exp, 0) }

// NotBefore returns nbf and whether the token has one.
func (t *Token) NotBefore() (time.Time, bool) { return time.Unix(t.nbf, 0), t.hasNbf }

// Nonce returns the token nonce.
func (t *Token) Nonce() string { return t.nonce }

// Metadata returns a copy of the canonical metadata object, or nil.
func (t *Token) Metadata() json.RawMessage { return bytes.Clone(t.metadata) }

// Audience returns metadata.aud, or "".
func (t *Token) Audience() string { return t.aud }

// Parent returns metadata.parent (the parent's capability hash), or "".
func (t *Token) Parent() string { return t.parent }

// ReadOnly reports metadata.read_only: every grant of the token is then
// limited to read actions, whatever its own ReadOnly member says.
func (t *Token) ReadOnly() bool { return t.readOnly }

// Hash returns the capability hash: lowercase hex SHA-256 of the canonical
// token including its signature.
func (t *Token) Hash() string { return t.hashHex }

// Encode returns the wire form: base64url (no padding) of the canonical
// token JSON.
func (t *Token) Encode() string { return contracts.EncodeBase64URL(t.AppendCanonical(nil)) }

// AppendCanonical appends the canonical JSON of the whole token to dst.
func (t *Token) AppendCanonical(dst []byte) []byte { return t.appendJSON(dst, true) }

// SigningInput returns a copy of the bytes the signature covers.
func (t *Token) SigningInput() []byte { return bytes.Clone(t.payload) }

// Authorize reports whether some grant allows action on tool, by exact
// match as the contract's authorize_fast. It does not verify anything, and
// it ignores read-only limits (metadata.read_only and Grant.ReadOnly),
// which need a [ToolRegistry]: a [Verifier] enforces them.
func (t *Token) Authorize(tool, action string) bool {
	for _, g := range t.grants {
		if g.Allows(tool, action) {
			return true
		}
	}
	return false
}

// String returns a short description naming the hash; it holds no secret.
func (t *Token) String() string { return "capability.Token(" + t.hashHex + ")" }

// appendJSON writes the canonical JSON (keys in RFC 8785 order).
func (t *Token) appendJSON(dst []byte, withSig bool) []byte {
	dst, _, _ = t.appendJSONMark(dst, withSig)
	return dst
}

// appendJSONMark is appendJSON that also reports where the signature
// member (with its leading comma) starts and ends in dst.
func (t *Token) appendJSONMark(dst []byte, withSig bool) (out []byte, sigStart, sigEnd int) {
	dst = append(dst, `{"exp":`...)
	dst = strconv.AppendInt(dst, t.exp, 10)
	dst = append(dst, `,"issuer":`...)
	dst = appendString(dst, t.issuerStr)
	if t.metadata != nil {
		dst = append(dst, `,"metadata":`...)
		dst = append(dst, t.metadata...)
	}
	if t.hasNbf {
		dst = append(dst, `,"nbf":`...)
		dst = strconv.AppendInt(dst, t.nbf, 10)
	}
	dst = append(dst, `,"nonce":`...)
	dst = appendString(dst, t.nonce)
	dst = append(dst, `,"scope":[`...)
	for i, g := range t.grants {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"actions":[`...)
		for j, a := range g.Actions {
			if j > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, a)
		}
		dst = append(dst, ']')
		if g.ReadOnly {
			dst = append(dst, `,"read_only":true`...)
		}
		dst = append(dst, `,"tool":`...)
		dst = appendString(dst, g.Tool)
		dst = append(dst, '}')
	}
	dst = append(dst, ']')
	sigStart = len(dst)
	if withSig {
		dst = append(dst, `,"signature":"`...)
		dst = appendB64(dst, t.sig[:])
		dst = append(dst, '"')
	}
	sigEnd = len(dst)
	dst = append(dst, `,"subject":`...)
	dst = appendString(dst, t.subjectStr)
	dst = append(dst, `,"version":"1.0"}`...)
	return dst, sigStart, sigEnd
}

func appendB64(dst, b []byte) []byte {
	n := len(dst)
	dst = append(dst, make([]byte, base64.RawURLEncoding.EncodedLen(len(b)))...)
	base64.RawURLEncoding.Encode(dst[n:], b)
	return dst
}

// seal computes the derived fields after the token's members are final:
// one canonical encoding gives both the hash and, with the signature
// member cut out, the signed bytes.
func (t *Token) seal() {
	full, i, j := t.appendJSONMark(make([]byte, 0, 768), true)
	t.hash = sha256.Sum256(full)
	t.hashHex = hex.EncodeToString(t.hash[:])
	t.payload = make([]byte, 0, len(full)-(j-i))
	t.payload = append(append(t.payload, full[:i]...), full[j:]...)
}

// Parse reads a token from its wire form: base64url (no padding) of the
// token JSON, or the raw JSON object itself (leading white space allowed).
// The JSON need not be canonical, but it is read strictly: unknown or
// mis-cased fields (a scope item may hold tool, actions and, as the one
// extension, "read_only": true; false is rejected), duplicate keys, null, non-integer numbers or integers
// beyond ±(2^53−1), a version other than "1.0", issuers and subjects that
// are not Ed25519 did:key identifiers, a nonce shorter than 16 characters,
// a signature that is not 64 bytes of strict base64url, reserved metadata
// members of the wrong type, and inputs above the limits in limits.go are
// all rejected with a *contracts.Error of code TALOS_INVALID_CAPABILITY
// matching [ErrMalformed]. Parse does not verify the signature.
func Parse(s string) (*Token, error) {
	if len(s) > MaxTokenSize {
		return nil, malformed("token exceeds " + strconv.Itoa(MaxTokenSize) + " bytes")
	}
	raw, err := decodeWire(s, '{')
	if err != nil {
		return nil, err
	}
	sc := scanner{b: raw}
	t, ok := parseToken(&sc)
	if !ok {
		return nil, malformed(sc.err)
	}
	if !sc.eof() {
		return nil, malformed("trailing data after token")
	}
	return t, nil
}

// decodeWire returns the JSON bytes of s: s itself when its first
// non-white-space byte is open, else the strict base64url decoding of s.
func decodeWire(s string, open byte) ([]byte, error) {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\n', '\r':
			continue
		case open:
			return []byte(s), nil
		}
		break
	}
	raw, ok := decodeB64(s)
	if !ok {
		return nil, malformed("neither JSON nor strict base64url")
	}
	return raw, nil
}

var strictB64 = base64.RawURLEncoding.Strict()

// decodeB64 decodes strict unpadded base64url with the rules of
// contracts.DecodeBase64URL (no padding, no white space, canonical
// trailing bits), faster: Go's strict decoder already rejects every byte
// outside the alphabet except CR and LF, which it skips, so only those are
// checked separately.
func decodeB64(s string) ([]byte, bool) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, false
	}
	b, err := strictB64.DecodeString(s)
	return b, err == nil
}

// Field bits of a token object, for duplicate and missing-field checks.
const (
	fVersion = 1 << iota
	fIssuer
	fSubject
	fScope
	fExp
	fNbf
	fNonce
	fMetadata
	fSignature
	fRequired = fVersion | fIssuer | fSubject | fScope | fExp | fNonce | fSignature
)

func parseToken(sc *scanner) (*Token, bool) {
	t := new(Token)
	seen := 0
	ok := sc.object(func(key string) bool {
		var bit int
		switch key {
		case "version":
			bit = fVersion
		case "issuer":
			bit = fIssuer
		case "subject":
			bit = fSubject
		case "scope":
			bit = fScope
		case "exp":
			bit = fExp
		case "nbf":
			bit = fNbf
		case "nonce":
			bit = fNonce
		case "metadata":
			bit = fMetadata
		case "signature":
			bit = fSignature
		default:
			return sc.fail("unknown field " + strconv.Quote(key))
		}
		if seen&bit != 0 {
			return sc.fail("duplicate field " + strconv.Quote(key))
		}
		seen |= bit
		switch bit {
		case fVersion:
			v, ok := sc.str()
			if !ok {
				return false
			}
			if v != Version {
				return sc.fail("unsupported version " + strconv.Quote(v))
			}
		case fIssuer, fSubject:
			v, ok := sc.str()
			if !ok {
				return false
			}
			d, err := identity.ParseDID(v)
			if err != nil {
				return sc.fail(key + " is not an Ed25519 did:key")
			}
			if bit == fIssuer {
				t.issuer, t.issuerStr = d, v
			} else {
				t.subject, t.subjectStr = d, v
			}
		case fScope:
			return parseScope(sc, t)
		case fExp:
			n, ok := sc.integer()
			t.exp = n
			return ok
		case fNbf:
			n, ok := sc.integer()
			t.nbf, t.hasNbf = n, true
			return ok
		case fNonce:
			v, ok := sc.str()
			if !ok {
				return false
			}
			if len(v) > MaxNonceLength {
				return sc.fail("nonce too long")
			}
			if utf8.RuneCountInString(v) < MinNonceLength {
				return sc.fail("nonce shorter than 16 characters")
			}
			t.nonce = v
		case fMetadata:
			sp, ok := sc.span()
			if !ok {
				return false
			}
			return parseMetadata(sc, t, sp)
		case fSignature:
			v, ok := sc.str()
			if !ok {
				return false
			}
			// 86 characters decode to exactly 64 bytes.
			if len(v) != 86 || strings.ContainsAny(v, "\r\n") {
				return sc.fail("signature is not 64 bytes of base64url")
			}
			if n, err := strictB64.Decode(t.sig[:], []byte(v)); err != nil || n != ed25519.SignatureSize {
				return sc.fail("signature is not 64 bytes of base64url")
			}
		}
		return true
	})
	if !ok {
		return nil, false
	}
	if seen&fRequired != fRequired {
		return nil, sc.fail("missing required field")
	}
	t.seal()
	return t, true
}

func parseScope(sc *scanner, t *Token) bool {
	t.grants = make([]Grant, 0, 1)
	return sc.array(func() bool {
		if len(t.grants) == MaxGrants {
			return sc.fail("too many grants")
		}
		var g Grant
		var seenTool, seenActions, seenRO bool
		ok := sc.object(func(key string) bool {
			switch key {
			case "tool":
				if seenTool {
					return sc.fail(`duplicate field "tool"`)
				}
				seenTool = true
				v, ok := sc.str()
				if !ok {
					return false
				}
				if len(v) > MaxNameLength {
					return sc.fail("tool name too long")
				}
				g.Tool = v
				return true
			case "actions":
				if seenActions {
					return sc.fail(`duplicate field "actions"`)
				}
				seenActions = true
				g.Actions = make([]string, 0, 2)
				return sc.array(func() bool {
					if len(g.Actions) == MaxActions {
						return sc.fail("too many actions")
					}
					v, ok := sc.str()
					if !ok {
						return false
					}
					if len(v) > MaxNameLength {
						return sc.fail("action name too long")
					}
					g.Actions = append(g.Actions, v)
					return true
				})
			case "read_only":
				if seenRO {
					return sc.fail(`duplicate field "read_only"`)
				}
				seenRO = true
				v, ok := sc.boolean()
				if !ok {
					return false
				}
				if !v {
					return sc.fail(`grant read_only must be true or absent`)
				}
				g.ReadOnly = true
				return true
			}
			return sc.fail("unknown field " + strconv.Quote(key) + " in grant")
		})
		if !ok {
			return false
		}
		if !seenTool || !seenActions {
			return sc.fail("grant needs tool and actions")
		}
		t.grants = append(t.grants, g)
		return true
	})
}

func parseMetadata(sc *scanner, t *Token, sp []byte) bool {
	if len(sp) == 0 || sp[0] != '{' {
		return sc.fail("metadata is not an object")
	}
	if len(sp) > 2*MaxMetadataSize {
		return sc.fail("metadata too large")
	}
	if reservedMetadataOnly(t, sp) {
		return true
	}
	c, err := contracts.CanonicalizeStrict(sp)
	if err != nil {
		return sc.fail("metadata: " + string(contracts.CodeOf(err)) + ": " + err.Error())
	}
	if len(c) > MaxMetadataSize {
		return sc.fail("metadata too large")
	}
	if err := setMetadata(t, c); err != nil {
		return sc.fail(err.Error())
	}
	return true
}

// reservedMetadataOnly is the fast path for the metadata Issue and
// Delegate write: an object holding only the reserved members, with the
// right types. It installs the canonical form (members in RFC 8785 order:
// aud, parent, read_only) and reports true; for anything else it changes
// nothing and reports false, and the general path decides.
func reservedMetadataOnly(t *Token, sp []byte) bool {
	sc := scanner{b: sp}
	var aud, parent string
	var ro, hasAud, hasParent, hasRO bool
	ok := sc.object(func(key string) bool {
		var ok bool
		switch {
		case key == MetaAudience && !hasAud:
			aud, ok = sc.str()
			hasAud = ok && aud != ""
			return hasAud
		case key == MetaParent && !hasParent:
			parent, ok = sc.str()
			hasParent = ok && isHexHash(parent)
			return hasParent
		case key == MetaReadOnly && !hasRO:
			ro, hasRO = sc.boolean()
			return hasRO
		}
		return false
	})
	if !ok || !sc.eof() {
		return false
	}
	c := append(make([]byte, 0, len(sp)), '{')
	sep := func() {
		if len(c) > 1 {
			c = append(c, ',')
		}
	}
	if hasAud {
		c = appendString(append(c, `"aud":`...), aud)
	}
	if hasParent {
		sep()
		c = appendString(append(c, `"parent":`...), parent)
	}
	if hasRO {
		sep()
		c = strconv.AppendBool(append(c, `"read_only":`...), ro)
	}
	c = append(c, '}')
	if len(c) > MaxMetadataSize {
		return false
	}
	t.metadata, t.aud, t.parent, t.readOnly = c, aud, parent, ro
	return true
}

// setMetadata installs canonical metadata c and reads its reserved members.
func setMetadata(t *Token, c []byte) error {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(c, &m); err != nil {
		return err
	}
	t.metadata = c
	if v, ok := m[MetaAudience]; ok {
		if err := json.Unmarshal(v, &t.aud); err != nil || v[0] != '"' || t.aud == "" {
			return contracts.New(contracts.CodeInvalidCapability, "metadata.aud is not a non-empty string")
		}
	}
	if v, ok := m[MetaParent]; ok {
		if err := json.Unmarshal(v, &t.parent); err != nil || v[0] != '"' || !isHexHash(t.parent) {
			return contracts.New(contracts.CodeInvalidCapability, "metadata.parent is not a capability hash")
		}
	}
	if v, ok := m[MetaReadOnly]; ok {
		if err := json.Unmarshal(v, &t.readOnly); err != nil || (v[0] != 't' && v[0] != 'f') {
			return contracts.New(contracts.CodeInvalidCapability, "metadata.read_only is not a boolean")
		}
	}
	return nil
}

func isHexHash(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// IssueOptions are the optional members of a new token, passed to [Issue] as
// a pointer. nil, like the zero value, issues a token with a random nonce,
// no nbf and no metadata.
type IssueOptions struct {
	// NotBefore sets nbf when not zero.
	NotBefore time.Time
	// Nonce is used when not empty (at least 16 characters); otherwise a
	// random 128-bit nonce is drawn from Rand.
	Nonce string
	// Audience sets metadata.aud when not empty.
	Audience string
	// ReadOnly sets metadata.read_only.
	ReadOnly bool
	// Metadata holds further members of the metadata object. It must not
	// contain the reserved members aud, parent or read_only.
	Metadata map[string]any
	// Rand is the nonce source; crypto/rand when nil.
	Rand io.Reader
}

// Issue builds and signs a token for subject with the given grants and
// expiry. issuer is the issuer's identity key as any crypto.Signer holding an
// Ed25519 key (a wallet's [identity.Wallet.Signer], or a key in a KMS or
// HSM); the issuer DID is the did:key of its public key, and the signature
// it returns is checked before the token is built. opts may be nil (a
// random nonce, no nbf, no metadata). Errors (nil, non-Ed25519 or failing
// signer, zero subject, empty or oversized grants, short nonce, reserved
// metadata members, exp not after nbf) are *contracts.Error with code
// TALOS_INVALID_CAPABILITY (TALOS_CRYPTO_ERROR for a failing signer or
// nonce source).
func Issue(issuer crypto.Signer, subject identity.DID, grants []Grant, exp time.Time, opts *IssueOptions) (*Token, error) {
	var o IssueOptions
	if opts != nil {
		o = *opts
	}
	return issue(issuer, subject, grants, exp, o, "")
}

// ParseSubject parses the did:key subject of a token to issue, with the
// error Issue gives for a bad subject: a *contracts.Error of code
// TALOS_INVALID_CAPABILITY that wraps the parse error. Use it on subjects
// that come from outside (a request body, a flag).
func ParseSubject(s string) (identity.DID, error) {
	d, err := identity.ParseDID(s)
	if err != nil {
		return identity.DID{}, contracts.Wrap(contracts.CodeInvalidCapability, "capability: subject is not an Ed25519 did:key", err)
	}
	return d, nil
}

// signerDID returns the did:key of an Ed25519 crypto.Signer; its errors
// have the given code.
func signerDID(s crypto.Signer, code contracts.Code) (identity.DID, ed25519.PublicKey, error) {
	if s == nil {
		return identity.DID{}, nil, contracts.New(code, "capability: nil signer")
	}
	pub, ok := s.Public().(ed25519.PublicKey)
	if !ok || len(pub) != ed25519.PublicKeySize {
		return identity.DID{}, nil, contracts.New(code, "capability: the signer does not hold an Ed25519 key")
	}
	d, err := identity.DIDFromPublicKey(pub)
	if err != nil {
		return identity.DID{}, nil, contracts.Wrap(code, "capability: the signer's key has no did:key", err)
	}
	return d, pub, nil
}

// signPayload signs msg with s (pure Ed25519: crypto.Hash(0)) and checks the
// signature, so that a faulty remote signer cannot produce what verifiers
// refuse.
func signPayload(s crypto.Signer, pub ed25519.PublicKey, msg []byte) ([]byte, error) {
	sig, err := s.Sign(rand.Reader, msg, crypto.Hash(0))
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeCryptoError, "capability: the signer failed", err)
	}
	if len(sig) != ed25519.SignatureSize || !ed25519.Verify(pub, msg, sig) {
		return nil, contracts.New(contracts.CodeCryptoError, "capability: the signer returned an invalid signature")
	}
	return sig, nil
}

func issue(issuer crypto.Signer, sub identity.DID, grants []Grant, exp time.Time, opts IssueOptions, parent string) (*Token, error) {
	iss, pub, err := signerDID(issuer, contracts.CodeInvalidCapability)
	if err != nil {
		return nil, err
	}
	if sub.IsZero() {
		return nil, contracts.New(contracts.CodeInvalidCapability, "capability: subject is not an Ed25519 did:key")
	}
	t := &Token{issuer: iss, subject: sub, subjectStr: sub.String(), exp: exp.Unix()}
	t.issuerStr = t.issuer.String()
	if err := checkGrants(grants); err != nil {
		return nil, err
	}
	t.grants = cloneGrants(grants)
	if !opts.NotBefore.IsZero() {
		t.nbf, t.hasNbf = opts.NotBefore.Unix(), true
		if t.nbf > t.exp {
			return nil, contracts.New(contracts.CodeInvalidCapability, "capability: nbf after exp")
		}
	}
	if t.exp > contracts.MaxSafeInteger || t.exp < -contracts.MaxSafeInteger || t.nbf > contracts.MaxSafeInteger || t.nbf < -contracts.MaxSafeInteger {
		return nil, contracts.New(contracts.CodeInvalidCapability, "capability: time out of range")
	}
	t.nonce = opts.Nonce
	if t.nonce == "" {
		var b [16]byte
		r := opts.Rand
		if r == nil {
			r = rand.Reader
		}
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return nil, contracts.Wrap(contracts.CodeCryptoError, "capability: cannot draw a nonce", err)
		}
		t.nonce = contracts.EncodeBase64URL(b[:])
	}
	if utf8.RuneCountInString(t.nonce) < MinNonceLength || len(t.nonce) > MaxNonceLength || !utf8.ValidString(t.nonce) {
		return nil, contracts.New(contracts.CodeInvalidCapability, "capability: nonce must be 16 to 256 characters")
	}
	if err := buildMetadata(t, opts, parent); err != nil {
		return nil, err
	}
	t.payload = t.appendJSON(nil, false)
	sig, err := signPayload(issuer, pub, t.payload)
	if err != nil {
		return nil, err
	}
	copy(t.sig[:], sig)
	t.seal()
	return t, nil
}

func buildMetadata(t *Token, opts IssueOptions, parent string) error {
	m := make(map[string]any, len(opts.Metadata)+3)
	for k, v := range opts.Metadata {
		if k == MetaAudience || k == MetaParent || k == MetaReadOnly {
			return contracts.New(contracts.CodeInvalidCapability, "capability: metadata member "+strconv.Quote(k)+" is reserved; use IssueOptions")
		}
		m[k] = v
	}
	if opts.Audience != "" {
		m[MetaAudience] = opts.Audience
	}
	if opts.ReadOnly {
		m[MetaReadOnly] = true
	}
	if parent != "" {
		m[MetaParent] = parent
	}
	if len(m) == 0 {
		return nil
	}
	c, err := contracts.MarshalStrict(m)
	if err != nil {
		return contracts.Wrap(contracts.CodeInvalidCapability, "capability: metadata is not strict canonical JSON", err)
	}
	if len(c) > MaxMetadataSize {
		return contracts.New(contracts.CodeInvalidCapability, "capability: metadata too large")
	}
	return setMetadata(t, c)
}

func checkGrants(grants []Grant) error {
	if len(grants) == 0 || len(grants) > MaxGrants {
		return contracts.New(contracts.CodeInvalidCapability, "capability: a token needs 1 to 64 grants")
	}
	for _, g := range grants {
		if g.Tool == "" || len(g.Tool) > MaxNameLength || !utf8.ValidString(g.Tool) {
			return contracts.New(contracts.CodeInvalidCapability, "capability: grant tool must be a 1 to 256 byte name")
		}
		if len(g.Actions) == 0 || len(g.Actions) > MaxActions {
			return contracts.New(contracts.CodeInvalidCapability, "capability: a grant needs 1 to 64 actions")
		}
		for _, a := range g.Actions {
			if a == "" || len(a) > MaxNameLength || !utf8.ValidString(a) {
				return contracts.New(contracts.CodeInvalidCapability, "capability: action must be a 1 to 256 byte name")
			}
		}
	}
	return nil
}

func cloneGrants(gs []Grant) []Grant {
	out := make([]Grant, len(gs))
	for i, g := range gs {
		out[i] = Grant{Tool: g.Tool, Actions: slices.Clone(g.Actions), ReadOnly: g.ReadOnly}
	}
	return out
}

// Verify checks tok's signature with issuerKey and its validity window at
// now, with the default skew of 60 s (valid while nbf − 60 s ≤ now ≤
// exp + 60 s). It does not consult revocation, audience or holder: use a
// [Verifier] for that. Errors are *contracts.Error with code
// TALOS_INVALID_CAPABILITY: [ErrIssuerMismatch] when issuerKey is not the
// issuer's key, [ErrSignature] (message contains "signature"),
// [ErrNotYetValid], and [ErrExpired] (message contains "expired").
func Verify(tok *Token, issuerKey ed25519.PublicKey, now time.Time) error {
	if tok == nil {
		return malformed("nil token")
	}
	if len(issuerKey) != ed25519.PublicKeySize {
		return ErrIssuerMismatch
	}
	if d, _ := identity.DIDFromPublicKey(issuerKey); d != tok.issuer {
		return ErrIssuerMismatch
	}
	if !ed25519.Verify(issuerKey, tok.payload, tok.sig[:]) {
		return ErrSignature
	}
	return checkTime(tok, now.Unix(), int64(DefaultSkew/time.Second))
}

// verifySelf checks the signature against the issuer DID's own key.
func verifySelf(tok *Token) bool {
	return tok.issuer.Verify(tok.payload, tok.sig[:])
}

func checkTime(tok *Token, now, skew int64) error {
	if tok.hasNbf && now < tok.nbf-skew {
		return ErrNotYetValid
	}
	if now > tok.exp+skew {
		return ErrExpired
	}
	return nil
}
