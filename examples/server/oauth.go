package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/admin"
	mcpgw "github.com/talosgo/talos/gateway/mcp"
	"github.com/talosgo/talos/gateway/oauth"
	"github.com/talosgo/talos/identity"
)

// The MCP gateway as an OAuth 2.1 resource server (gateway/oauth), for
// stock MCP clients that hold an access token instead of a did:key.
//
// POST /mcp keeps HTTP attestation; with TALOS_OAUTH_ISSUER it also takes
// "Authorization: Bearer <JWT>". A bearer request is verified (issuer's
// JWKS, aud = TALOS_OAUTH_RESOURCE), its principal claim mapped to the
// principal's did:key, its scopes mapped to capability grants, and it is
// then served exactly as an attested request of that principal: the
// server mints a short-lived capability for the grants (its own issuer
// key, as POST /v1/capabilities does), signs the request with the
// principal's OAuth key (HTTP attestation v1, fresh nonce) and hands it to
// the attested route. The Attester, the registration check, the Kernel
// (authorization, RBAC, rate limits, budgets) and the gateway see an
// ordinary attested call, but the audit says what the caller presented: a
// bearer token (talos.WithBearerAuth). The events' principal has
// auth_mode "bearer" (the OAuth did:key as principal_id, no
// signer_key_id), and meta records oauth_issuer (the token's issuer),
// oauth_claim (the claim naming the principal: sub or client_id) and,
// when the token has a jti, oauth_jti_sha256 (hex SHA-256 of it, to match
// the authorization server's records); never the token or its claim
// values. The client's Authorization header (and any
// X-Talos-* header it sent) is removed before that, and the gateway's
// upstream sessions are its own, so the client's token never reaches an
// upstream.
//
// A principal's OAuth key is derived from the server's identity key and
// (issuer, claim, value): HKDF-SHA256 over the server key's Ed25519
// signature of those (deterministic, RFC 8032), so every replica with the
// same identity derives the same did:key and no key is stored. The
// principal is either in TALOS_OAUTH_PRINCIPALS (value=team: registered
// from the configuration) or registered through the admin API (POST
// /v1/principals with the did:key GET /v1/admin/oauth/principals/{value}
// names); any other token holder is refused (403).

// oauthSettings are the TALOS_OAUTH_* settings.
type oauthSettings struct {
	Issuer     string            // TALOS_OAUTH_ISSUER: enables OAuth on POST /mcp
	Resource   string            // TALOS_OAUTH_RESOURCE: canonical URI of /mcp (the required aud)
	JWKSURL    string            // TALOS_OAUTH_JWKS_URL: empty: from the issuer's metadata
	Claim      string            // TALOS_OAUTH_PRINCIPAL_CLAIM: sub or client_id
	Scopes     []oauthScope      // TALOS_OAUTH_SCOPES: scope → grants
	Principals map[string]string // TALOS_OAUTH_PRINCIPALS: claim value → team
}

// oauthScope maps one OAuth scope to tool selectors: "read" (every tool
// the registry classifies read), "write" (every write), "<upstream>"
// (every tool of an upstream) or "<upstream>.<tool>".
type oauthScope struct {
	Scope     string
	Selectors []string
}

// Limits of the OAuth settings and requests.
const (
	oauthMaxScopes     = 64
	oauthMaxPrincipals = 10000
	// oauthCapabilityTTL bounds the capability minted for one bearer
	// request (and the token's own exp bounds it further).
	oauthCapabilityTTL = 5 * time.Minute
)

// defaultOAuthScopes is the default TALOS_OAUTH_SCOPES.
const defaultOAuthScopes = "tools:read=read,tools:write=write"

// parseOAuthScopes reads TALOS_OAUTH_SCOPES:
// scope=selector+selector…, comma-separated.
func parseOAuthScopes(dst *[]oauthScope, v string) error {
	var out []oauthScope
	seen := map[string]bool{}
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		scope, sels, ok := strings.Cut(item, "=")
		if !ok || !validOAuthScope(scope) || seen[scope] || sels == "" {
			return errors.New("want scope=selector+selector entries with distinct RFC 6749 scopes (selectors: read, write, <upstream>, <upstream>.<tool>)")
		}
		seen[scope] = true
		s := oauthScope{Scope: scope}
		for sel := range strings.SplitSeq(sels, "+") {
			up, tool, dotted := strings.Cut(sel, ".")
			if sel == "" || !validUpstreamName(up) || dotted && (tool == "" || strings.ContainsAny(tool, " ,+=")) {
				return errors.New("scope " + scope + ": bad selector (read, write, <upstream> or <upstream>.<tool>)")
			}
			s.Selectors = append(s.Selectors, sel)
		}
		out = append(out, s)
	}
	if len(out) > oauthMaxScopes {
		return errors.New("too many scopes")
	}
	*dst = out
	return nil
}

// validOAuthScope reports whether s is an RFC 6749 scope token without
// the separators of TALOS_OAUTH_SCOPES.
func validOAuthScope(s string) bool {
	if s == "" || len(s) > oauth.MaxClaimLength {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' || c == ',' || c == '=' || c == '+' {
			return false
		}
	}
	return true
}

// parseOAuthPrincipals reads TALOS_OAUTH_PRINCIPALS: value=team,
// comma-separated (value: the principal claim's).
func parseOAuthPrincipals(dst *map[string]string, v string) error {
	out := map[string]string{}
	for item := range strings.SplitSeq(v, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		val, team, ok := strings.Cut(item, "=")
		if !ok || val == "" || len(val) > oauth.MaxClaimLength || team == "" || len(team) > 200 || out[val] != "" ||
			strings.ContainsFunc(item, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
			return errors.New("want distinct value=team entries (no spaces)")
		}
		out[val] = team
	}
	if len(out) > oauthMaxPrincipals {
		return errors.New("too many principals")
	}
	*dst = out
	return nil
}

// parseOAuthClaim reads TALOS_OAUTH_PRINCIPAL_CLAIM.
func parseOAuthClaim(dst *string, v string) error {
	if v != oauth.ClaimSubject && v != oauth.ClaimClientID {
		return errors.New("must be sub or client_id")
	}
	*dst = v
	return nil
}

// validate checks the OAuth settings that can be checked without I/O.
func (o *oauthSettings) validate() error {
	bad := func(msg string) error { return contracts.New(contracts.CodeInvalidInput, "config: "+msg) }
	if o.Issuer == "" {
		if o.Resource != "" || o.JWKSURL != "" || len(o.Principals) > 0 {
			return bad("TALOS_OAUTH_RESOURCE, TALOS_OAUTH_JWKS_URL and TALOS_OAUTH_PRINCIPALS need TALOS_OAUTH_ISSUER")
		}
		return nil
	}
	if o.Resource == "" {
		return bad("TALOS_OAUTH_ISSUER needs TALOS_OAUTH_RESOURCE, the canonical URI of POST /mcp (e.g. https://gateway.example.com/mcp)")
	}
	if utf8.RuneCountInString(o.Issuer) > audit.MaxMetaString {
		return bad("TALOS_OAUTH_ISSUER is longer than the audit meta allows (it is recorded in every bearer request's audit event)")
	}
	if _, err := o.verifierConfig(); err != nil {
		return err
	}
	return nil
}

// verifierConfig returns the gateway/oauth configuration (checked).
func (o *oauthSettings) verifierConfig() (*oauth.Verifier, error) {
	scopes := make([]string, 0, len(o.Scopes))
	for _, s := range o.Scopes {
		scopes = append(scopes, s.Scope)
	}
	v, err := oauth.NewVerifier(oauth.Config{
		Issuer: o.Issuer, Resource: o.Resource, JWKSURL: o.JWKSURL,
		ScopesSupported: scopes, ResourceName: "Talos MCP gateway",
	})
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeInvalidInput, "config: TALOS_OAUTH_*: "+err.Error(), err)
	}
	return v, nil
}

// oauthFront serves POST /mcp to bearer requests (and attested ones, as
// before) and the protected resource metadata.
type oauthFront struct {
	c        *core
	cfg      oauthSettings
	v        *oauth.Verifier
	attested http.Handler // the attested route: Attester → registration → gateway
	now      func() time.Time
}

// enableOAuth builds the OAuth front of the MCP gateway when
// TALOS_OAUTH_ISSUER is set; mountGateway serves it (so without an MCP
// gateway nothing is served).
func (c *core) enableOAuth(s *Server) error {
	if s.cfg.OAuth.Issuer == "" {
		return nil
	}
	v, err := s.cfg.OAuth.verifierConfig()
	if err != nil {
		return err
	}
	c.oauth = &oauthFront{c: c, cfg: s.cfg.OAuth, v: v, now: time.Now}
	return nil
}

// mount serves the metadata (RFC 9728, at both well-known paths), POST
// /mcp, whose attested route is attested, and the admin route naming
// principals' OAuth did:keys.
func (f *oauthFront) mount(mux *http.ServeMux, attested http.Handler) {
	f.attested = attested
	meta := f.v.MetadataHandler()
	for _, p := range f.v.MetadataPaths() {
		mux.Handle("GET "+p, meta)
		mux.Handle("OPTIONS "+p, meta)
	}
	mux.Handle(mcpgw.Pattern, f)
	f.mountAdmin(mux)
}

// mountAdmin serves GET /v1/admin/oauth/principals/{value} (admin.principals
// read): the did:key a principal claim value maps to, for registering it.
func (f *oauthFront) mountAdmin(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/admin/oauth/principals/{value}", f.c.admin.RequireTool(admin.ToolPrincipals)(f.handlePrincipal))
}

// oauthPrincipal is the answer of GET /v1/admin/oauth/principals/{value}.
type oauthPrincipal struct {
	Issuer     string `json:"issuer"`
	Claim      string `json:"claim"`
	Value      string `json:"value"`
	DID        string `json:"did"`
	Registered bool   `json:"registered"`
	TeamID     string `json:"team_id,omitempty"`
	Configured bool   `json:"configured"` // in TALOS_OAUTH_PRINCIPALS
}

func (f *oauthFront) handlePrincipal(w http.ResponseWriter, r *http.Request) {
	val := r.PathValue("value")
	if val == "" || len(val) > oauth.MaxClaimLength {
		talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "oauth: bad claim value"))
		return
	}
	did := f.didFor(val)
	out := oauthPrincipal{Issuer: f.cfg.Issuer, Claim: f.cfg.Claim, Value: val, DID: did.String()}
	if team, ok := f.cfg.Principals[val]; ok {
		out.Registered, out.Configured, out.TeamID = true, true, team
	} else {
		p, err := f.c.principals.Lookup(r.Context(), did.String())
		if err != nil {
			talos.WriteError(w, r, err)
			return
		}
		if p != nil {
			out.Registered, out.TeamID = true, p.TeamID
		}
	}
	b, _ := json.Marshal(out)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(append(b, '\n'))
}

// keyFor derives the OAuth key of the principal whose claim is value.
func (f *oauthFront) keyFor(value string) ed25519.PrivateKey {
	msg := "talos-oauth-principal-key-v1\n" + f.cfg.Issuer + "\n" + f.cfg.Claim + "\n" + value
	sig := f.c.wallet.Sign([]byte(msg))
	seed, err := hkdf.Key(sha256.New, sig, nil, "talos oauth principal key v1", ed25519.SeedSize)
	if err != nil {
		panic("oauth: hkdf: " + err.Error()) // 32 bytes of SHA-256 never fail
	}
	return ed25519.NewKeyFromSeed(seed)
}

// didFor returns the did:key of the principal whose claim is value.
func (f *oauthFront) didFor(value string) identity.DID {
	d, _ := identity.DIDFromPublicKey(f.keyFor(value).Public().(ed25519.PublicKey))
	return d
}

// ServeHTTP answers POST /mcp: attested requests as before, bearer
// requests as described at the top of this file.
func (f *oauthFront) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, bearer := oauth.BearerToken(r)
	attested := r.Header.Get(identity.HeaderSignature) != "" || r.Header.Get(identity.HeaderKeyID) != ""
	switch {
	case bearer && attested:
		f.v.Refuse(w, r, oauth.ErrInvalidRequest, nil, contracts.New(contracts.CodeInvalidInput, "oauth: a request carries a bearer token or an attestation, not both"))
	case attested:
		f.attested.ServeHTTP(w, r)
	case !bearer:
		// Neither: both ways in are offered, with the Attester's answer.
		w.Header().Add("WWW-Authenticate", f.v.Challenge("", nil))
		w.Header().Add("WWW-Authenticate", `Talos-Attestation version="v1"`)
		talos.WriteError(w, r, contracts.New(contracts.CodeAuthInvalid, "request denied: AUTH_INVALID"))
	default:
		f.serveBearer(w, r)
	}
}

// serveBearer serves a bearer request of a registered principal.
func (f *oauthFront) serveBearer(w http.ResponseWriter, r *http.Request) {
	claims, ok := f.v.Authenticate(w, r) // removes Authorization
	if !ok {
		return
	}
	ctx := r.Context()
	val, ok := claims.Principal(f.cfg.Claim)
	if !ok {
		f.v.Refuse(w, r, oauth.ErrInvalidToken, nil, contracts.New(contracts.CodeAuthInvalid, "oauth: the access token has no "+f.cfg.Claim))
		return
	}
	// From here on every Kernel call of this request is audited as a
	// bearer one.
	ctx = talos.WithBearerAuth(ctx, f.auditMeta(claims))
	r = r.WithContext(ctx)
	key := f.keyFor(val)
	did, _ := identity.DIDFromPublicKey(key.Public().(ed25519.PublicKey))
	p, err := f.principal(ctx, val, did)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	if p == nil {
		f.v.Refuse(w, r, "", nil, contracts.New(contracts.CodeDenied, "oauth: the token's principal is not registered"))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, mcpgw.MaxBody+1))
	if err != nil || len(body) > mcpgw.MaxBody {
		talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "oauth: request body too large or unreadable"))
		return
	}
	g := f.c.gateway
	grants, scopesOf := f.grants(claims.Scopes, g)
	if name, isCall := toolCall(body); isCall {
		up, tool, _ := strings.Cut(name, ".")
		if !grantsAllow(grants, up, tool) {
			if need := scopesOf(up, tool); len(need) > 0 {
				f.denyScope(w, r, did, p.TeamID, up, tool, need)
				return
			}
			// No scope would grant it (unknown tool, or a selector-less
			// one): the Kernel decides and audits as for any caller.
		}
	}
	if len(grants) == 0 {
		f.v.Refuse(w, r, oauth.ErrInsufficientScope, f.v.Metadata().ScopesSupported, contracts.New(contracts.CodeDenied, "oauth: the token's scopes grant no tool"))
		return
	}
	now := f.now()
	exp := now.Add(oauthCapabilityTTL)
	if claims.Expiry.Before(exp) {
		exp = claims.Expiry
	}
	exp = exp.Truncate(time.Second)
	if !exp.After(now) {
		f.v.Refuse(w, r, oauth.ErrInvalidToken, nil, contracts.New(contracts.CodeAuthExpired, "oauth: access token expired"))
		return
	}
	tok, err := capability.Issue(f.c.wallet.Signer(), did, grants, exp, &capability.IssueOptions{Audience: f.c.wallet.DID().String()})
	if err != nil {
		talos.WriteError(w, r, contracts.Wrap(contracts.CodeInternal, "oauth: minting the capability", err))
		return
	}
	in := r.Clone(ctx)
	for h := range in.Header {
		if strings.HasPrefix(strings.ToLower(h), "x-talos-") {
			in.Header.Del(h)
		}
	}
	in.Header.Del("Authorization")
	in.Header.Del("Cookie")
	in.Header.Set(talos.HeaderCapability, tok.Encode())
	in.Body = io.NopCloser(bytes.NewReader(body))
	in.ContentLength = int64(len(body))
	signer, err := identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: key, MaxBodySize: mcpgw.MaxBody})
	if err == nil {
		err = signer.Sign(in, opMCPGateway)
	}
	if err != nil {
		// The body is not JSON: the same answer the Attester gives.
		talos.WriteError(w, r, contracts.New(contracts.CodeAuthInvalid, "request denied: AUTH_INVALID"))
		return
	}
	f.attested.ServeHTTP(w, in)
}

// The audit meta keys of bearer requests (allowlisted on the gateway's
// surface).
const (
	metaOAuthIssuer    = "oauth_issuer"
	metaOAuthClaim     = "oauth_claim"
	metaOAuthJTISHA256 = "oauth_jti_sha256"
)

// oauthAuditMeta are the audit meta keys of bearer requests.
var oauthAuditMeta = []string{metaOAuthIssuer, metaOAuthClaim, metaOAuthJTISHA256}

// auditMeta is the audit meta of a bearer request with claims: the
// issuer, the principal claim's name and the hash of the token's jti.
func (f *oauthFront) auditMeta(claims *oauth.Claims) map[string]any {
	m := map[string]any{metaOAuthIssuer: claims.Issuer, metaOAuthClaim: f.cfg.Claim}
	if claims.JWTID != "" {
		sum := sha256.Sum256([]byte(claims.JWTID))
		m[metaOAuthJTISHA256] = hex.EncodeToString(sum[:])
	}
	return m
}

// principal returns the registration of the principal whose claim is
// value (did is its OAuth did:key): from TALOS_OAUTH_PRINCIPALS, put in
// the registry's cache for the Attester, or from the admin registry; nil
// when it has none.
func (f *oauthFront) principal(ctx context.Context, value string, did identity.DID) (*principal, error) {
	if team, ok := f.cfg.Principals[value]; ok {
		p := admin.NewPrincipal(did, team, f.now())
		f.c.principals.Cache(p)
		return p, nil
	}
	p, err := f.c.principals.Lookup(ctx, did.String())
	if err != nil {
		return nil, err
	}
	return p, nil
}

// grants returns the capability grants of scopes over the tools the
// gateway serves now, and a function naming the configured scopes that
// would grant a tool.
func (f *oauthFront) grants(scopes []string, g *mcpGateway) ([]capability.Grant, func(up, tool string) []string) {
	reg := g.Registry()
	matches := func(sel, up, tool string) bool {
		switch sel {
		case "read", "write":
			e, ok := reg.Lookup(up, tool)
			want := capability.ClassRead
			if sel == "write" {
				want = capability.ClassWrite
			}
			return ok && e.Class == want
		}
		return sel == up || sel == up+"."+tool
	}
	byTool := map[string][]string{}
	var order []string
	for _, name := range g.Tools() {
		up, tool, _ := strings.Cut(name, ".")
		for _, s := range f.cfg.Scopes {
			if !slices.Contains(scopes, s.Scope) || !slices.ContainsFunc(s.Selectors, func(sel string) bool { return matches(sel, up, tool) }) {
				continue
			}
			if _, ok := byTool[up]; !ok {
				order = append(order, up)
			}
			if !slices.Contains(byTool[up], tool) {
				byTool[up] = append(byTool[up], tool)
			}
		}
	}
	out := make([]capability.Grant, 0, len(order))
	for _, up := range order {
		out = append(out, capability.Grant{Tool: up, Actions: byTool[up]})
	}
	scopesOf := func(up, tool string) []string {
		var need []string
		for _, s := range f.cfg.Scopes {
			if slices.ContainsFunc(s.Selectors, func(sel string) bool { return matches(sel, up, tool) }) {
				need = append(need, s.Scope)
			}
		}
		return need
	}
	return out, scopesOf
}

func grantsAllow(grants []capability.Grant, up, tool string) bool {
	return slices.ContainsFunc(grants, func(g capability.Grant) bool { return g.Allows(up, tool) })
}

// toolCall returns the tool name of a tools/call request body; false for
// anything else (other methods, bodies the gateway will refuse).
func toolCall(body []byte) (string, bool) {
	if mcpgw.CheckJSONRPC(body) != nil {
		return "", false
	}
	var msg struct {
		Method string `json:"method"`
		Params struct {
			Name string `json:"name"`
		} `json:"params"`
	}
	if json.Unmarshal(body, &msg) != nil || msg.Method != "tools/call" || msg.Params.Name == "" {
		return "", false
	}
	return msg.Params.Name, true
}

// denyScope refuses a tools/call the token's scopes do not cover: the
// denial is decided here and audited by the gateway's Kernel like any
// other (SCOPE_MISMATCH, principal = the OAuth principal), then answered
// 403 insufficient_scope naming the scopes that would grant the tool, so
// that the client can ask for them (step-up authorization).
func (f *oauthFront) denyScope(w http.ResponseWriter, r *http.Request, did identity.DID, team, up, tool string, need []string) {
	d := capability.Decision{Reason: capability.ReasonScopeMismatch, Principal: did, Tool: up, Action: tool}
	call := talos.Call{
		Request:   capability.Request{Principal: did, Tool: up, Action: tool},
		HTTP:      r,
		SurfaceID: mcpgw.SurfaceID, TemplatePath: mcpgw.TemplatePath, Team: team, Decision: &d,
	}
	_, err := f.c.gateway.Kernel().Do(r.Context(), call, func(context.Context, capability.Decision) (int64, int, error) {
		return 0, 0, contracts.New(contracts.CodeInternal, "oauth: a refused call ran")
	})
	if err != nil {
		// Not audited: refused without the step-up hint.
		talos.WriteError(w, r, err)
		return
	}
	f.v.Refuse(w, r, oauth.ErrInsufficientScope, need, contracts.New(contracts.CodeDenied, "oauth: insufficient scope"))
}
