package oauth

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/contracts"
)

// WellKnownPath is the path of the protected resource metadata of a
// resource at the root of its origin (RFC 9728 section 3); a resource
// with a path has its metadata at WellKnownPath followed by that path.
const WellKnownPath = "/.well-known/oauth-protected-resource"

// The RFC 6750 error codes of a challenge ([Verifier.Challenge]).
const (
	ErrInvalidRequest    = "invalid_request"
	ErrInvalidToken      = "invalid_token"
	ErrInsufficientScope = "insufficient_scope"
)

// MetadataURL returns the URL of the resource's metadata, the
// resource_metadata of every challenge: WellKnownPath inserted between
// the resource's origin and its path.
func (v *Verifier) MetadataURL() string { return v.metadataURL }

// MetadataPaths returns the paths the metadata is served at: WellKnownPath
// and, for a resource with a path, WellKnownPath followed by it (the one
// [Verifier.MetadataURL] names).
func (v *Verifier) MetadataPaths() []string { return append([]string(nil), v.paths...) }

// Metadata returns the resource's protected resource metadata.
func (v *Verifier) Metadata() *oauthex.ProtectedResourceMetadata {
	return &oauthex.ProtectedResourceMetadata{
		Resource:               v.cfg.Resource,
		AuthorizationServers:   append([]string(nil), v.cfg.AuthorizationServers...),
		ScopesSupported:        append([]string(nil), v.cfg.ScopesSupported...),
		BearerMethodsSupported: []string{"header"},
		ResourceName:           v.cfg.ResourceName,
	}
}

// MetadataHandler serves [Verifier.Metadata] as JSON to GET and HEAD
// requests, to any origin (it is public, RFC 9728 section 3.1), and
// answers CORS preflights; other methods get 400 TALOS_INVALID_INPUT.
func (v *Verifier) MetadataHandler() http.Handler {
	body, err := json.Marshal(v.Metadata())
	if err != nil {
		panic("oauth: metadata does not marshal: " + err.Error()) // strings only
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Methods", "GET, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Content-Type, MCP-Protocol-Version")
		switch r.Method {
		case http.MethodOptions:
			w.WriteHeader(http.StatusNoContent)
		case http.MethodGet, http.MethodHead:
			h.Set("Content-Type", "application/json")
			h.Set("Cache-Control", "public, max-age=300")
			w.WriteHeader(http.StatusOK)
			if r.Method == http.MethodGet {
				w.Write(body)
			}
		default:
			h.Set("Allow", "GET, HEAD, OPTIONS")
			talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "oauth: metadata is read with GET"))
		}
	})
}

// Challenge returns the value of a WWW-Authenticate header for a refused
// request: Bearer with resource_metadata (RFC 9728 section 5.1), the RFC
// 6750 error code when not empty (ErrInvalidToken, ErrInsufficientScope,
// ErrInvalidRequest) and the scopes the request needs when any (for a
// request without a token: the scopes supported). Scopes that are not
// RFC 6749 scope tokens are left out.
func (v *Verifier) Challenge(errCode string, scopes []string) string {
	var b strings.Builder
	b.WriteString(`Bearer resource_metadata="`)
	b.WriteString(v.metadataURL)
	b.WriteByte('"')
	switch errCode {
	case ErrInvalidRequest, ErrInvalidToken, ErrInsufficientScope:
		b.WriteString(`, error="` + errCode + `"`)
	}
	if errCode == "" && len(scopes) == 0 {
		scopes = v.cfg.ScopesSupported
	}
	var ok []string
	for _, s := range scopes {
		if validScope(s) {
			ok = append(ok, s)
		}
	}
	if len(ok) > 0 {
		b.WriteString(`, scope="` + strings.Join(ok, " ") + `"`)
	}
	return b.String()
}

// ErrorCode returns the RFC 6750 error code of a [Verifier.Verify] error:
// ErrInvalidToken for a token that does not verify or has expired, ""
// for a failure to obtain keys (the request may be retried).
func ErrorCode(err error) string {
	switch contracts.CodeOf(err) {
	case contracts.CodeAuthInvalid, contracts.CodeAuthExpired:
		return ErrInvalidToken
	}
	return ""
}

// BearerToken returns the credential of r's "Authorization: Bearer"
// header (RFC 6750 section 2.1; the scheme is case-insensitive): "" and
// false without one, "" and true for a malformed header (several
// Authorization headers, another scheme, or no credential) — a request
// the resource server must refuse with ErrInvalidRequest.
func BearerToken(r *http.Request) (token string, present bool) {
	vals := r.Header.Values("Authorization")
	if len(vals) == 0 {
		return "", false
	}
	if len(vals) > 1 {
		return "", true
	}
	scheme, cred, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", true
	}
	cred = strings.TrimLeft(cred, " ")
	if cred == "" || strings.ContainsAny(cred, " \t") {
		return "", true
	}
	return cred, true
}

type claimsKey struct{}

// ClaimsFrom returns the verified claims [Verifier.Middleware] put in a
// request's context.
func ClaimsFrom(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(claimsKey{}).(*Claims)
	return c, ok
}

// WithClaims returns ctx carrying c, for [ClaimsFrom].
func WithClaims(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// Middleware verifies the bearer token of every request before next,
// which finds its claims with [ClaimsFrom], and requires each of scopes.
// A request without a token gets 401 with a challenge and no error code;
// a malformed header 400 invalid_request; a token that does not verify
// 401 invalid_token; a missing scope 403 insufficient_scope; keys that
// cannot be obtained 500 (retryable INTERNAL, no challenge). Answers are the contract
// error body ([talos.WriteError]). The Authorization header is removed
// before next runs, so that a handler that proxies the request cannot
// pass the client's token on.
func (v *Verifier) Middleware(scopes []string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := v.Authenticate(w, r)
		if !ok {
			return
		}
		for _, s := range scopes {
			if !c.HasScope(s) {
				v.Refuse(w, r, ErrInsufficientScope, scopes, contracts.New(contracts.CodeDenied, "oauth: insufficient scope"))
				return
			}
		}
		r = r.WithContext(WithClaims(r.Context(), c))
		next.ServeHTTP(w, r)
	})
}

// Authenticate verifies r's bearer token, as [Verifier.Middleware] does,
// and removes r's Authorization header. When it reports false it has
// answered the request.
func (v *Verifier) Authenticate(w http.ResponseWriter, r *http.Request) (*Claims, bool) {
	tok, present := BearerToken(r)
	r.Header.Del("Authorization")
	switch {
	case !present:
		v.Refuse(w, r, "", nil, contracts.New(contracts.CodeAuthInvalid, "oauth: bearer access token required"))
		return nil, false
	case tok == "":
		v.Refuse(w, r, ErrInvalidRequest, nil, contracts.New(contracts.CodeInvalidInput, "oauth: malformed Authorization header"))
		return nil, false
	}
	c, err := v.Verify(r.Context(), tok)
	if err != nil {
		v.Refuse(w, r, ErrorCode(err), nil, err)
		return nil, false
	}
	return c, true
}

// Refuse answers a refused request with the contract error body of err
// (its status is its code's: 401 AUTH_INVALID or AUTH_EXPIRED, 403
// TALOS_DENIED, 400 TALOS_INVALID_INPUT, 500 INTERNAL) and, unless err
// is INTERNAL (keys unavailable: no challenge, the client should retry
// rather than re-authorize), the challenge for errCode and scopes.
func (v *Verifier) Refuse(w http.ResponseWriter, r *http.Request, errCode string, scopes []string, err error) {
	if contracts.CodeOf(err) != contracts.CodeInternal {
		w.Header().Add("WWW-Authenticate", v.Challenge(errCode, scopes))
	}
	talos.WriteError(w, r, err)
}
