package capability

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// A LegacyToken is a capability in the TS/Python SDK MCP-frame form
// (PROTOCOL.md §8), which predates the contract schema:
//
//	{v:"1", iss, sub, scope:"tool:fs/method:read", constraints?:{paths, tool, method},
//	 iat, exp, sig}
//
// with sig = base64url Ed25519(canonical(token − sig)). The issuer is a
// did:key or did:talos:<64 hex digits of the public key>. It is read only
// through [ParseLegacy] and checked only through [VerifyLegacy] and
// [LegacyToken.Authorize]; the Verifier never accepts it. A LegacyToken is
// immutable and safe for concurrent use.
type LegacyToken struct {
	iss, sub  string
	issuerKey ed25519.PublicKey
	scope     string
	cons      legacyConstraints
	consRaw   []byte // canonical, nil when absent
	iat, exp  int64
	sig       []byte
	sigText   string // as received: legacy SDKs emit std or url base64
	payload   []byte
}

type legacyConstraints struct {
	paths   []string
	tool    string
	method  string
	unknown bool // members this package does not understand: deny
}

// Issuer returns the iss field.
func (t *LegacyToken) Issuer() string { return t.iss }

// Subject returns the sub field.
func (t *LegacyToken) Subject() string { return t.sub }

// Scope returns the scope string.
func (t *LegacyToken) Scope() string { return t.scope }

// Expiry returns exp.
func (t *LegacyToken) Expiry() time.Time { return time.Unix(t.exp, 0) }

// ParseLegacy reads a legacy token from its JSON or the base64url of it.
// It is strict like [Parse] (unknown members, null, floats, duplicate keys
// and oversized input are rejected with code TALOS_INVALID_CAPABILITY),
// except that the signature may be standard or URL base64 with or without
// padding, as the legacy SDKs emit it.
func ParseLegacy(s string) (*LegacyToken, error) {
	if len(s) > MaxLegacyTokenSize {
		return nil, malformed("legacy token too large")
	}
	raw, err := decodeWire(s, '{')
	if err != nil {
		return nil, err
	}
	t := new(LegacyToken)
	sc := scanner{b: raw}
	seen := map[string]bool{}
	ok := sc.object(func(key string) bool {
		if seen[key] {
			return sc.fail("duplicate field " + strconv.Quote(key))
		}
		seen[key] = true
		var ok bool
		switch key {
		case "v":
			var v string
			if v, ok = sc.str(); ok && v != "1" {
				return sc.fail("legacy version must be \"1\"")
			}
		case "iss":
			t.iss, ok = sc.str()
		case "sub":
			t.sub, ok = sc.str()
		case "scope":
			t.scope, ok = sc.str()
		case "iat":
			t.iat, ok = sc.integer()
		case "exp":
			t.exp, ok = sc.integer()
		case "sig":
			var v string
			if v, ok = sc.str(); ok {
				b, err := contracts.DecodeBase64Lenient(v)
				if err != nil || len(b) != ed25519.SignatureSize {
					return sc.fail("sig is not a 64-byte base64 signature")
				}
				t.sig, t.sigText = b, v
			}
		case "constraints":
			var sp []byte
			if sp, ok = sc.span(); ok {
				return parseLegacyConstraints(&sc, t, sp)
			}
		default:
			return sc.fail("unknown field " + strconv.Quote(key))
		}
		return ok
	})
	if !ok {
		return nil, malformed(sc.err)
	}
	if !sc.eof() {
		return nil, malformed("trailing data")
	}
	for _, k := range []string{"v", "iss", "sub", "scope", "iat", "exp", "sig"} {
		if !seen[k] {
			return nil, malformed("legacy token lacks " + k)
		}
	}
	key, err := legacyIssuerKey(t.iss)
	if err != nil {
		return nil, err
	}
	t.issuerKey = key
	t.payload = t.appendPayload(nil)
	return t, nil
}

func parseLegacyConstraints(sc *scanner, t *LegacyToken, sp []byte) bool {
	if len(sp) == 0 || sp[0] != '{' {
		return sc.fail("constraints is not an object")
	}
	c, err := contracts.CanonicalizeStrict(sp)
	if err != nil {
		return sc.fail("constraints: " + err.Error())
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(c, &m); err != nil {
		return sc.fail("constraints: " + err.Error())
	}
	t.consRaw = c
	for k, v := range m {
		var err error
		switch k {
		case "paths":
			err = json.Unmarshal(v, &t.cons.paths)
			if err == nil && (v[0] != '[' || len(t.cons.paths) > MaxLegacyPaths) {
				return sc.fail("constraints.paths must be a list of at most 64 globs")
			}
			for _, p := range t.cons.paths {
				if _, perr := path.Match(p, ""); perr != nil {
					return sc.fail("constraints.paths has a malformed glob")
				}
			}
		case "tool":
			err = json.Unmarshal(v, &t.cons.tool)
		case "method":
			err = json.Unmarshal(v, &t.cons.method)
		default:
			t.cons.unknown = true
		}
		if err != nil {
			return sc.fail("constraints." + k + " has the wrong type")
		}
	}
	return true
}

// legacyIssuerKey resolves a did:key or did:talos:<64 hex> issuer.
func legacyIssuerKey(iss string) (ed25519.PublicKey, error) {
	if h, ok := strings.CutPrefix(iss, "did:talos:"); ok {
		b, err := hex.DecodeString(h)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return nil, malformed("did:talos issuer is not 64 hex digits of a public key")
		}
		return b, nil
	}
	d, err := identity.ParseDID(iss)
	if err != nil {
		return nil, malformed("issuer is neither did:key nor did:talos:<hex>")
	}
	return d.PublicKey(), nil
}

// appendPayload writes canonical(token − sig).
func (t *LegacyToken) appendPayload(dst []byte) []byte { return t.appendJSON(dst, false) }

// AppendCanonical appends the canonical JSON of the whole legacy token,
// with the signature text as received.
func (t *LegacyToken) AppendCanonical(dst []byte) []byte { return t.appendJSON(dst, true) }

// appendJSON writes the members in RFC 8785 order: constraints, exp, iat,
// iss, scope, sig, sub, v.
func (t *LegacyToken) appendJSON(dst []byte, withSig bool) []byte {
	dst = append(dst, '{')
	if t.consRaw != nil {
		dst = append(dst, `"constraints":`...)
		dst = append(dst, t.consRaw...)
		dst = append(dst, ',')
	}
	dst = append(dst, `"exp":`...)
	dst = strconv.AppendInt(dst, t.exp, 10)
	dst = append(dst, `,"iat":`...)
	dst = strconv.AppendInt(dst, t.iat, 10)
	dst = append(dst, `,"iss":`...)
	dst = appendString(dst, t.iss)
	dst = append(dst, `,"scope":`...)
	dst = appendString(dst, t.scope)
	if withSig {
		dst = append(dst, `,"sig":`...)
		dst = appendString(dst, t.sigText)
	}
	dst = append(dst, `,"sub":`...)
	dst = appendString(dst, t.sub)
	return append(dst, `,"v":"1"}`...)
}

// Hash returns the legacy capability_hash: lowercase hex SHA-256 of the
// canonical token including its signature text (PROTOCOL.md, TS SDK).
func (t *LegacyToken) Hash() string {
	sum := sha256.Sum256(t.AppendCanonical(nil))
	return hex.EncodeToString(sum[:])
}

// VerifyLegacy checks t's signature under its issuer's key and its times
// at now with the default skew: iat no more than 60 s in the future, exp
// (plus 60 s) not past. Errors are *contracts.Error with code
// TALOS_INVALID_CAPABILITY ([ErrSignature], [ErrExpired],
// [ErrNotYetValid]).
func VerifyLegacy(t *LegacyToken, now time.Time) error {
	if t == nil {
		return malformed("nil token")
	}
	if !ed25519.Verify(t.issuerKey, t.payload, t.sig) {
		return ErrSignature
	}
	skew := int64(DefaultSkew / time.Second)
	if t.iat > now.Unix()+skew {
		return ErrNotYetValid
	}
	if now.Unix() > t.exp+skew {
		return ErrExpired
	}
	return nil
}

// Authorize reports whether the verified token covers calling method of
// tool (on path, when the token restricts paths). The requested scope is
// "tool:<tool>/method:<method>"; the token's scope covers it when its
// '/'-separated segments are a prefix of the request's, a segment
// "name:*" matching any value of name. Constraints then apply: tool and
// method must be equal when given, and path must match one of the paths
// globs (path.Match) when given. Unknown constraint members, an empty tool
// or method, and an empty path under a paths constraint deny.
func (t *LegacyToken) Authorize(tool, method, p string) bool {
	if tool == "" || method == "" || t.cons.unknown {
		return false
	}
	if !t.CoversScope("tool:" + tool + "/method:" + method) {
		return false
	}
	if t.cons.tool != "" && t.cons.tool != tool {
		return false
	}
	if t.cons.method != "" && t.cons.method != method {
		return false
	}
	if t.cons.paths != nil {
		for _, g := range t.cons.paths {
			if ok, _ := path.Match(g, p); ok && p != "" {
				return true
			}
		}
		return false
	}
	return true
}

// CoversScope reports whether the token's scope string covers requested
// (for example "tools/call" for an MCP method), by the segment-prefix and
// "name:*" rules of Authorize. It does not apply constraints.
func (t *LegacyToken) CoversScope(requested string) bool {
	if t.scope == "" || requested == "" {
		return false
	}
	have := strings.Split(t.scope, "/")
	want := strings.Split(requested, "/")
	if len(have) > len(want) {
		return false
	}
	for i, h := range have {
		if h == want[i] {
			continue
		}
		name, ok := strings.CutSuffix(h, ":*")
		if !ok || !strings.HasPrefix(want[i], name+":") {
			return false
		}
	}
	return true
}
