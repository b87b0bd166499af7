package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/identity"
)

// grantFlags collects --grant and --grant-read-only.
type grantFlags struct {
	rw, ro stringList
}

func (g *grantFlags) register(fs *flag.FlagSet) {
	fs.Var(&g.rw, "grant", "a grant TOOL:ACTION[,ACTION…] (repeatable), e.g. search:query,list")
	fs.Var(&g.ro, "grant-read-only", "a grant limited to read actions, TOOL:ACTION[,ACTION…] (repeatable)")
}

func (g *grantFlags) grants() ([]capability.Grant, error) {
	var out []capability.Grant
	for _, set := range []struct {
		list stringList
		ro   bool
	}{{g.rw, false}, {g.ro, true}} {
		for _, s := range set.list {
			tool, acts, ok := strings.Cut(s, ":")
			if !ok || tool == "" || acts == "" {
				return nil, usageError("bad grant %q: want TOOL:ACTION[,ACTION…]", s)
			}
			actions := strings.Split(acts, ",")
			for _, a := range actions {
				if a == "" {
					return nil, usageError("bad grant %q: empty action", s)
				}
			}
			out = append(out, capability.Grant{Tool: tool, Actions: actions, ReadOnly: set.ro})
		}
	}
	if len(out) == 0 {
		return nil, usageError("need at least one --grant or --grant-read-only")
	}
	return out, nil
}

// parseWhen reads a time: RFC 3339, or a duration from now ("1h", "30m").
func parseWhen(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, usageError("bad time %q: want RFC 3339 or a duration like 1h", s)
	}
	return t, nil
}

// writeToken writes the wire form to --out or stdout.
func (e *env) writeToken(asJSON bool, out, wire string, info map[string]any) error {
	if out != "" {
		if err := writeFileAtomic(out, []byte(wire+"\n"), 0o644); err != nil {
			return wrap(exitIO, "cannot write the token", err)
		}
	}
	info["ok"] = true
	info["token"] = wire
	return e.emit(asJSON, info, func(o io.Writer) {
		if out == "" {
			fmt.Fprintln(o, wire)
		}
	})
}

func cmdTokenIssue(e *env, args []string) error {
	const syn = "talos token issue --wallet FILE --subject DID --grant TOOL:ACTIONS… --expires WHEN [--not-before WHEN] [--audience DID] [--read-only] [--out FILE]"
	fs := newFlags("token issue")
	walletPath := fs.String("wallet", "", "the issuer's wallet file (required)")
	subject := fs.String("subject", "", "the subject's did:key (required)")
	expires := fs.String("expires", "", "expiry: RFC 3339 or a duration from now, e.g. 1h (required)")
	notBefore := fs.String("not-before", "", "not valid before: RFC 3339 or a duration from now")
	audience := fs.String("audience", "", "the DID of the one service that may accept the token (metadata.aud)")
	readOnly := fs.Bool("read-only", false, "limit every grant to read actions (metadata.read_only)")
	out := fs.String("out", "", "write the token to this file instead of stdout")
	var g grantFlags
	g.register(fs)
	var p passFlags
	p.register(fs)
	if err := e.parse(fs, syn, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError("token issue takes no arguments")
	}
	if *subject == "" || *expires == "" {
		return usageError("--subject and --expires are required")
	}
	now := time.Now()
	grants, err := g.grants()
	if err != nil {
		return err
	}
	exp, err := parseWhen(*expires, now)
	if err != nil {
		return err
	}
	opts := capability.IssueOptions{Audience: *audience, ReadOnly: *readOnly}
	if *notBefore != "" {
		if opts.NotBefore, err = parseWhen(*notBefore, now); err != nil {
			return err
		}
	}
	w, err := e.loadWallet(*walletPath, p)
	if err != nil {
		return err
	}
	issueSubject, err := capability.ParseSubject(*subject)
	if err != nil {
		return e.failJSON(jsonOut(fs), wrap(exitFailed, "cannot issue", err), nil)
	}
	tok, err := capability.Issue(w.Signer(), issueSubject, grants, exp, &opts)
	if err != nil {
		return e.failJSON(jsonOut(fs), wrap(exitFailed, "cannot issue", err), nil)
	}
	return e.writeToken(jsonOut(fs), *out, tok.Encode(), map[string]any{"hash": tok.Hash(), "exp": tok.Expiry().UTC().Format(time.RFC3339)})
}

// readChain reads a token or chain from a file or stdin.
func (e *env) readChain(arg string) (capability.Chain, error) {
	b, err := e.readInput(arg, capability.MaxChainSize+1024)
	if err != nil {
		return nil, err
	}
	c, err := capability.ParseChain(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, wrap(exitFailed, "not a token or chain", err)
	}
	return c, nil
}

func cmdTokenDelegate(e *env, args []string) error {
	const syn = "talos token delegate --wallet FILE --subject DID --grant TOOL:ACTIONS… [--expires WHEN] [--out FILE] [CHAIN-FILE|-]"
	fs := newFlags("token delegate")
	walletPath := fs.String("wallet", "", "the holder's wallet file: the subject of the chain's last token (required)")
	subject := fs.String("subject", "", "the new subject's did:key (required)")
	expires := fs.String("expires", "", "expiry: RFC 3339 or a duration from now (default: the parent's)")
	out := fs.String("out", "", "write the chain to this file instead of stdout")
	var g grantFlags
	g.register(fs)
	var p passFlags
	p.register(fs)
	if err := e.parse(fs, syn, args); err != nil {
		return err
	}
	arg, err := oneArg(fs)
	if err != nil {
		return err
	}
	if *subject == "" {
		return usageError("--subject is required")
	}
	grants, err := g.grants()
	if err != nil {
		return err
	}
	chain, err := e.readChain(arg)
	if err != nil {
		return e.failJSON(jsonOut(fs), err, nil)
	}
	parent := chain.Leaf()
	exp := parent.Expiry()
	if *expires != "" {
		if exp, err = parseWhen(*expires, time.Now()); err != nil {
			return err
		}
	}
	if len(chain) >= capability.MaxChainDepth {
		return e.failJSON(jsonOut(fs), failf(exitFailed, "the chain already holds %d tokens, the most a chain may", len(chain)), nil)
	}
	w, err := e.loadWallet(*walletPath, p)
	if err != nil {
		return err
	}
	issueSubject, err := capability.ParseSubject(*subject)
	if err != nil {
		return e.failJSON(jsonOut(fs), wrap(exitFailed, "cannot delegate", err), nil)
	}
	child, err := capability.Delegate(parent, w.Signer(), issueSubject, grants, exp)
	if err != nil {
		return e.failJSON(jsonOut(fs), wrap(exitFailed, "cannot delegate", err), nil)
	}
	next := append(append(capability.Chain(nil), chain...), child)
	return e.writeToken(jsonOut(fs), *out, next.Encode(), map[string]any{"hash": child.Hash(), "depth": len(next), "exp": child.Expiry().UTC().Format(time.RFC3339)})
}

// tokenView is what inspect prints of a token: every signed member, no
// key material (tokens hold none).
type tokenView struct {
	Link      int                `json:"link"`
	Hash      string             `json:"hash"`
	Issuer    string             `json:"issuer"`
	Subject   string             `json:"subject"`
	Scope     []capability.Grant `json:"scope"`
	NotBefore string             `json:"nbf,omitempty"`
	Expires   string             `json:"exp"`
	Expired   bool               `json:"expired"`
	Nonce     string             `json:"nonce"`
	Audience  string             `json:"audience,omitempty"`
	ReadOnly  bool               `json:"read_only,omitempty"`
	Parent    string             `json:"parent,omitempty"`
	Metadata  json.RawMessage    `json:"metadata,omitempty"`
}

func viewToken(i int, t *capability.Token, now time.Time) tokenView {
	v := tokenView{
		Link: i, Hash: t.Hash(), Issuer: t.Issuer().String(), Subject: t.Subject().String(),
		Scope: t.Grants(), Expires: t.Expiry().UTC().Format(time.RFC3339), Expired: now.After(t.Expiry()),
		Nonce: t.Nonce(), Audience: t.Audience(), ReadOnly: t.ReadOnly(), Parent: t.Parent(), Metadata: t.Metadata(),
	}
	if nbf, ok := t.NotBefore(); ok {
		v.NotBefore = nbf.UTC().Format(time.RFC3339)
	}
	return v
}

func cmdTokenInspect(e *env, args []string) error {
	const syn = "talos token inspect [TOKEN-FILE|-]"
	fs := newFlags("token inspect")
	if err := e.parse(fs, syn, args); err != nil {
		return err
	}
	arg, err := oneArg(fs)
	if err != nil {
		return err
	}
	chain, err := e.readChain(arg)
	if err != nil {
		return e.failJSON(jsonOut(fs), err, nil)
	}
	now := time.Now()
	views := make([]tokenView, len(chain))
	for i, t := range chain {
		views[i] = viewToken(i, t, now)
	}
	return e.emit(jsonOut(fs), map[string]any{"ok": true, "verified": false, "chain": views}, func(o io.Writer) {
		fmt.Fprintln(o, "(decoded only: nothing is verified; use talos token verify)")
		for _, v := range views {
			fmt.Fprintf(o, "link %d  %s\n", v.Link, v.Hash)
			fmt.Fprintf(o, "  issuer:    %s\n  subject:   %s\n", v.Issuer, v.Subject)
			for _, g := range v.Scope {
				ro := ""
				if g.ReadOnly {
					ro = " (read-only)"
				}
				fmt.Fprintf(o, "  grant:     %s: %s%s\n", g.Tool, strings.Join(g.Actions, ","), ro)
			}
			if v.NotBefore != "" {
				fmt.Fprintf(o, "  not before: %s\n", v.NotBefore)
			}
			exp := ""
			if v.Expired {
				exp = " (expired)"
			}
			fmt.Fprintf(o, "  expires:   %s%s\n", v.Expires, exp)
			if v.Audience != "" {
				fmt.Fprintf(o, "  audience:  %s\n", v.Audience)
			}
			if v.ReadOnly {
				fmt.Fprintf(o, "  read-only: true\n")
			}
			if v.Parent != "" {
				fmt.Fprintf(o, "  parent:    %s\n", v.Parent)
			}
		}
	})
}

func cmdTokenVerify(e *env, args []string) error {
	const syn = "talos token verify --trust DID… [--at WHEN] [--audience DID] [--holder DID] [--tool T --action A] [TOKEN-FILE|-]"
	fs := newFlags("token verify")
	var trust stringList
	fs.Var(&trust, "trust", "a trusted root issuer did:key (repeatable, required)")
	at := fs.String("at", "", "verify at this time (RFC 3339 or a duration from now) instead of now")
	audience := fs.String("audience", "", "the verifying service's DID; a token that names an audience needs it")
	holder := fs.String("holder", "", "require the last token's subject to be this DID")
	tool := fs.String("tool", "", "require a grant of --action on this tool")
	action := fs.String("action", "", "the action --tool must grant")
	if err := e.parse(fs, syn, args); err != nil {
		return err
	}
	arg, err := oneArg(fs)
	if err != nil {
		return err
	}
	if len(trust) == 0 {
		return usageError("need at least one --trust issuer DID")
	}
	if (*tool == "") != (*action == "") {
		return usageError("--tool and --action go together")
	}
	var trusted []identity.DID
	for _, s := range trust {
		d, err := identity.ParseDID(s)
		if err != nil {
			return usageError("bad --trust %q: %v", s, err)
		}
		trusted = append(trusted, d)
	}
	now := time.Now()
	if *at != "" {
		if now, err = parseWhen(*at, now); err != nil {
			return err
		}
	}
	asJSON := jsonOut(fs)
	chain, err := e.readChain(arg)
	if err != nil {
		return e.failJSON(asJSON, err, map[string]any{"reason": string(capability.ReasonNoCapability)})
	}
	fail := func(reason capability.ReasonCode, link int, err error) error {
		return e.failJSON(asJSON, err, map[string]any{"reason": string(reason), "link": link})
	}
	if err := capability.VerifyChain(chain, trusted, now); err != nil {
		var ce *capability.ChainError
		if errors.As(err, &ce) {
			return fail(ce.Reason, ce.Link, failf(exitFailed, "not valid: link %d: %s: %v", ce.Link, ce.Reason, ce.Err))
		}
		return fail(capability.ReasonSignatureInvalid, 0, wrap(exitFailed, "not valid", err))
	}
	leaf := chain.Leaf()
	last := len(chain) - 1
	switch aud := leaf.Audience(); {
	case aud != "" && *audience == "":
		return fail(capability.ReasonAudienceMismatch, last, failf(exitFailed, "not valid: the token is addressed to %s: pass --audience", aud))
	case *audience != "" && aud != *audience:
		return fail(capability.ReasonAudienceMismatch, last, failf(exitFailed, "not valid: the token's audience is %q, not %s", aud, *audience))
	}
	if *holder != "" && leaf.Subject().String() != *holder {
		return fail(capability.ReasonHolderMismatch, last, failf(exitFailed, "not valid: the holder is %s, not %s", leaf.Subject(), *holder))
	}
	if *tool != "" {
		if !leaf.Authorize(*tool, *action) {
			return fail(capability.ReasonScopeMismatch, last, failf(exitFailed, "not valid: no grant of %s on %s", *action, *tool))
		}
		if readOnlyFor(leaf, *tool, *action) {
			return fail(capability.ReasonScopeMismatch, last, failf(exitFailed, "not decided: %s on %s is limited to read actions, and only a Verifier with a ToolRegistry knows whether it reads", *action, *tool))
		}
	}
	return e.emit(asJSON, map[string]any{
		"ok": true, "reason": string(capability.ReasonAllowed), "depth": len(chain), "root_issuer": chain[0].Issuer().String(),
		"subject": leaf.Subject().String(), "hash": leaf.Hash(), "exp": leaf.Expiry().UTC().Format(time.RFC3339),
	}, func(o io.Writer) {
		fmt.Fprintf(o, "valid: %d link(s), root issuer %s, subject %s, expires %s\n", len(chain), chain[0].Issuer(), leaf.Subject(), leaf.Expiry().UTC().Format(time.RFC3339))
	})
}

// readOnlyFor reports whether every grant of action on tool is limited to
// read actions (by the token or the grant).
func readOnlyFor(t *capability.Token, tool, action string) bool {
	if t.ReadOnly() {
		return true
	}
	for _, g := range t.Grants() {
		if g.Tool == tool && !g.ReadOnly {
			for _, a := range g.Actions {
				if a == action {
					return false
				}
			}
		}
	}
	return true
}
