package oauth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/oauth"
	"github.com/talosgo/talos/gateway/oauth/oauthtest"
)

const resource = "https://gateway.example.com/mcp"

// clock is a settable clock for the Verifier.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newVerifier(t *testing.T, as *oauthtest.Server, mod func(*oauth.Config)) *oauth.Verifier {
	t.Helper()
	cfg := oauth.Config{Issuer: as.Issuer, Resource: resource, ScopesSupported: []string{"tools:read", "tools:write"}}
	if mod != nil {
		mod(&cfg)
	}
	v, err := oauth.NewVerifier(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func good() oauthtest.Claims {
	return oauthtest.Claims{Subject: "agent-7", ClientID: "client-a", Audience: []string{resource}, Scope: "tools:read tools:write", JWTID: "j1"}
}

func TestVerifyAcceptsEachAllowedAlgorithm(t *testing.T) {
	as := oauthtest.New(t)
	v := newVerifier(t, as, nil)
	for _, kid := range []string{oauthtest.KeyRSA, oauthtest.KeyEC, oauthtest.KeyEd25519} {
		c, err := v.Verify(context.Background(), as.Sign(t, kid, good()))
		if err != nil {
			t.Fatalf("%s: %v", kid, err)
		}
		if c.Subject != "agent-7" || c.ClientID != "client-a" || c.Issuer != as.Issuer || c.KeyID != kid ||
			!c.HasScope("tools:read") || !c.HasScope("tools:write") || len(c.Scopes) != 2 {
			t.Fatalf("%s: claims %+v", kid, c)
		}
		if p, ok := c.Principal(oauth.ClaimClientID); !ok || p != "client-a" {
			t.Fatalf("client_id principal = %q %v", p, ok)
		}
	}
	// One discovery, one JWKS fetch for the three tokens.
	if as.JWKSFetches() != 1 || as.MetadataFetches() != 1 {
		t.Fatalf("fetches: jwks %d, metadata %d", as.JWKSFetches(), as.MetadataFetches())
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// hs256 forges a token signed with HMAC-SHA256 under secret, claiming
// the kid of a real key: the classic RS256→HS256 confusion.
func hs256(t *testing.T, kid string, secret []byte, claims map[string]any) string {
	h, _ := json.Marshal(map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid})
	p, _ := json.Marshal(claims)
	in := b64(h) + "." + b64(p)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(in))
	return in + "." + b64(m.Sum(nil))
}

func claimsMap(as *oauthtest.Server) map[string]any {
	now := time.Now().Unix()
	return map[string]any{"iss": as.Issuer, "sub": "agent-7", "aud": resource, "exp": now + 300, "iat": now, "scope": "tools:read"}
}

func TestVerifyRefuses(t *testing.T) {
	as := oauthtest.New(t)
	v := newVerifier(t, as, nil)
	now := time.Now()
	rsaPub := as.PublicKey(oauthtest.KeyRSA).(*rsa.PublicKey)
	der, _ := x509.MarshalPKIXPublicKey(rsaPub)
	pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	jwkJSON, _ := json.Marshal(jose.JSONWebKey{Key: rsaPub, KeyID: oauthtest.KeyRSA, Algorithm: "RS256", Use: "sig"})
	edPub := as.PublicKey(oauthtest.KeyEd25519).(ed25519.PublicKey)
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	noneHeader, _ := json.Marshal(map[string]any{"alg": "none", "typ": "JWT", "kid": oauthtest.KeyRSA})
	payload, _ := json.Marshal(claimsMap(as))
	with := func(f func(*oauthtest.Claims)) oauthtest.Claims { c := good(); f(&c); return c }

	cases := []struct {
		name  string
		token string
		code  contracts.Code
	}{
		{"wrong audience", as.Sign(t, oauthtest.KeyRSA, with(func(c *oauthtest.Claims) { c.Audience = []string{"https://other.example.com/mcp"} })), contracts.CodeAuthInvalid},
		{"audience prefix", as.Sign(t, oauthtest.KeyRSA, with(func(c *oauthtest.Claims) { c.Audience = []string{resource + "/x"} })), contracts.CodeAuthInvalid},
		{"no audience", as.Sign(t, oauthtest.KeyRSA, with(func(c *oauthtest.Claims) { c.Audience = nil })), contracts.CodeAuthInvalid},
		{"expired", as.Sign(t, oauthtest.KeyRSA, with(func(c *oauthtest.Claims) {
			c.Expiry, c.IssuedAt = now.Add(-time.Minute-oauth.DefaultLeeway), now.Add(-time.Hour)
		})), contracts.CodeAuthExpired},
		{"wrong issuer", as.Sign(t, oauthtest.KeyRSA, with(func(c *oauthtest.Claims) { c.Issuer = "https://evil.example.com" })), contracts.CodeAuthInvalid},
		{"issuer with trailing slash", as.Sign(t, oauthtest.KeyRSA, with(func(c *oauthtest.Claims) { c.Issuer = as.Issuer + "/" })), contracts.CodeAuthInvalid},
		{"unknown kid", as.SignWith(t, jose.EdDSA, stranger, "nobody", good()), contracts.CodeAuthInvalid},
		{"known kid, other key", as.SignWith(t, jose.EdDSA, stranger, oauthtest.KeyEd25519, good()), contracts.CodeAuthInvalid},
		{"alg none", b64(noneHeader) + "." + b64(payload) + ".", contracts.CodeAuthInvalid},
		{"HS256 with the PEM public key", hs256(t, oauthtest.KeyRSA, pemKey, claimsMap(as)), contracts.CodeAuthInvalid},
		{"HS256 with the DER public key", hs256(t, oauthtest.KeyRSA, der, claimsMap(as)), contracts.CodeAuthInvalid},
		{"HS256 with the JWK", hs256(t, oauthtest.KeyRSA, jwkJSON, claimsMap(as)), contracts.CodeAuthInvalid},
		{"HS256 with the Ed25519 key", hs256(t, oauthtest.KeyEd25519, edPub, claimsMap(as)), contracts.CodeAuthInvalid},
		{"ES256 under an RSA kid", as.SignWith(t, jose.ES256, ek, oauthtest.KeyRSA, good()), contracts.CodeAuthInvalid},
		{"not yet valid", as.Sign(t, oauthtest.KeyEC, with(func(c *oauthtest.Claims) {
			c.NotBefore, c.Expiry = now.Add(time.Hour), now.Add(2*time.Hour)
		})), contracts.CodeAuthInvalid},
		{"issued in the future", as.Sign(t, oauthtest.KeyEC, with(func(c *oauthtest.Claims) {
			c.IssuedAt, c.Expiry = now.Add(time.Hour), now.Add(2*time.Hour)
		})), contracts.CodeAuthInvalid},
		{"no subject", as.Sign(t, oauthtest.KeyEC, with(func(c *oauthtest.Claims) { c.Subject = "" })), contracts.CodeAuthInvalid},
		{"bad scope token", as.Sign(t, oauthtest.KeyEC, with(func(c *oauthtest.Claims) { c.Scope = "tools:read \"x" })), contracts.CodeAuthInvalid},
		{"typ dpop+jwt", typed(t, as, "dpop+jwt"), contracts.CodeAuthInvalid},
		{"too long", strings.Repeat("a", oauth.MaxTokenSize+1), contracts.CodeAuthInvalid},
		{"empty", "", contracts.CodeAuthInvalid},
		{"not a JWS", "abc.def", contracts.CodeAuthInvalid},
		{"JWE-shaped", "a.b.c.d.e", contracts.CodeAuthInvalid},
		{"bad characters", "a+b.c/d.e=", contracts.CodeAuthInvalid},
	}
	// Expired without an exp claim at all.
	noExp := hs256(t, oauthtest.KeyRSA, der, map[string]any{"iss": as.Issuer})
	cases = append(cases, struct {
		name  string
		token string
		code  contracts.Code
	}{"HS256 without exp", noExp, contracts.CodeAuthInvalid})

	for _, tc := range cases {
		c, err := v.Verify(context.Background(), tc.token)
		if err == nil || c != nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		if got := contracts.CodeOf(err); got != tc.code {
			t.Errorf("%s: code %s, want %s (%v)", tc.name, got, tc.code, err)
		}
		if oauth.ErrorCode(err) != oauth.ErrInvalidToken {
			t.Errorf("%s: RFC 6750 code %q", tc.name, oauth.ErrorCode(err))
		}
		if len(tc.token) > 20 && strings.Contains(err.Error(), tc.token[:20]) {
			t.Errorf("%s: the error quotes the token", tc.name)
		}
	}
}

func TestVerifyMissingExp(t *testing.T) {
	as := oauthtest.New(t)
	v := newVerifier(t, as, nil)
	// A real signature over claims without exp: the issuer's own key.
	_, err := v.Verify(context.Background(), as.SignRaw(t, oauthtest.KeyEd25519, claimsWithout("exp", claimsMap(as))))
	if contracts.CodeOf(err) != contracts.CodeAuthInvalid || !strings.Contains(err.Error(), "exp") {
		t.Fatalf("missing exp: %v", err)
	}
}

func claimsWithout(k string, m map[string]any) map[string]any { delete(m, k); return m }

func TestUnknownKidRefetchesRateLimited(t *testing.T) {
	as := oauthtest.New(t)
	clk := &clock{t: time.Now()}
	v := newVerifier(t, as, func(c *oauth.Config) { c.Now = clk.now; c.MinRefreshInterval = time.Minute })
	ctx := context.Background()
	if _, err := v.Verify(ctx, as.Sign(t, oauthtest.KeyRSA, good())); err != nil {
		t.Fatal(err)
	}
	if as.JWKSFetches() != 1 {
		t.Fatalf("fetches %d", as.JWKSFetches())
	}
	// A rotation: the new kid is fetched for, but not within a minute of
	// the last fetch.
	as.AddKey(t, "ed-2")
	tok := as.Sign(t, "ed-2", good())
	if _, err := v.Verify(ctx, tok); contracts.CodeOf(err) != contracts.CodeAuthInvalid {
		t.Fatalf("new kid within the refresh interval: %v", err)
	}
	clk.add(time.Minute)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("new kid after the refresh interval: %v", err)
	}
	if as.JWKSFetches() != 2 {
		t.Fatalf("fetches %d, want 2", as.JWKSFetches())
	}
	// A flood of made-up kids costs at most one fetch per interval.
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	for i := range 50 {
		if _, err := v.Verify(ctx, as.SignWith(t, jose.EdDSA, stranger, "made-up-"+string(rune('a'+i%26)), good())); err == nil {
			t.Fatal("made-up kid accepted")
		}
	}
	if as.JWKSFetches() != 2 {
		t.Fatalf("fetches %d after a kid flood, want 2", as.JWKSFetches())
	}
}

func TestJWKSUnavailableFailsClosed(t *testing.T) {
	as := oauthtest.New(t)
	clk := &clock{t: time.Now()}
	v := newVerifier(t, as, func(c *oauth.Config) { c.Now = clk.now; c.CacheTTL = time.Minute; c.MinRefreshInterval = time.Second })
	ctx := context.Background()
	tok := as.Sign(t, oauthtest.KeyEC, good())
	as.SetJWKSDown(true)
	_, err := v.Verify(ctx, tok)
	var ce *contracts.Error
	if contracts.CodeOf(err) != contracts.CodeInternal || !errors.As(err, &ce) || !ce.Retryable || oauth.ErrorCode(err) != "" {
		t.Fatalf("JWKS down on first use: %v", err)
	}
	// Within the refresh interval the failure is not retried upstream.
	n := as.JWKSFetches()
	if _, err := v.Verify(ctx, tok); contracts.CodeOf(err) != contracts.CodeInternal || as.JWKSFetches() != n {
		t.Fatalf("retry within the interval: %v, fetches %d→%d", err, n, as.JWKSFetches())
	}
	as.SetJWKSDown(false)
	clk.add(2 * time.Second)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("JWKS back: %v", err)
	}
	// The cache expires and the JWKS is down again: refused, not served
	// from stale keys.
	as.SetJWKSDown(true)
	clk.add(2 * time.Minute)
	if _, err := v.Verify(ctx, tok); contracts.CodeOf(err) != contracts.CodeInternal {
		t.Fatalf("stale cache with JWKS down: %v", err)
	}
}

func TestDiscoveryIssuerMismatchFailsClosed(t *testing.T) {
	as := oauthtest.New(t)
	// A metadata server claiming another issuer.
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"issuer": as.Issuer, "jwks_uri": as.Issuer + "/jwks"})
	}))
	defer fake.Close()
	v, err := oauth.NewVerifier(oauth.Config{Issuer: fake.URL, Resource: resource})
	if err != nil {
		t.Fatal(err)
	}
	tok := as.Sign(t, oauthtest.KeyEC, oauthtest.Claims{Issuer: fake.URL, Subject: "s", Audience: []string{resource}})
	if _, err := v.Verify(context.Background(), tok); contracts.CodeOf(err) != contracts.CodeInternal {
		t.Fatalf("metadata naming another issuer: %v", err)
	}
}

func TestExplicitJWKSURL(t *testing.T) {
	as := oauthtest.New(t)
	v := newVerifier(t, as, func(c *oauth.Config) { c.JWKSURL = as.Issuer + "/jwks" })
	if _, err := v.Verify(context.Background(), as.Sign(t, oauthtest.KeyEd25519, good())); err != nil {
		t.Fatal(err)
	}
	if as.MetadataFetches() != 0 {
		t.Fatalf("metadata fetched %d times with an explicit JWKS URL", as.MetadataFetches())
	}
}

func TestNewVerifierRefusesBadConfig(t *testing.T) {
	for _, cfg := range []oauth.Config{
		{Resource: resource},
		{Issuer: "https://as.example.com"},
		{Issuer: "http://as.example.com", Resource: resource},
		{Issuer: "https://as.example.com", Resource: "https://gateway.example.com/mcp#frag"},
		{Issuer: "https://as.example.com", Resource: "https://gateway.example.com/mcp?x=1"},
		{Issuer: "https://as.example.com", Resource: "https://Gateway.example.com/mcp"},
		{Issuer: "https://as.example.com", Resource: resource, Leeway: time.Hour},
		{Issuer: "https://as.example.com", Resource: resource, ScopesSupported: []string{"a b"}},
		{Issuer: "https://as.example.com", Resource: resource, JWKSURL: "ftp://x"},
	} {
		if _, err := oauth.NewVerifier(cfg); contracts.CodeOf(err) != contracts.CodeInvalidInput {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
}

func TestMetadataAndChallenge(t *testing.T) {
	as := oauthtest.New(t)
	v := newVerifier(t, as, func(c *oauth.Config) { c.ResourceName = "Talos MCP gateway" })
	if got, want := v.MetadataURL(), "https://gateway.example.com/.well-known/oauth-protected-resource/mcp"; got != want {
		t.Fatalf("metadata URL %q, want %q", got, want)
	}
	paths := v.MetadataPaths()
	if len(paths) != 2 || paths[0] != oauth.WellKnownPath || paths[1] != oauth.WellKnownPath+"/mcp" {
		t.Fatalf("paths %v", paths)
	}
	h := v.MetadataHandler()
	for _, p := range paths {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p, nil))
		var m oauthex.ProtectedResourceMetadata
		if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/json" || json.Unmarshal(rec.Body.Bytes(), &m) != nil {
			t.Fatalf("%s: %d %s", p, rec.Code, rec.Body)
		}
		if m.Resource != resource || len(m.AuthorizationServers) != 1 || m.AuthorizationServers[0] != as.Issuer ||
			strings.Join(m.ScopesSupported, " ") != "tools:read tools:write" || len(m.BearerMethodsSupported) != 1 || m.BearerMethodsSupported[0] != "header" {
			t.Fatalf("metadata %+v", m)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, paths[0], nil))
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("POST metadata: %d", rec.Code)
	}

	for _, tc := range []struct {
		code   string
		scopes []string
		want   map[string]string
	}{
		{"", nil, map[string]string{"resource_metadata": v.MetadataURL(), "scope": "tools:read tools:write"}},
		{oauth.ErrInvalidToken, nil, map[string]string{"resource_metadata": v.MetadataURL(), "error": "invalid_token"}},
		{oauth.ErrInsufficientScope, []string{"tools:write"}, map[string]string{"resource_metadata": v.MetadataURL(), "error": "insufficient_scope", "scope": "tools:write"}},
	} {
		hdr := v.Challenge(tc.code, tc.scopes)
		cs, err := oauthex.ParseWWWAuthenticate([]string{hdr})
		if err != nil || len(cs) != 1 || !strings.EqualFold(cs[0].Scheme, "bearer") {
			t.Fatalf("%q: %v %v", hdr, cs, err)
		}
		if len(cs[0].Params) != len(tc.want) {
			t.Fatalf("%q: params %v", hdr, cs[0].Params)
		}
		for k, want := range tc.want {
			if cs[0].Params[k] != want {
				t.Fatalf("%q: %s = %q, want %q", hdr, k, cs[0].Params[k], want)
			}
		}
	}
}

func TestMiddleware(t *testing.T) {
	as := oauthtest.New(t)
	v := newVerifier(t, as, nil)
	var seenAuth []string
	var seen *oauth.Claims
	h := v.Middleware([]string{"tools:read"}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seenAuth = r.Header.Values("Authorization")
		seen, _ = oauth.ClaimsFrom(r.Context())
		w.WriteHeader(204)
	}))
	do := func(auth ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
		for _, a := range auth {
			r.Header.Add("Authorization", a)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec
	}
	check := func(name string, rec *httptest.ResponseRecorder, status int, errCode string) {
		t.Helper()
		if rec.Code != status {
			t.Fatalf("%s: %d %s", name, rec.Code, rec.Body)
		}
		if status == 204 {
			return
		}
		var body contracts.Error
		if json.Unmarshal(rec.Body.Bytes(), &body) != nil || body.Code == "" {
			t.Fatalf("%s: not a contract error: %s", name, rec.Body)
		}
		hdr := rec.Header().Get("WWW-Authenticate")
		if !strings.HasPrefix(hdr, `Bearer resource_metadata="`+v.MetadataURL()+`"`) {
			t.Fatalf("%s: challenge %q", name, hdr)
		}
		if errCode != "" && !strings.Contains(hdr, `error="`+errCode+`"`) || errCode == "" && strings.Contains(hdr, "error=") {
			t.Fatalf("%s: challenge %q, want error %q", name, hdr, errCode)
		}
	}
	check("no token", do(), 401, "")
	check("basic", do("Basic YTpi"), 400, oauth.ErrInvalidRequest)
	check("two headers", do("Bearer a", "Bearer b"), 400, oauth.ErrInvalidRequest)
	check("garbage", do("Bearer not-a-jwt"), 401, oauth.ErrInvalidToken)
	c := good()
	c.Scope = "tools:write"
	check("missing scope", do("Bearer "+as.Sign(t, oauthtest.KeyRSA, c)), 403, oauth.ErrInsufficientScope)
	check("ok", do("bearer "+as.Sign(t, oauthtest.KeyRSA, good())), 204, "")
	if len(seenAuth) != 0 {
		t.Fatalf("the Authorization header reached the handler: %v", seenAuth)
	}
	if seen == nil || seen.Subject != "agent-7" {
		t.Fatalf("claims %+v", seen)
	}
}

func TestBearerToken(t *testing.T) {
	for _, tc := range []struct {
		hdr     []string
		tok     string
		present bool
	}{
		{nil, "", false},
		{[]string{"Bearer abc"}, "abc", true},
		{[]string{"bearer  abc"}, "abc", true},
		{[]string{"Bearer"}, "", true},
		{[]string{"Bearer a b"}, "", true},
		{[]string{"Token abc"}, "", true},
		{[]string{"Bearer a", "Bearer b"}, "", true},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		for _, h := range tc.hdr {
			r.Header.Add("Authorization", h)
		}
		tok, present := oauth.BearerToken(r)
		if tok != tc.tok || present != tc.present {
			t.Errorf("%q: %q %v", tc.hdr, tok, present)
		}
	}
}

// typed returns a good token of the server's Ed25519 key with header typ.
func typed(t *testing.T, as *oauthtest.Server, typ string) string {
	t.Helper()
	priv := as.PrivateKeyForTest(oauthtest.KeyEd25519)
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: priv},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader("kid", oauthtest.KeyEd25519))
	if err != nil {
		t.Fatal(err)
	}
	c := claimsMap(as)
	p, _ := json.Marshal(c)
	obj, err := sig.Sign(p)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestVerifyAcceptsAccessTokenTypes(t *testing.T) {
	as := oauthtest.New(t)
	v := newVerifier(t, as, nil)
	for _, typ := range []string{"at+jwt", "application/at+jwt", "JWT"} {
		if _, err := v.Verify(context.Background(), typed(t, as, typ)); err != nil {
			t.Errorf("typ %s: %v", typ, err)
		}
	}
}
