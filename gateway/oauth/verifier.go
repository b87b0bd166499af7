package oauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/talosgo/talos/contracts"
)

// Limits and defaults of [Config] and [Verifier.Verify].
const (
	// MaxTokenSize bounds an access token, in bytes; longer ones are
	// refused before any parsing.
	MaxTokenSize = 8 << 10
	// MaxDocumentSize bounds a metadata or JWKS document fetched from the
	// issuer.
	MaxDocumentSize = 256 << 10
	// MaxKeys bounds the keys kept from one JWKS.
	MaxKeys = 64
	// MaxScopes bounds the scopes of one token.
	MaxScopes = 64
	// MaxClaimLength bounds the sub and client_id claims and each scope.
	MaxClaimLength = 255
	// DefaultLeeway is the clock skew allowed on exp, nbf and iat when
	// Config.Leeway is zero; MaxLeeway is the most that may be set.
	DefaultLeeway = 30 * time.Second
	MaxLeeway     = 5 * time.Minute
	// DefaultCacheTTL is how long a fetched JWKS is used before it is
	// fetched again when Config.CacheTTL is zero.
	DefaultCacheTTL = 10 * time.Minute
	// DefaultMinRefreshInterval is the least time between two fetches of
	// the JWKS (after an unknown kid or a failure) when
	// Config.MinRefreshInterval is zero.
	DefaultMinRefreshInterval = 30 * time.Second
	// DefaultFetchTimeout bounds one fetch when Config.HTTPClient is nil.
	DefaultFetchTimeout = 10 * time.Second
)

// Algorithms are the JWS algorithms a token may be signed with. Anything
// else ("none", HS256 and the other HMACs, PS*, RS384…) is refused before
// a key is looked up.
var Algorithms = []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA}

// Config configures a [Verifier]. Issuer and Resource are required.
type Config struct {
	// Issuer is the authorization server's issuer identifier: the iss
	// claim every token must carry, byte for byte, and the base of
	// metadata discovery. https, or http on a loopback host (tests and
	// development); no query or fragment.
	Issuer string
	// Resource is this resource server's canonical URI (RFC 8707,
	// RFC 9728): the aud every token must contain and the resource of the
	// published metadata, e.g. https://gateway.example.com/mcp. https, or
	// http on a loopback host; lower-case scheme and host; no query or
	// fragment.
	Resource string
	// JWKSURL, if set, is where the issuer's keys are fetched; empty:
	// the jwks_uri of the issuer's metadata (RFC 8414
	// /.well-known/oauth-authorization-server, then OpenID Connect
	// discovery), whose issuer must equal Issuer.
	JWKSURL string
	// AuthorizationServers are the issuers listed in the metadata; empty:
	// Issuer alone. Tokens are accepted from Issuer only either way.
	AuthorizationServers []string
	// ScopesSupported are the scopes listed in the metadata (and in the
	// challenges of requests without a token).
	ScopesSupported []string
	// ResourceName is the metadata's human-readable resource_name;
	// empty: omitted.
	ResourceName string
	// HTTPClient fetches metadata and keys; nil: a client with
	// DefaultFetchTimeout that follows no redirects.
	HTTPClient *http.Client
	// Leeway is the clock skew allowed on exp, nbf and iat; zero:
	// DefaultLeeway. At most MaxLeeway.
	Leeway time.Duration
	// CacheTTL is how long a fetched JWKS is trusted; zero:
	// DefaultCacheTTL.
	CacheTTL time.Duration
	// MinRefreshInterval is the least time between two JWKS fetches
	// prompted by unknown kids or failures; zero:
	// DefaultMinRefreshInterval.
	MinRefreshInterval time.Duration
	// Now returns the current time; nil: time.Now.
	Now func() time.Time
}

// A Verifier verifies bearer access tokens for one resource and issuer,
// and describes the resource (RFC 9728). It is safe for concurrent use.
type Verifier struct {
	cfg         Config
	metadataURL string
	paths       []string
	keys        *keyCache
}

// NewVerifier checks cfg and returns its Verifier. It does not contact
// the issuer: keys are fetched on the first token. Errors have code
// TALOS_INVALID_INPUT.
func NewVerifier(cfg Config) (*Verifier, error) {
	bad := func(msg string) error { return contracts.New(contracts.CodeInvalidInput, "oauth: "+msg) }
	if err := checkURL(cfg.Issuer); err != nil {
		return nil, bad("issuer: " + err.Error())
	}
	if err := checkURL(cfg.Resource); err != nil {
		return nil, bad("resource: " + err.Error())
	}
	if cfg.JWKSURL != "" {
		if err := checkURL(cfg.JWKSURL); err != nil {
			return nil, bad("JWKS URL: " + err.Error())
		}
	}
	for _, s := range cfg.AuthorizationServers {
		if err := checkURL(s); err != nil {
			return nil, bad("authorization server: " + err.Error())
		}
	}
	for _, s := range cfg.ScopesSupported {
		if !validScope(s) {
			return nil, bad("scopes supported: not an RFC 6749 scope token")
		}
	}
	if cfg.Leeway < 0 || cfg.Leeway > MaxLeeway || cfg.CacheTTL < 0 || cfg.MinRefreshInterval < 0 {
		return nil, bad("leeway must be 0 to 5m, cache TTL and refresh interval not negative")
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = DefaultCacheTTL
	}
	if cfg.MinRefreshInterval == 0 {
		cfg.MinRefreshInterval = DefaultMinRefreshInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{
			Timeout:       DefaultFetchTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if len(cfg.AuthorizationServers) == 0 {
		cfg.AuthorizationServers = []string{cfg.Issuer}
	}
	cfg.AuthorizationServers = slices.Clone(cfg.AuthorizationServers)
	cfg.ScopesSupported = slices.Clone(cfg.ScopesSupported)
	u, _ := url.Parse(cfg.Resource)
	path := strings.TrimSuffix(u.EscapedPath(), "/")
	v := &Verifier{cfg: cfg}
	v.paths = []string{WellKnownPath}
	if path != "" {
		v.paths = append(v.paths, WellKnownPath+path)
	}
	v.metadataURL = u.Scheme + "://" + u.Host + WellKnownPath + path
	v.keys = &keyCache{v: v}
	return v, nil
}

// checkURL accepts absolute https URLs, and http URLs on loopback hosts,
// without query, fragment or user information, with a lower-case scheme
// and host.
func checkURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case err != nil || s == "" || len(s) > 2048:
		return errors.New("not a URL")
	case u.Scheme != "https" && !(u.Scheme == "http" && isLoopback(u.Hostname())):
		return errors.New("must be https (http only on a loopback host)")
	case u.Host == "" || u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(s, "#"):
		return errors.New("must have a host and no user, query or fragment")
	case u.Host != strings.ToLower(u.Host) || !strings.HasPrefix(s, u.Scheme+"://"):
		return errors.New("scheme and host must be lower case")
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Resource returns the canonical URI of the resource (the required aud).
func (v *Verifier) Resource() string { return v.cfg.Resource }

// Issuer returns the accepted issuer.
func (v *Verifier) Issuer() string { return v.cfg.Issuer }

// Claims are the verified claims of an access token.
type Claims struct {
	Issuer    string
	Subject   string
	ClientID  string // client_id (RFC 9068), or azp when absent; may be empty
	Audience  []string
	Scopes    []string // scope (space-separated) or scp (array); deduplicated
	JWTID     string
	Expiry    time.Time
	NotBefore time.Time // zero when absent
	IssuedAt  time.Time // zero when absent
	KeyID     string    // kid of the key that verified the signature
	Algorithm string
}

// Claim names [Claims.Principal] accepts.
const (
	ClaimSubject  = "sub"
	ClaimClientID = "client_id"
)

// Principal returns the value of the named claim (ClaimSubject or
// ClaimClientID); false when it is empty or the name unknown.
func (c *Claims) Principal(claim string) (string, bool) {
	var v string
	switch claim {
	case ClaimSubject:
		v = c.Subject
	case ClaimClientID:
		v = c.ClientID
	}
	return v, v != ""
}

// HasScope reports whether the token was granted scope.
func (c *Claims) HasScope(scope string) bool { return slices.Contains(c.Scopes, scope) }

// tokenClaims are the claims read beside jwt.Claims.
type tokenClaims struct {
	ClientID *string         `json:"client_id"`
	AZP      *string         `json:"azp"`
	Scope    *string         `json:"scope"`
	SCP      json.RawMessage `json:"scp"`
}

// invalid is the error of a token that does not verify: AUTH_INVALID,
// with a message that never contains the token.
func invalid(msg string) error {
	return contracts.New(contracts.CodeAuthInvalid, "oauth: access token "+msg)
}

// Verify verifies an access token (the credential of an
// "Authorization: Bearer" header) and returns its claims. See the package
// documentation for the checks. A token that does not verify is
// AUTH_INVALID (AUTH_EXPIRED past its exp); keys that cannot be obtained
// are a retryable INTERNAL error.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	if len(token) == 0 || len(token) > MaxTokenSize {
		return nil, invalid("is empty or too long")
	}
	if strings.Count(token, ".") != 2 || strings.ContainsFunc(token, func(r rune) bool { return !isB64URL(r) && r != '.' }) {
		return nil, invalid("is not a compact JWS")
	}
	tok, err := jwt.ParseSigned(token, Algorithms)
	if err != nil {
		return nil, invalid("is not a JWT signed with RS256, ES256 or EdDSA")
	}
	if len(tok.Headers) != 1 {
		return nil, invalid("must have one signature")
	}
	h := tok.Headers[0]
	alg := jose.SignatureAlgorithm(h.Algorithm)
	if !slices.Contains(Algorithms, alg) {
		return nil, invalid("is signed with an algorithm that is not allowed")
	}
	if h.KeyID == "" || len(h.KeyID) > MaxClaimLength {
		return nil, invalid("has no kid")
	}
	if h.JSONWebKey != nil || h.ExtraHeaders["x5c"] != nil || h.ExtraHeaders["jku"] != nil || h.ExtraHeaders["x5u"] != nil {
		// Keys come from the issuer's JWKS only, never from the token.
		return nil, invalid("must not carry its own key")
	}
	if typ, ok := h.ExtraHeaders[jose.HeaderType]; ok {
		// Explicit typing (RFC 8725 section 3.11, RFC 9068 section 2.1):
		// an access token says at+jwt, or the generic JWT many issuers
		// send; a JWT of another kind (a DPoP proof, a logout or security
		// event token) is never an access token.
		t, _ := typ.(string)
		switch strings.ToLower(t) {
		case "at+jwt", "application/at+jwt", "jwt":
		default:
			return nil, invalid("is a JWT of another type (typ)")
		}
	}
	key, err := v.keys.lookup(ctx, h.KeyID)
	if err != nil {
		return nil, err
	}
	if !keyFits(key, alg) {
		return nil, invalid("is signed with an algorithm its key does not have")
	}
	var std jwt.Claims
	var extra tokenClaims
	if err := tok.Claims(key.Key, &std, &extra); err != nil {
		return nil, invalid("signature or claims do not verify")
	}
	now := v.cfg.Now()
	leeway := v.cfg.Leeway
	c := &Claims{Issuer: std.Issuer, Subject: std.Subject, Audience: []string(std.Audience), JWTID: std.ID, KeyID: h.KeyID, Algorithm: string(alg)}
	switch {
	case std.Issuer != v.cfg.Issuer:
		return nil, invalid("has the wrong issuer")
	case !slices.Contains([]string(std.Audience), v.cfg.Resource):
		return nil, invalid("is not for this resource (aud)")
	case std.Expiry == nil:
		return nil, invalid("has no exp")
	case std.Subject == "" || len(std.Subject) > MaxClaimLength:
		return nil, invalid("has no sub (or one too long)")
	}
	c.Expiry = std.Expiry.Time()
	if now.After(c.Expiry.Add(leeway)) {
		return nil, contracts.New(contracts.CodeAuthExpired, "oauth: access token expired")
	}
	if std.NotBefore != nil {
		c.NotBefore = std.NotBefore.Time()
		if now.Add(leeway).Before(c.NotBefore) {
			return nil, invalid("is not valid yet (nbf)")
		}
	}
	if std.IssuedAt != nil {
		c.IssuedAt = std.IssuedAt.Time()
		if now.Add(leeway).Before(c.IssuedAt) {
			return nil, invalid("is issued in the future (iat)")
		}
	}
	switch {
	case extra.ClientID != nil:
		c.ClientID = *extra.ClientID
	case extra.AZP != nil:
		c.ClientID = *extra.AZP
	}
	if len(c.ClientID) > MaxClaimLength {
		return nil, invalid("has a client_id too long")
	}
	if c.Scopes, err = scopes(extra); err != nil {
		return nil, err
	}
	return c, nil
}

// scopes reads scope (RFC 9068: space-separated) or, without it, scp (a
// string array, as some issuers send).
func scopes(t tokenClaims) ([]string, error) {
	var list []string
	switch {
	case t.Scope != nil:
		list = strings.Split(*t.Scope, " ")
	case len(t.SCP) > 0:
		if err := json.Unmarshal(t.SCP, &list); err != nil {
			var one string
			if json.Unmarshal(t.SCP, &one) != nil {
				return nil, invalid("has a malformed scp")
			}
			list = strings.Split(one, " ")
		}
	}
	out := make([]string, 0, len(list))
	for _, s := range list {
		if s == "" {
			continue
		}
		if !validScope(s) {
			return nil, invalid("has a malformed scope")
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	if len(out) > MaxScopes {
		return nil, invalid("has too many scopes")
	}
	return out, nil
}

// validScope reports whether s is an RFC 6749 scope-token of at most
// MaxClaimLength bytes: %x21 / %x23-5B / %x5D-7E.
func validScope(s string) bool {
	if s == "" || len(s) > MaxClaimLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

func isB64URL(r rune) bool {
	return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_'
}

// keyFits reports whether key may verify alg: its type (and size or
// curve) is the algorithm's, and the JWK's own alg, when declared, is it.
func keyFits(key jose.JSONWebKey, alg jose.SignatureAlgorithm) bool {
	if key.Algorithm != "" && key.Algorithm != string(alg) {
		return false
	}
	switch k := key.Key.(type) {
	case *rsa.PublicKey:
		return alg == jose.RS256 && k.N.BitLen() >= 2048
	case *ecdsa.PublicKey:
		return alg == jose.ES256 && k.Curve == elliptic.P256()
	case ed25519.PublicKey:
		return alg == jose.EdDSA && len(k) == ed25519.PublicKeySize
	}
	return false
}
