// Package oauthtest runs an OAuth 2.1 authorization server in a test: RFC
// 8414 metadata, a JWKS with an RSA, a P-256 and an Ed25519 signing key,
// and a token endpoint for the client credentials grant with RFC 8707
// resource indicators, issuing real signed JWT access tokens (RFC 9068).
// It is for testing resource servers (package gateway/oauth) and the
// clients that call them; it is not an authorization server to deploy.
package oauthtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// The key ids of the server's initial signing keys.
const (
	KeyRSA     = "rsa-1"
	KeyEC      = "ec-1"
	KeyEd25519 = "ed-1"
)

// A Server is an authorization server on a loopback httptest server.
type Server struct {
	// Issuer is the issuer identifier (the server's URL).
	Issuer string
	srv    *httptest.Server

	mu      sync.Mutex
	keys    map[string]signingKey
	order   []string // kids in the JWKS, in order
	clients map[string]Client

	jwksFetches atomic.Int64
	metaFetches atomic.Int64
	jwksDown    atomic.Bool
}

type signingKey struct {
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
}

// A Client is a registered client of the token endpoint: its secret, the
// subject its tokens carry and the scopes it may ask for.
type Client struct {
	Secret  string
	Subject string
	Scopes  []string
}

// New starts a Server, closed when t ends.
func New(t testing.TB) *Server {
	s := &Server{keys: map[string]signingKey{}, clients: map[string]Client{}}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, dk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s.addKey(KeyRSA, jose.RS256, rk)
	s.addKey(KeyEC, jose.ES256, ek)
	s.addKey(KeyEd25519, jose.EdDSA, dk)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", s.metadata)
	mux.HandleFunc("GET /jwks", s.jwks)
	mux.HandleFunc("POST /token", s.token)
	s.srv = httptest.NewServer(mux)
	s.Issuer = s.srv.URL
	t.Cleanup(s.srv.Close)
	return s
}

func (s *Server) addKey(kid string, alg jose.SignatureAlgorithm, k crypto.Signer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[kid] = signingKey{alg: alg, priv: k}
	s.order = append(s.order, kid)
}

// AddKey adds a new Ed25519 signing key under kid to the JWKS (a key
// rotation) and returns its public key.
func (s *Server) AddKey(t testing.TB, kid string) ed25519.PublicKey {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s.addKey(kid, jose.EdDSA, priv)
	return pub
}

// PublicKey returns the public key of kid (nil when unknown).
func (s *Server) PublicKey(kid string) crypto.PublicKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[kid]
	if !ok {
		return nil
	}
	return k.priv.Public()
}

// PrivateKeyForTest returns the private key of kid (nil when unknown),
// for tests that build tokens the server would not issue.
func (s *Server) PrivateKeyForTest(kid string) crypto.Signer { return s.keyOf(kid).priv }

// Register registers a client of the token endpoint.
func (s *Server) Register(id string, c Client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clients[id] = c
}

// SetJWKSDown makes GET /jwks answer 503 (down) or serve the keys again.
func (s *Server) SetJWKSDown(down bool) { s.jwksDown.Store(down) }

// JWKSFetches returns how many times the JWKS was requested.
func (s *Server) JWKSFetches() int64 { return s.jwksFetches.Load() }

// MetadataFetches returns how many times the metadata was requested.
func (s *Server) MetadataFetches() int64 { return s.metaFetches.Load() }

// URL returns the server's base URL (the issuer).
func (s *Server) URL() string { return s.srv.URL }

// Claims are the claims of a token [Server.Sign] issues. Zero Expiry:
// in five minutes; zero IssuedAt: now; zero NotBefore: none.
type Claims struct {
	Issuer    string // empty: the server's
	Subject   string
	ClientID  string
	Audience  []string
	Scope     string // space-separated
	Expiry    time.Time
	NotBefore time.Time
	IssuedAt  time.Time
	JWTID     string
}

// Sign returns an access token with claims, signed by the key kid (with
// its algorithm), typ "at+jwt".
func (s *Server) Sign(t testing.TB, kid string, c Claims) string {
	s.mu.Lock()
	k, ok := s.keys[kid]
	s.mu.Unlock()
	if !ok {
		t.Fatalf("oauthtest: no key %q", kid)
	}
	tok, err := s.sign(k, kid, c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// SignWith returns a token with claims signed by key with alg under kid:
// for tokens signed by keys the JWKS does not have.
func (s *Server) SignWith(t testing.TB, alg jose.SignatureAlgorithm, key any, kid string, c Claims) string {
	tok, err := s.sign(signingKey{alg: alg, priv: nil}, kid, c, key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (s *Server) sign(k signingKey, kid string, c Claims, raw ...any) (string, error) {
	var key any = k.priv
	if len(raw) > 0 {
		key = raw[0]
	}
	opts := (&jose.SignerOptions{}).WithType("at+jwt").WithHeader(jose.HeaderKey("kid"), kid)
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: key}, opts)
	if err != nil {
		return "", err
	}
	now := time.Now()
	if c.Issuer == "" {
		c.Issuer = s.Issuer
	}
	if c.Expiry.IsZero() {
		c.Expiry = now.Add(5 * time.Minute)
	}
	if c.IssuedAt.IsZero() {
		c.IssuedAt = now
	}
	std := jwt.Claims{Issuer: c.Issuer, Subject: c.Subject, Audience: jwt.Audience(c.Audience), ID: c.JWTID,
		Expiry: jwt.NewNumericDate(c.Expiry), IssuedAt: jwt.NewNumericDate(c.IssuedAt)}
	if !c.NotBefore.IsZero() {
		std.NotBefore = jwt.NewNumericDate(c.NotBefore)
	}
	extra := map[string]any{}
	if c.ClientID != "" {
		extra["client_id"] = c.ClientID
	}
	if c.Scope != "" {
		extra["scope"] = c.Scope
	}
	return jwt.Signed(sig).Claims(std).Claims(extra).Serialize()
}

// SignRaw returns a token with exactly claims (no defaults), signed by
// the key kid: for tokens missing required claims.
func (s *Server) SignRaw(t testing.TB, kid string, claims map[string]any) string {
	k := s.keyOf(kid)
	if k.priv == nil {
		t.Fatalf("oauthtest: no key %q", kid)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.priv}, (&jose.SignerOptions{}).WithHeader(jose.HeaderKey("kid"), kid))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(sig).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (s *Server) metadata(w http.ResponseWriter, _ *http.Request) {
	s.metaFetches.Add(1)
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                s.Issuer,
		"token_endpoint":                        s.Issuer + "/token",
		"jwks_uri":                              s.Issuer + "/jwks",
		"authorization_endpoint":                s.Issuer + "/authorize",
		"grant_types_supported":                 []string{"client_credentials"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "client_secret_basic"},
		"code_challenge_methods_supported":      []string{"S256"},
		"response_types_supported":              []string{"code"},
	})
}

func (s *Server) jwks(w http.ResponseWriter, _ *http.Request) {
	s.jwksFetches.Add(1)
	if s.jwksDown.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "temporarily_unavailable"})
		return
	}
	s.mu.Lock()
	var set jose.JSONWebKeySet
	for _, kid := range s.order {
		k := s.keys[kid]
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: k.priv.Public(), KeyID: kid, Algorithm: string(k.alg), Use: "sig"})
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, set)
}

// token is the client credentials grant (RFC 6749 section 4.4) with
// resource indicators (RFC 8707): the token's aud is the resource asked
// for, its scope the requested scopes the client may have.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	s.mu.Lock()
	c, known := s.clients[id]
	s.mu.Unlock()
	switch {
	case r.PostForm.Get("grant_type") != "client_credentials":
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type"})
		return
	case !known || c.Secret != secret:
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	case r.PostForm.Get("resource") == "":
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_target"})
		return
	}
	var granted []string
	for sc := range strings.FieldsSeq(r.PostForm.Get("scope")) {
		for _, allowed := range c.Scopes {
			if sc == allowed {
				granted = append(granted, sc)
			}
		}
	}
	tok, err := s.sign(s.keyOf(KeyEd25519), KeyEd25519, Claims{
		Subject: c.Subject, ClientID: id, Audience: r.PostForm["resource"], Scope: strings.Join(granted, " "),
	})
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 300, "scope": strings.Join(granted, " ")})
}

func (s *Server) keyOf(kid string) signingKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[kid]
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b)
}
