package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/contracts"
	mcpgw "github.com/talosgo/talos/gateway/mcp"
	"github.com/talosgo/talos/gateway/oauth"
	"github.com/talosgo/talos/gateway/oauth/oauthtest"
)

// oauthResource is the canonical URI of POST /mcp in these tests.
const oauthResource = "https://gateway.talos.test/mcp"

// recordingUpstream serves an MCP server over streamable HTTP and keeps
// the headers of every request it receives.
type recordingUpstream struct {
	url     string
	mu      sync.Mutex
	headers []http.Header
}

func newRecordingUpstream(t *testing.T, srv *mcp.Server) *recordingUpstream {
	u := &recordingUpstream{}
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{Stateless: true})
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u.mu.Lock()
		u.headers = append(u.headers, r.Header.Clone())
		u.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { hs.CloseClientConnections(); hs.Close() })
	u.url = hs.URL
	return u
}

// leaked reports whether any upstream request carried an Authorization
// header, an X-Talos-* header or one of the secrets.
func (u *recordingUpstream) leaked(secrets ...string) string {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, h := range u.headers {
		for k, vs := range h {
			if strings.EqualFold(k, "Authorization") || strings.HasPrefix(strings.ToLower(k), "x-talos-") {
				return k
			}
			for _, v := range vs {
				for _, s := range secrets {
					if strings.Contains(v, s) {
						return k
					}
				}
			}
		}
	}
	return ""
}

func (u *recordingUpstream) requests() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.headers)
}

// oauthServer is a server whose MCP gateway accepts the tokens of an
// authorization server run in the test, with the files upstream over
// HTTP. agent-7 is a configured principal (team-a); agent-9 is not.
type oauthServer struct {
	ts    *testServer
	as    *oauthtest.Server
	files *fileServer
	up    *recordingUpstream
	start int // upstream requests of the gateway's start-up (initialize, tools/list)
}

func newOAuthServer(t *testing.T) *oauthServer {
	t.Helper()
	as := oauthtest.New(t)
	cfg := testConfig(t)
	cfg.OAuth.Issuer, cfg.OAuth.Resource = as.Issuer, oauthResource
	cfg.OAuth.Principals = map[string]string{"agent-7": "team-a"}
	ts := newTestServer(t, cfg)
	files := newFileServer()
	up := newRecordingUpstream(t, files.server)
	if err := ts.core.enableGateway(t.Context(), ts.Server, map[string]upstreamDialer{"files": mcpgw.HTTPUpstream(up.url, nil)}, nil); err != nil {
		t.Fatal(err)
	}
	ts.core.mountGateway(ts.mux, ts.core.gateway)
	return &oauthServer{ts: ts, as: as, files: files, up: up, start: up.requests()}
}

// claims are the claims of a good token of agent-7 with scopes.
func (o *oauthServer) claims(scopes string) oauthtest.Claims {
	return oauthtest.Claims{Subject: "agent-7", ClientID: "cli", Audience: []string{oauthResource}, Scope: scopes}
}

// post sends one JSON-RPC request to POST /mcp with the given
// Authorization header value (none when empty).
func (o *oauthServer) post(t *testing.T, authz, body string) *http.Response {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Accept", "application/json, text/event-stream")
	r.Header.Set("MCP-Protocol-Version", "2025-06-18")
	if authz != "" {
		r.Header.Set("Authorization", authz)
	}
	rec := httptest.NewRecorder()
	o.ts.Handler().ServeHTTP(rec, r)
	return rec.Result()
}

const listBody = `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`

func callBody(tool string) string {
	return `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"files.` + tool + `","arguments":{"path":"/a"},"_meta":{"` + mcpgw.MetaIdempotencyKey + `":"k-1"}}}`
}

// bearerSource is the go-sdk OAuthHandler of a stock client with a
// client-credentials registration: on a 401 it reads the challenge's
// resource_metadata, the authorization server's metadata, and asks the
// token endpoint for a token for the resource (RFC 8707) with scopes.
type bearerSource struct {
	t      *testing.T
	rs     *http.Client // reaches the resource server (the metadata)
	id     string
	secret string
	scopes []string

	mu  sync.Mutex
	src oauth2.TokenSource
	n   int // Authorize calls
}

func (b *bearerSource) TokenSource(context.Context) (oauth2.TokenSource, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.src, nil
}

func (b *bearerSource) Authorize(ctx context.Context, _ *http.Request, resp *http.Response) error {
	defer resp.Body.Close()
	b.mu.Lock()
	b.n++
	b.mu.Unlock()
	cs, err := oauthex.ParseWWWAuthenticate(resp.Header.Values("WWW-Authenticate"))
	if err != nil {
		return err
	}
	var metaURL string
	for _, c := range cs {
		if strings.EqualFold(c.Scheme, "bearer") {
			metaURL = c.Params["resource_metadata"]
		}
	}
	if metaURL == "" {
		return errors.New("no Bearer challenge with resource_metadata")
	}
	u, _ := url.Parse(metaURL)
	mr, err := b.rs.Get("http://talos.test" + u.Path)
	if err != nil {
		return err
	}
	var prm oauthex.ProtectedResourceMetadata
	err = json.NewDecoder(mr.Body).Decode(&prm)
	mr.Body.Close()
	if err != nil || len(prm.AuthorizationServers) == 0 {
		return fmt.Errorf("protected resource metadata: %v %+v", err, prm)
	}
	ar, err := http.Get(prm.AuthorizationServers[0] + "/.well-known/oauth-authorization-server")
	if err != nil {
		return err
	}
	var asm oauthex.AuthServerMeta
	err = json.NewDecoder(ar.Body).Decode(&asm)
	ar.Body.Close()
	if err != nil {
		return err
	}
	cc := clientcredentials.Config{ClientID: b.id, ClientSecret: b.secret, TokenURL: asm.TokenEndpoint, Scopes: b.scopes,
		EndpointParams: url.Values{"resource": {prm.Resource}}}
	tok, err := cc.Token(ctx)
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.src = oauth2.StaticTokenSource(tok)
	b.mu.Unlock()
	return nil
}

func (o *oauthServer) client(t *testing.T, h *bearerSource) *mcp.ClientSession {
	t.Helper()
	client := mcp.NewClient(&mcp.Implementation{Name: "stock-client", Version: "1"}, nil)
	cs, err := client.Connect(t.Context(), &mcp.StreamableClientTransport{
		Endpoint: "http://talos.test/mcp", HTTPClient: &http.Client{Transport: handlerTransport{o.ts.Handler()}},
		MaxRetries: -1, DisableStandaloneSSE: true, OAuthHandler: h,
	}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs
}

func toolNames(t *testing.T, cs *mcp.ClientSession) string {
	t.Helper()
	res, err := cs.ListTools(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, tl := range res.Tools {
		n = append(n, tl.Name)
	}
	return strings.Join(n, ",")
}

// lastEvents returns the audit events appended since from.
func eventsSince(t *testing.T, ts *testServer, from uint64) []audit.Event {
	t.Helper()
	var out []audit.Event
	for i := from; i < auditSize(t, ts); i++ {
		raw, err := ts.core.log.Entry(context.Background(), i)
		if err != nil {
			t.Fatal(err)
		}
		var ev audit.Event
		if err := json.Unmarshal(raw, &ev); err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

// TestOAuthStockClient: the go-sdk's own client, with an OAuthHandler
// doing discovery (401 challenge → protected resource metadata →
// authorization server metadata → client credentials with a resource
// indicator), lists and calls tools through the server; the calls go
// through the Kernel as the principal's did:key (audited), and the
// upstream never sees the client's token or Authorization header.
func TestOAuthStockClient(t *testing.T) {
	o := newOAuthServer(t)
	o.as.Register("cli-ro", oauthtest.Client{Secret: "s1", Subject: "agent-7", Scopes: []string{"tools:read"}})
	o.as.Register("cli-rw", oauthtest.Client{Secret: "s2", Subject: "agent-7", Scopes: []string{"tools:read", "tools:write"}})
	rs := &http.Client{Transport: handlerTransport{o.ts.Handler()}}

	ro := &bearerSource{t: t, rs: rs, id: "cli-ro", secret: "s1", scopes: []string{"tools:read"}}
	before := auditSize(t, o.ts)
	cs := o.client(t, ro)
	if got := toolNames(t, cs); got != "files.read_file" {
		t.Fatalf("tools:read lists %q", got)
	}
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "files.read_file", Arguments: map[string]any{"path": "/a"}})
	if err != nil || textOf(res) != "contents of /a" {
		t.Fatalf("read: %v %v", res, err)
	}
	if ro.n != 1 {
		t.Fatalf("Authorize called %d times, want 1", ro.n)
	}
	// A write with only tools:read: 403 insufficient_scope (the SDK
	// calls Authorize again, gets a token with the same scope, and fails).
	_, err = cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "files.write_file", Arguments: map[string]any{"path": "/a"},
		Meta: mcp.Meta{mcpgw.MetaIdempotencyKey: "k-ro"}})
	if err == nil {
		t.Fatal("a write with tools:read was served")
	}
	if o.files.writes.Load() != 0 {
		t.Fatal("the upstream executed a write the token's scopes do not grant")
	}

	rw := &bearerSource{t: t, rs: rs, id: "cli-rw", secret: "s2", scopes: []string{"tools:read", "tools:write"}}
	cs2 := o.client(t, rw)
	if got := toolNames(t, cs2); got != "files.read_file,files.write_file" {
		t.Fatalf("tools:read tools:write lists %q", got)
	}
	res, err = cs2.CallTool(t.Context(), &mcp.CallToolParams{Name: "files.write_file", Arguments: map[string]any{"path": "/w"},
		Meta: mcp.Meta{mcpgw.MetaIdempotencyKey: "k-rw"}})
	if err != nil || textOf(res) != "wrote /w" {
		t.Fatalf("write: %v %v", res, err)
	}
	if o.files.writes.Load() != 1 {
		t.Fatalf("writes %d", o.files.writes.Load())
	}

	// Audited through the Kernel, as the principal's OAuth did:key, in
	// its configured team, with the minted capability's hash, as a bearer
	// call (no signer_key_id) naming the issuer and the principal claim;
	// the token server issues no jti, so there is no jti hash.
	did := o.ts.core.oauth.didFor("agent-7").String()
	var gw, denied int
	for _, ev := range eventsSince(t, o.ts, before) {
		if ev.SurfaceID != mcpgw.SurfaceID {
			continue
		}
		gw++
		if want := audit.BearerPrincipal(did, "team-a"); ev.Principal != want {
			t.Fatalf("audited principal %+v, want %+v", ev.Principal, want)
		}
		if ev.Meta[metaOAuthIssuer] != o.as.Issuer || ev.Meta[metaOAuthClaim] != "sub" {
			t.Fatalf("bearer audit meta %v", ev.Meta)
		}
		if _, ok := ev.Meta[metaOAuthJTISHA256]; ok {
			t.Fatalf("a jti hash for a token without jti: %v", ev.Meta)
		}
		if ev.Outcome != "success" {
			denied++
			if ev.Meta["decision_reason"] != "SCOPE_MISMATCH" {
				t.Fatalf("denial reason %v", ev.Meta)
			}
		} else if h, _ := ev.Meta["capability_hash"].(string); h == "" {
			t.Fatalf("allowed event without capability_hash: %v", ev.Meta)
		}
	}
	// list, read, refused write (twice: the SDK retries once after
	// Authorize), list, write.
	if gw != 6 || denied != 2 {
		t.Fatalf("%d gateway events, %d denials; want 6 and 2", gw, denied)
	}
	if k := o.up.leaked(); k != "" {
		t.Fatalf("the upstream received %s", k)
	}
	if o.up.requests() <= o.start {
		t.Fatal("the tool calls never reached the upstream over HTTP")
	}
}

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// TestOAuthRefusals: bad tokens are 401 invalid_token with the resource
// metadata challenge, a missing scope 403 insufficient_scope naming the
// scope, an unregistered subject 403; nothing reaches the upstream.
func TestOAuthRefusals(t *testing.T) {
	o := newOAuthServer(t)
	as := o.as
	now := time.Now()
	c := func(f func(*oauthtest.Claims)) oauthtest.Claims {
		c := o.claims("tools:read tools:write")
		f(&c)
		return c
	}
	rsaPub := as.PublicKey(oauthtest.KeyRSA).(*rsa.PublicKey)
	der, _ := x509.MarshalPKIXPublicKey(rsaPub)
	hs := func(secret []byte) string {
		h, _ := json.Marshal(map[string]any{"alg": "HS256", "typ": "JWT", "kid": oauthtest.KeyRSA})
		p, _ := json.Marshal(map[string]any{"iss": as.Issuer, "sub": "agent-7", "aud": oauthResource, "exp": now.Add(time.Hour).Unix(), "scope": "tools:read"})
		in := b64u(h) + "." + b64u(p)
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(in))
		return in + "." + b64u(m.Sum(nil))
	}
	noneH, _ := json.Marshal(map[string]any{"alg": "none", "kid": oauthtest.KeyRSA})
	noneP, _ := json.Marshal(map[string]any{"iss": as.Issuer, "sub": "agent-7", "aud": oauthResource, "exp": now.Add(time.Hour).Unix(), "scope": "tools:read"})
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)

	for _, tc := range []struct {
		name, token string
	}{
		{"wrong audience", as.Sign(t, oauthtest.KeyRSA, c(func(c *oauthtest.Claims) { c.Audience = []string{"https://other.talos.test/mcp"} }))},
		{"expired", as.Sign(t, oauthtest.KeyEC, c(func(c *oauthtest.Claims) { c.Expiry, c.IssuedAt = now.Add(-time.Hour), now.Add(-2*time.Hour) }))},
		{"wrong issuer", as.Sign(t, oauthtest.KeyEd25519, c(func(c *oauthtest.Claims) { c.Issuer = "https://evil.talos.test" }))},
		{"unknown kid", as.SignWith(t, jose.EdDSA, stranger, "nobody", o.claims("tools:read"))},
		{"alg none", b64u(noneH) + "." + b64u(noneP) + "."},
		{"HS256 with the public key as secret", hs(der)},
		{"garbage", "not-a-token"},
	} {
		resp := o.post(t, "Bearer "+tc.token, listBody)
		body, _ := io.ReadAll(resp.Body)
		hdr := resp.Header.Get("WWW-Authenticate")
		var ce contracts.Error
		if resp.StatusCode != http.StatusUnauthorized || json.Unmarshal(body, &ce) != nil || (ce.Code != contracts.CodeAuthInvalid && ce.Code != contracts.CodeAuthExpired) {
			t.Errorf("%s: %d %s", tc.name, resp.StatusCode, body)
			continue
		}
		if !strings.Contains(hdr, `resource_metadata="https://gateway.talos.test/.well-known/oauth-protected-resource/mcp"`) || !strings.Contains(hdr, `error="invalid_token"`) {
			t.Errorf("%s: challenge %q", tc.name, hdr)
		}
	}

	// No credential at all: both ways in are offered.
	resp := o.post(t, "", listBody)
	chs := resp.Header.Values("WWW-Authenticate")
	if resp.StatusCode != 401 || len(chs) != 2 || !strings.HasPrefix(chs[0], "Bearer resource_metadata=") || strings.Contains(chs[0], "error=") ||
		!strings.Contains(chs[0], `scope="tools:read tools:write"`) || !strings.HasPrefix(chs[1], "Talos-Attestation") {
		t.Fatalf("no credential: %d %q", resp.StatusCode, chs)
	}

	// A missing scope: 403 insufficient_scope naming tools:write, audited
	// as a bearer call with the hash of the token's jti (never the token,
	// the jti or the subject).
	before := auditSize(t, o.ts)
	withJTI := o.claims("tools:read")
	withJTI.JWTID = "jti-4f1c"
	token := as.Sign(t, oauthtest.KeyRSA, withJTI)
	resp = o.post(t, "Bearer "+token, callBody("write_file"))
	hdr := resp.Header.Get("WWW-Authenticate")
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(hdr, `error="insufficient_scope"`) || !strings.Contains(hdr, `scope="tools:write"`) {
		t.Fatalf("missing scope: %d %q", resp.StatusCode, hdr)
	}
	evs := eventsSince(t, o.ts, before)
	if len(evs) != 1 || evs[0].SurfaceID != mcpgw.SurfaceID || evs[0].Outcome == "success" || evs[0].Meta["tool"] != "files" || evs[0].Meta["action"] != "write_file" {
		t.Fatalf("missing scope audited as %+v", evs)
	}
	jti := sha256.Sum256([]byte("jti-4f1c"))
	if ev := evs[0]; ev.Principal != audit.BearerPrincipal(o.ts.core.oauth.didFor("agent-7").String(), "team-a") ||
		ev.Meta[metaOAuthIssuer] != as.Issuer || ev.Meta[metaOAuthClaim] != "sub" || ev.Meta[metaOAuthJTISHA256] != hex.EncodeToString(jti[:]) {
		t.Fatalf("missing scope audited as %+v %v", ev.Principal, ev.Meta)
	}
	raw, err := o.ts.core.log.Entry(t.Context(), before)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{token, "jti-4f1c", "agent-7"} {
		if strings.Contains(string(raw), secret) {
			t.Fatalf("the audit event holds %q: %s", secret, raw)
		}
	}
	// Scopes granting nothing at all.
	resp = o.post(t, "Bearer "+as.Sign(t, oauthtest.KeyRSA, o.claims("profile")), listBody)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Fatalf("no useful scope: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}

	// A valid token of a subject that is not a registered principal.
	other := o.claims("tools:read")
	other.Subject = "agent-9"
	resp = o.post(t, "Bearer "+as.Sign(t, oauthtest.KeyRSA, other), listBody)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("unregistered subject: %d", resp.StatusCode)
	}

	// A bearer token and an attestation at once.
	r := httptest.NewRequest(http.MethodPost, "/mcp", strings.NewReader(listBody))
	r.Header.Set("Authorization", "Bearer "+as.Sign(t, oauthtest.KeyRSA, o.claims("tools:read")))
	r.Header.Set("X-Talos-Signature", "x")
	rec := httptest.NewRecorder()
	o.ts.Handler().ServeHTTP(rec, r)
	if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Header().Get("WWW-Authenticate"), `error="invalid_request"`) {
		t.Fatalf("bearer and attestation: %d %q", rec.Code, rec.Header().Get("WWW-Authenticate"))
	}

	if o.up.requests() != o.start || o.files.writes.Load() != 0 || o.files.reads.Load() != 0 {
		t.Fatalf("refused requests reached the upstream: %d requests after start-up", o.up.requests()-o.start)
	}
}

// TestOAuthJWKSUnavailableFailsClosed: without the issuer's keys every
// bearer request is refused (500, retryable), none reaches the upstream.
func TestOAuthJWKSUnavailableFailsClosed(t *testing.T) {
	o := newOAuthServer(t)
	o.as.SetJWKSDown(true)
	resp := o.post(t, "Bearer "+o.as.Sign(t, oauthtest.KeyRSA, o.claims("tools:read")), callBody("read_file"))
	var ce contracts.Error
	if resp.StatusCode != http.StatusInternalServerError || json.NewDecoder(resp.Body).Decode(&ce) != nil || !ce.Retryable {
		t.Fatalf("JWKS down: %d %+v", resp.StatusCode, ce)
	}
	if o.up.requests() != o.start || o.files.reads.Load() != 0 {
		t.Fatal("a request reached the upstream without a verified token")
	}
}

// TestOAuthMetadataAndAdminRegistration: the protected resource
// metadata at both well-known paths; a subject outside
// TALOS_OAUTH_PRINCIPALS is served once an admin registers the did:key
// GET /v1/admin/oauth/principals/{value} names; the bearer's forged
// X-Talos-Capability is replaced by the minted one.
func TestOAuthMetadataAndAdminRegistration(t *testing.T) {
	o := newOAuthServer(t)
	for _, p := range []string{oauth.WellKnownPath, oauth.WellKnownPath + "/mcp"} {
		var m oauthex.ProtectedResourceMetadata
		if st := decode(t, o.ts.do(t, "GET", p, "", nil), &m); st != 200 {
			t.Fatalf("%s: %d", p, st)
		}
		if m.Resource != oauthResource || !slices.Equal(m.AuthorizationServers, []string{o.as.Issuer}) ||
			!slices.Equal(m.ScopesSupported, []string{"tools:read", "tools:write"}) || !slices.Equal(m.BearerMethodsSupported, []string{"header"}) {
			t.Fatalf("%s: %+v", p, m)
		}
	}

	var info oauthPrincipal
	if st := decode(t, o.ts.do(t, "GET", "/v1/admin/oauth/principals/agent-9", "", nil), &info); st != http.StatusUnauthorized {
		t.Fatalf("the admin route without an admin: %d", st)
	}
	if st := decode(t, o.ts.do(t, "GET", "/v1/admin/oauth/principals/agent-9", o.ts.cred, nil), &info); st != 200 || info.Registered || info.DID == "" {
		t.Fatalf("agent-9 before registration: %d %+v", st, info)
	}
	var p map[string]any
	if st := decode(t, o.ts.do(t, "PUT", "/v1/principals/"+info.DID, o.ts.cred, []byte(`{"team_id":"team-b"}`)), &p); st != 200 {
		t.Fatalf("register: %d %v", st, p)
	}
	if st := decode(t, o.ts.do(t, "GET", "/v1/admin/oauth/principals/agent-9", o.ts.cred, nil), &info); st != 200 || !info.Registered || info.TeamID != "team-b" {
		t.Fatalf("agent-9 after registration: %d %+v", st, info)
	}

	claims := o.claims("tools:read")
	claims.Subject = "agent-9"
	tok := o.as.Sign(t, oauthtest.KeyEC, claims)
	// A capability for write_file, issued by the server to an attested
	// agent, sent along: it must not reach the Kernel.
	alice := newAgent(t, o.ts, "alice", "team-a")
	forged := issue(t, o.ts, alice.did, false, grant("files", "read_file", "write_file")).Token
	r := httptest.NewRequest(http.MethodPost, "/mcp", bytes.NewReader([]byte(listBody)))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Accept", "application/json, text/event-stream")
	r.Header.Set("Authorization", "Bearer "+tok)
	r.Header.Set("X-Talos-Capability", forged)
	rec := httptest.NewRecorder()
	o.ts.Handler().ServeHTTP(rec, r)
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "files.read_file") || strings.Contains(rec.Body.String(), "files.write_file") {
		t.Fatalf("agent-9's list: %d %s", rec.Code, rec.Body)
	}

	// Attested agents are served as before.
	cs := alice.mcpSession(t, forged)
	if got := toolNames(t, cs); got != "files.read_file,files.write_file" {
		t.Fatalf("attested agent lists %q", got)
	}
}

func TestOAuthSettings(t *testing.T) {
	get := func(env map[string]string) (Config, error) {
		env["TALOS_DATA_DIR"] = t.TempDir()
		cfg, _, err := LoadConfig(nil, func(k string) string { return env[k] })
		return cfg, err
	}
	cfg, err := get(map[string]string{
		"TALOS_OAUTH_ISSUER": "https://auth.example.com", "TALOS_OAUTH_RESOURCE": "https://gw.example.com/mcp",
		"TALOS_OAUTH_PRINCIPAL_CLAIM": "client_id", "TALOS_OAUTH_SCOPES": "mcp:read=read,files:all=files+notes.get",
		"TALOS_OAUTH_PRINCIPALS": "cli-1=team-a,cli-2=team-b",
	})
	if err != nil {
		t.Fatal(err)
	}
	o := cfg.OAuth
	if o.Claim != "client_id" || len(o.Scopes) != 2 || o.Scopes[1].Scope != "files:all" || !slices.Equal(o.Scopes[1].Selectors, []string{"files", "notes.get"}) ||
		o.Principals["cli-2"] != "team-b" {
		t.Fatalf("%+v", o)
	}
	if d, err := get(map[string]string{}); err != nil || d.OAuth.Claim != "sub" || len(d.OAuth.Scopes) != 2 || d.OAuth.Issuer != "" {
		t.Fatalf("defaults: %+v %v", d.OAuth, err)
	}
	for _, env := range []map[string]string{
		{"TALOS_OAUTH_ISSUER": "https://auth.example.com"},
		{"TALOS_OAUTH_RESOURCE": "https://gw.example.com/mcp"},
		{"TALOS_OAUTH_ISSUER": "http://auth.example.com", "TALOS_OAUTH_RESOURCE": "https://gw.example.com/mcp"},
		{"TALOS_OAUTH_ISSUER": "https://auth.example.com", "TALOS_OAUTH_RESOURCE": "https://gw.example.com/mcp#x"},
		{"TALOS_OAUTH_PRINCIPAL_CLAIM": "email"},
		{"TALOS_OAUTH_SCOPES": "a=read,a=write"},
		{"TALOS_OAUTH_SCOPES": "a"},
		{"TALOS_OAUTH_SCOPES": "a=bad name"},
		{"TALOS_OAUTH_PRINCIPALS": "x=team,x=team"},
		// Longer than an audit meta string (it is recorded in every event).
		{"TALOS_OAUTH_ISSUER": "https://auth.example.com/" + strings.Repeat("i", 1100), "TALOS_OAUTH_RESOURCE": "https://gw.example.com/mcp"},
	} {
		if _, err := get(env); contracts.CodeOf(err) != contracts.CodeInvalidInput {
			t.Errorf("%v: %v", env, err)
		}
	}
}

// FuzzOAuthParsers: the TALOS_OAUTH_SCOPES and TALOS_OAUTH_PRINCIPALS
// parsers and the tools/call peek of bearer bodies never panic, and what
// they accept is well formed.
func FuzzOAuthParsers(f *testing.F) {
	f.Add(defaultOAuthScopes, "agent-7=team-a", callBody("write_file"))
	f.Add("a=files+notes.get,b=write", "x=y,z=w", listBody)
	f.Add("=,", "=", `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a.b","NAME":"c.d"}}`)
	f.Fuzz(func(t *testing.T, scopes, principals, body string) {
		var sc []oauthScope
		if parseOAuthScopes(&sc, scopes) == nil {
			for _, s := range sc {
				if !validOAuthScope(s.Scope) || len(s.Selectors) == 0 {
					t.Fatalf("accepted %q as %+v", scopes, sc)
				}
			}
		}
		var ps map[string]string
		if parseOAuthPrincipals(&ps, principals) == nil {
			for v, team := range ps {
				if v == "" || team == "" || strings.ContainsAny(v+team, " ,=") {
					t.Fatalf("accepted %q as %v", principals, ps)
				}
			}
		}
		if name, ok := toolCall([]byte(body)); ok && (name == "" || mcpgw.CheckJSONRPC([]byte(body)) != nil) {
			t.Fatalf("tools/call %q from %q", name, body)
		}
	})
}
