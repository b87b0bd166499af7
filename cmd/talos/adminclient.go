package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// The admin client's environment variables and limits.
const (
	serverEnv       = "TALOS_SERVER"
	adminSessionEnv = "TALOS_ADMIN_SESSION"
	adminWalletEnv  = "TALOS_ADMIN_WALLET"
	defaultServer   = "http://127.0.0.1:8080"

	// adminOpcode is the attestation opcode of every admin request
	// (gateway/admin.SurfaceID).
	adminOpcode   = "admin"
	sessionPrefix = "talos_session_"
	maxAdminBody  = 8 << 20 // one response of the admin API
	maxErrorBody  = 64 << 10
	maxListPages  = 10000 // --all stops after this many pages (a server looping on cursors)
)

// adminFlags are the flags every `talos admin` command takes.
type adminFlags struct {
	server  string
	wallet  string
	session string
	timeout time.Duration
	pass    passFlags
}

func (a *adminFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&a.server, "server", "", "the Talos server URL (else $"+serverEnv+", else "+defaultServer+")")
	fs.StringVar(&a.wallet, "wallet", "", "the admin wallet that signs requests (else $"+adminWalletEnv+")")
	fs.StringVar(&a.session, "session", "", "an admin session token instead of a wallet (else $"+adminSessionEnv+"; prefer the variable: a flag shows in ps)")
	fs.DurationVar(&a.timeout, "timeout", 30*time.Second, "time limit of each HTTP request (not of admin watch)")
	a.pass.register(fs)
}

// adminClient sends admin API requests: attested by the admin wallet, or
// with a session bearer token.
type adminClient struct {
	base    string // scheme://host[:port][/prefix], no trailing slash
	client  *http.Client
	signer  *identity.AttestationSigner // nil: session
	session string                      // the bearer session token, when no signer
	did     string                      // the wallet's DID, when a wallet is used
	stderr  io.Writer
}

// serverURL returns the server base URL of a.
func (e *env) serverURL(a adminFlags) (string, error) {
	s := a.server
	if s == "" {
		s = e.getenv(serverEnv)
	}
	if s == "" {
		s = defaultServer
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", usageError("bad --server %q: want http(s)://host[:port]", s)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// newAdminClient builds the client of a. needAuth false means no
// credential is loaded (bootstrap); attestedOnly refuses a session (a
// session cannot mint sessions).
func (e *env) newAdminClient(a adminFlags, needAuth, attestedOnly bool) (*adminClient, error) {
	base, err := e.serverURL(a)
	if err != nil {
		return nil, err
	}
	c := &adminClient{base: base, client: &http.Client{Timeout: a.timeout}, stderr: e.stderr}
	if a.timeout <= 0 {
		c.client.Timeout = 0
	}
	if !needAuth {
		return c, nil
	}
	wallet := a.wallet
	session := a.session
	if wallet != "" && session != "" {
		return nil, usageError("--wallet and --session exclude each other")
	}
	if wallet == "" && session == "" {
		// The environment: a session variable is used unless the command
		// must be signed; a flag always wins over both variables.
		if s := e.getenv(adminSessionEnv); s != "" && !attestedOnly {
			session = s
		} else {
			wallet = e.getenv(adminWalletEnv)
		}
	}
	if attestedOnly && wallet == "" {
		return nil, usageError("this command needs --wallet (an admin wallet signs it; a session cannot)")
	}
	switch {
	case wallet != "":
		w, err := e.loadWallet(wallet, a.pass)
		if err != nil {
			return nil, err
		}
		c.signer, err = identity.NewAttestationSigner(identity.AttestationSignerConfig{Signer: w.Signer()})
		if err != nil {
			return nil, wrap(exitWallet, "cannot sign with the wallet", err)
		}
		c.did = w.DID().String()
	case session != "":
		if !validSession(session) {
			return nil, usageError("the session token must be %s followed by base64url", sessionPrefix)
		}
		c.session = session
	default:
		return nil, usageError("need an admin credential: --wallet FILE, $%s, --session or $%s", adminWalletEnv, adminSessionEnv)
	}
	return c, nil
}

// validSession checks the shape of a session token (never echoed).
func validSession(s string) bool {
	rest, ok := strings.CutPrefix(s, sessionPrefix)
	if !ok || len(rest) < 16 || len(rest) > 128 {
		return false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// apiError is an error answer of the server: its status and contract
// error body.
type apiError struct {
	status int
	body   *contracts.Error
}

func (e *apiError) Error() string {
	if e.body != nil {
		return fmt.Sprintf("server answered %d: %v", e.status, e.body)
	}
	return fmt.Sprintf("server answered %d", e.status)
}

func (e *apiError) Unwrap() error {
	if e.body == nil {
		return nil
	}
	return e.body
}

// exitCode of a server answer: a refusal (4xx) is a rejected input, a
// server failure (5xx) an I/O error.
func (e *apiError) exitCode() int {
	if e.status >= 500 {
		return exitIO
	}
	return exitFailed
}

// request builds a request for path (which starts with /) and query.
func (c *adminClient) request(ctx context.Context, method, path string, query url.Values, body any) (*http.Request, error) {
	target := c.base + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, wrap(exitFailed, "cannot encode the request", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, usageError("bad request URL: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	return req, nil
}

// authorize attests req or adds the session bearer.
func (c *adminClient) authorize(req *http.Request) error {
	switch {
	case c.signer != nil:
		if err := c.signer.Sign(req, adminOpcode); err != nil {
			return wrap(exitFailed, "cannot sign the request", err)
		}
	case c.session != "":
		req.Header.Set("Authorization", "Bearer "+c.session)
	}
	return nil
}

// do sends one admin request and decodes a 2xx JSON answer into out (a
// pointer, or nil to drop it). Anything else is an *apiError wrapped in
// a cliError with its exit code.
func (c *adminClient) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	req, err := c.request(ctx, method, path, query, body)
	if err != nil {
		return err
	}
	if err := c.authorize(req); err != nil {
		return err
	}
	return c.send(req, out)
}

// send sends req (already authorized) and decodes the answer.
func (c *adminClient) send(req *http.Request, out any) error {
	resp, err := c.client.Do(req)
	if err != nil {
		return wrap(exitIO, "cannot reach "+c.base, redactURLError(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return responseError(resp)
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAdminBody+1))
	if err != nil {
		return wrap(exitIO, "cannot read the answer", err)
	}
	if len(raw) > maxAdminBody {
		return failf(exitIO, "answer larger than %d bytes", maxAdminBody)
	}
	if out == nil || len(bytes.TrimSpace(raw)) == 0 {
		return nil // nothing to decode (204, or an empty answer)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return wrap(exitIO, "the server's answer is not the expected JSON", contracts.Wrap(contracts.CodeInvalidInput, "admin answer", err))
	}
	return nil
}

// responseError reads a non-2xx answer: the contract error body when
// there is one.
func responseError(resp *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	ae := &apiError{status: resp.StatusCode}
	var body contracts.Error
	if json.Unmarshal(raw, &body) == nil && body.Code != "" {
		ae.body = &body
	}
	return &cliError{code: ae.exitCode(), msg: req2msg(resp), err: ae}
}

func req2msg(resp *http.Response) string {
	if resp.Request == nil {
		return "request refused"
	}
	return resp.Request.Method + " " + resp.Request.URL.Path
}

// redactURLError drops the URL (it may hold a query) from a transport
// error, keeping its cause.
func redactURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// listPage is the paginated list answer.
type listPage struct {
	Items      []json.RawMessage `json:"items"`
	NextCursor string            `json:"next_cursor,omitempty"`
}

// listFlags are --limit, --cursor and --all.
type listFlags struct {
	limit  int
	cursor string
	all    bool
}

func (l *listFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&l.limit, "limit", 0, "page size, 1 to 500 (the server's default is 100)")
	fs.StringVar(&l.cursor, "cursor", "", "start after this cursor (the next_cursor of a previous page)")
	fs.BoolVar(&l.all, "all", false, "follow next_cursor to the last page")
}

func (l *listFlags) check() error {
	if l.limit != 0 && (l.limit < 1 || l.limit > 500) {
		return usageError("--limit must be 1 to 500")
	}
	return nil
}

// list reads one page, or every page with --all, of path with query.
func (c *adminClient) list(ctx context.Context, path string, query url.Values, l listFlags) (listPage, error) {
	if query == nil {
		query = url.Values{}
	}
	if l.limit != 0 {
		query.Set("limit", fmt.Sprint(l.limit))
	}
	cursor := l.cursor
	var all listPage
	for pages := 0; ; pages++ {
		if pages == maxListPages {
			return all, failf(exitIO, "more than %d pages: stopping", maxListPages)
		}
		if cursor != "" {
			query.Set("cursor", cursor)
		} else {
			query.Del("cursor")
		}
		var p listPage
		if err := c.do(ctx, http.MethodGet, path, query, nil, &p); err != nil {
			return all, err
		}
		all.Items = append(all.Items, p.Items...)
		all.NextCursor = p.NextCursor
		if !l.all || p.NextCursor == "" {
			return all, nil
		}
		if p.NextCursor == cursor {
			return all, failf(exitIO, "the server repeated cursor %q", cursor)
		}
		cursor = p.NextCursor
	}
}
