package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/identity"
)

// adminCommands are the `talos admin …` commands: clients of a server's
// admin API (attested with an admin wallet, or with a session token).
func adminCommands() []command {
	return []command{
		{"admin bootstrap", "make the wallet's DID the first owner with the server's bootstrap credential", cmdAdminBootstrap},
		{"admin recover", "offline: write a recovery file into a data directory and print a new credential", cmdAdminRecover},
		{"admin whoami", "the admin identity, role and permissions the server sees", cmdAdminWhoami},
		{"admin session", "mint a short-lived admin session token (and the dashboard URL)", cmdAdminSession},
		{"admin session revoke", "revoke the session given by --session or $TALOS_ADMIN_SESSION (log out)", cmdAdminSessionRevoke},
		{"admin identities list", "list admin identities", cmdAdminIdentitiesList},
		{"admin identities get", "show an admin identity", cmdAdminIdentitiesGet},
		{"admin identities set-role", "add an admin identity or change its role", cmdAdminIdentitiesSetRole},
		{"admin identities remove", "remove an admin identity", cmdAdminIdentitiesRemove},
		{"admin principals list", "list registered agent principals", cmdAdminPrincipalsList},
		{"admin principals get", "show a principal", cmdAdminPrincipalsGet},
		{"admin principals add", "register an agent's did:key in a team", cmdAdminPrincipalsAdd},
		{"admin principals remove", "unregister a principal", cmdAdminPrincipalsRemove},
		{"admin roles list", "list RBAC roles", cmdAdminRolesList},
		{"admin roles get", "show an RBAC role", cmdAdminRolesGet},
		{"admin roles put", "create or replace an RBAC role", cmdAdminRolesPut},
		{"admin bindings list", "list RBAC bindings", cmdAdminBindingsList},
		{"admin bindings get", "show an RBAC binding", cmdAdminBindingsGet},
		{"admin bindings put", "bind a principal to a role in a scope", cmdAdminBindingsPut},
		{"admin capabilities list", "list issued capabilities (hashes and grants, never tokens)", cmdAdminCapabilitiesList},
		{"admin capabilities get", "show an issued capability", cmdAdminCapabilitiesGet},
		{"admin capabilities issue", "issue a capability token signed by the server", cmdAdminCapabilitiesIssue},
		{"admin capabilities revoke", "revoke a capability by hash or nonce", cmdAdminCapabilitiesRevoke},
		{"admin revocations list", "list revocations", cmdAdminRevocationsList},
		{"admin budgets list", "list budgets with their usage", cmdAdminBudgetsList},
		{"admin budgets get", "show a budget and its usage", cmdAdminBudgetsGet},
		{"admin budgets set", "set the budget of key:<did> or team:<id>", cmdAdminBudgetsSet},
		{"admin sessions", "list A2A sessions (same as admin a2a sessions)", cmdAdminSessions},
		{"admin a2a sessions", "list A2A sessions, or show one", cmdAdminA2ASessions},
		{"admin a2a groups", "list A2A groups, or show one", cmdAdminA2AGroups},
		{"admin config list", "list configuration documents", cmdAdminConfigList},
		{"admin config get", "show a configuration document (latest or --version N)", cmdAdminConfigGet},
		{"admin config versions", "list a configuration document's versions", cmdAdminConfigVersions},
		{"admin stats", "decision statistics over a time window", cmdAdminStats},
		{"admin watch", "print audit events live (Server-Sent Events), resuming after a dropped connection", cmdAdminWatch},
	}
}

// adminCmd is what every admin command has: its flags, its client and
// whether --json was asked for.
type adminCmd struct {
	e      *env
	fs     *flag.FlagSet
	a      adminFlags
	c      *adminClient
	asJSON bool
}

// adminSetup parses args for an admin command taking nargs positional
// arguments (names), after extra registered its flags, and builds the
// client.
func (e *env) adminSetup(name, syn string, args []string, names []string, extra func(fs *flag.FlagSet)) (*adminCmd, error) {
	ac := &adminCmd{e: e, fs: newFlags(name)}
	ac.a.register(ac.fs)
	if extra != nil {
		extra(ac.fs)
	}
	if err := e.parse(ac.fs, syn, args); err != nil {
		return nil, err
	}
	required := 0
	for _, n := range names {
		if !strings.HasSuffix(n, "?") {
			required++
		}
	}
	if n := ac.fs.NArg(); n < required || n > len(names) {
		printUsage(e.stderr, ac.fs, syn)
		if len(names) == 0 {
			return nil, usageError("%s takes no arguments", name)
		}
		return nil, usageError("%s takes %s", name, strings.Join(names, " "))
	}
	ac.asJSON = jsonOut(ac.fs)
	return ac, nil
}

// connect builds the authenticated client.
func (ac *adminCmd) connect(attestedOnly bool) error {
	c, err := ac.e.newAdminClient(ac.a, true, attestedOnly)
	if err != nil {
		return err
	}
	ac.c = c
	return nil
}

// fail prints a --json failure object and returns err.
func (ac *adminCmd) fail(err error) error {
	return ac.e.failJSON(ac.asJSON, err, nil)
}

// get reads one object at path and prints it.
func (ac *adminCmd) get(path string, query url.Values) error {
	if err := ac.connect(false); err != nil {
		return err
	}
	var raw json.RawMessage
	if err := ac.c.do(ac.e.ctx, http.MethodGet, path, query, nil, &raw); err != nil {
		return ac.fail(err)
	}
	return ac.e.printObject(ac.asJSON, raw)
}

// write sends method with body to path and prints the answer.
func (ac *adminCmd) write(method, path string, body any) error {
	if err := ac.connect(false); err != nil {
		return err
	}
	var raw json.RawMessage
	if err := ac.c.do(ac.e.ctx, method, path, nil, body, &raw); err != nil {
		return ac.fail(err)
	}
	return ac.e.printObject(ac.asJSON, raw)
}

// listCmd runs a list command: flags, filters (flag name → query
// parameter), pagination and a table of cols.
func (e *env) listCmd(name, path string, args []string, filters [][2]string, cols []string) error {
	syn := "talos " + name + " [--limit N] [--cursor C] [--all]"
	vals := make([]*string, len(filters))
	var l listFlags
	ac, err := e.adminSetup(name, syn+filterSyn(filters), args, nil, func(fs *flag.FlagSet) {
		l.register(fs)
		for i, f := range filters {
			vals[i] = fs.String(f[0], "", "only items whose "+f[1]+" is this")
		}
	})
	if err != nil {
		return err
	}
	if err := l.check(); err != nil {
		return err
	}
	q := url.Values{}
	for i, f := range filters {
		if *vals[i] != "" {
			q.Set(f[1], *vals[i])
		}
	}
	if err := ac.connect(false); err != nil {
		return err
	}
	p, err := ac.c.list(e.ctx, path, q, l)
	if err != nil {
		return ac.fail(err)
	}
	return e.printList(ac.asJSON, p, cols)
}

func filterSyn(filters [][2]string) string {
	var b strings.Builder
	for _, f := range filters {
		fmt.Fprintf(&b, " [--%s %s]", f[0], strings.ToUpper(strings.ReplaceAll(f[0], "-", "_")))
	}
	return b.String()
}

// printObject prints an answer object: as JSON, or one "key: value" line
// per member (nested values as compact JSON).
func (e *env) printObject(asJSON bool, raw json.RawMessage) error {
	if len(raw) == 0 {
		raw = json.RawMessage(`{"ok":true}`)
	}
	if asJSON {
		return e.printJSON(raw)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		fmt.Fprintln(e.stdout, string(raw))
		return nil
	}
	keys := make([]string, 0, len(m))
	width := 0
	for k := range m {
		keys = append(keys, k)
		width = max(width, len(k))
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(e.stdout, "%-*s  %s\n", width+1, k+":", cell(m[k]))
	}
	return nil
}

// printJSON prints raw indented.
func (e *env) printJSON(raw []byte) error {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return wrap(exitIO, "the server's answer is not JSON", err)
	}
	b.WriteByte('\n')
	_, err := e.stdout.Write(b.Bytes())
	return err
}

// printList prints a page: {"items":[…],"next_cursor":…} as JSON, or a
// table of cols (JSON member names, dotted for nested members) with a
// hint on stderr when more pages follow.
func (e *env) printList(asJSON bool, p listPage, cols []string) error {
	if p.Items == nil {
		p.Items = []json.RawMessage{}
	}
	if asJSON {
		b, err := json.Marshal(p)
		if err != nil {
			return wrap(exitIO, "cannot encode output", err)
		}
		return e.printJSON(b)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	head := make([]string, len(cols))
	for i, c := range cols {
		head[i] = strings.ToUpper(c[strings.LastIndexByte(c, '.')+1:])
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, it := range p.Items {
		row := make([]string, len(cols))
		for i, c := range cols {
			row[i] = cell(member(it, c))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if p.NextCursor != "" {
		fmt.Fprintf(e.stderr, "talos: more items: --cursor %s (or --all)\n", p.NextCursor)
	}
	return nil
}

// member returns the value at a dotted path of a JSON object, or nil.
func member(raw json.RawMessage, path string) json.RawMessage {
	for _, k := range strings.Split(path, ".") {
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &m) != nil {
			return nil
		}
		raw = m[k]
	}
	return raw
}

// cell renders a JSON value for a table or a "key: value" line: strings
// as they are (control characters quoted), grants as TOOL:ACTION,…,
// anything else as compact JSON.
func cell(raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return "-"
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s == "" {
			return "-"
		}
		return safeText(s)
	}
	var grants []capability.Grant
	if json.Unmarshal(raw, &grants) == nil && len(grants) > 0 && grants[0].Tool != "" {
		parts := make([]string, len(grants))
		for i, g := range grants {
			parts[i] = g.Tool + ":" + strings.Join(g.Actions, ",")
			if g.ReadOnly {
				parts[i] += "(ro)"
			}
		}
		return safeText(strings.Join(parts, " "))
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return "?"
	}
	return safeText(b.String())
}

// safeText quotes a string holding control characters, so server data
// cannot drive the terminal.
func safeText(s string) string {
	for _, r := range s {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return strconv.Quote(s)
		}
	}
	return s
}

// pathArg escapes a positional argument for one path segment.
func pathArg(s string) string { return url.PathEscape(s) }

// --- bootstrap, whoami, session, identities ---

const maxCredentialFile = 1 << 10

func cmdAdminBootstrap(e *env, args []string) error {
	const syn = "talos admin bootstrap (--credential-file FILE | $TALOS_BOOTSTRAP_CREDENTIAL) (--wallet FILE | --did DID) [--server URL]"
	var credFile, credFlag, did string
	ac, err := e.adminSetup("admin bootstrap", syn, args, nil, func(fs *flag.FlagSet) {
		fs.StringVar(&credFile, "credential-file", "", "read the talos_admin_ bootstrap (or recovery) credential from this file (first line); else $TALOS_BOOTSTRAP_CREDENTIAL")
		fs.StringVar(&credFlag, "credential", "", "the credential itself (insecure: visible in ps and shell history; warns)")
		fs.StringVar(&did, "did", "", "make this did:key the owner instead of the wallet's DID")
	})
	if err != nil {
		return err
	}
	cred, err := e.bootstrapCredential(credFile, credFlag)
	if err != nil {
		return err
	}
	switch {
	case did != "" && ac.a.wallet != "":
		return usageError("--did and --wallet exclude each other")
	case did != "":
		d, err := identity.ParseDID(did)
		if err != nil {
			return wrap(exitFailed, "bad --did", err)
		}
		did = d.String()
	default:
		wallet := ac.a.wallet
		if wallet == "" {
			wallet = e.getenv(adminWalletEnv)
		}
		if wallet == "" {
			return usageError("need --wallet FILE (or --did DID): the identity to make owner")
		}
		// Open it: an owner whose wallet does not open locks nobody in.
		w, err := e.loadWallet(wallet, ac.a.pass)
		if err != nil {
			return err
		}
		did = w.DID().String()
	}
	c, err := e.newAdminClient(ac.a, false, false)
	if err != nil {
		return err
	}
	req, err := c.request(e.ctx, http.MethodPost, "/v1/admin/bootstrap", nil, map[string]string{"did": did})
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+cred)
	var raw json.RawMessage
	if err := c.send(req, &raw); err != nil {
		return ac.fail(err)
	}
	if !ac.asJSON {
		fmt.Fprintf(e.stdout, "%s is an owner of %s\n", did, c.base)
		return nil
	}
	return e.printJSON(raw)
}

// bootstrapCredential reads the talos_admin_ credential: a file, the
// environment, or (warning) a flag.
func (e *env) bootstrapCredential(file, flagValue string) (string, error) {
	var cred string
	switch {
	case file != "" && flagValue != "":
		return "", usageError("--credential-file and --credential exclude each other")
	case file != "":
		b, err := e.readInput(file, maxCredentialFile)
		if err != nil {
			return "", err
		}
		line, _, _ := bytes.Cut(b, []byte("\n"))
		cred = strings.TrimSpace(string(line))
	case flagValue != "":
		fmt.Fprintln(e.stderr, "talos: warning: --credential puts the credential in the process list and shell history; use --credential-file or $TALOS_BOOTSTRAP_CREDENTIAL")
		cred = flagValue
	default:
		cred = strings.TrimSpace(e.getenv("TALOS_BOOTSTRAP_CREDENTIAL"))
	}
	if cred == "" {
		return "", usageError("need the bootstrap credential: --credential-file FILE or $TALOS_BOOTSTRAP_CREDENTIAL")
	}
	if !strings.HasPrefix(cred, recoveryPrefix) || len(cred) > 128 {
		return "", usageError("the credential must start with %s", recoveryPrefix)
	}
	return cred, nil
}

func cmdAdminWhoami(e *env, args []string) error {
	const syn = "talos admin whoami [--server URL] (--wallet FILE | --session TOKEN)"
	ac, err := e.adminSetup("admin whoami", syn, args, nil, nil)
	if err != nil {
		return err
	}
	if err := ac.connect(false); err != nil {
		return err
	}
	var who struct {
		DID         string             `json:"did"`
		Role        string             `json:"role"`
		AuthMode    string             `json:"auth_mode"`
		Permissions []capability.Grant `json:"permissions"`
		ExpiresAt   string             `json:"expires_at,omitempty"`
	}
	var raw json.RawMessage
	if err := ac.c.do(e.ctx, http.MethodGet, "/v1/admin/whoami", nil, nil, &raw); err != nil {
		return ac.fail(err)
	}
	if ac.asJSON {
		return e.printJSON(raw)
	}
	if err := json.Unmarshal(raw, &who); err != nil {
		return wrap(exitIO, "the server's answer is not the expected JSON", err)
	}
	fmt.Fprintf(e.stdout, "did:       %s\nrole:      %s\nauth mode: %s\n", safeText(who.DID), safeText(who.Role), safeText(who.AuthMode))
	if who.ExpiresAt != "" {
		fmt.Fprintf(e.stdout, "expires:   %s\n", safeText(who.ExpiresAt))
	}
	for _, p := range who.Permissions {
		fmt.Fprintf(e.stdout, "  %-24s %s\n", safeText(p.Tool), safeText(strings.Join(p.Actions, ",")))
	}
	return nil
}

func cmdAdminSession(e *env, args []string) error {
	const syn = "talos admin session --wallet FILE [--ttl 15m] [--role ROLE] [--server URL]"
	var ttl time.Duration
	var role string
	ac, err := e.adminSetup("admin session", syn, args, nil, func(fs *flag.FlagSet) {
		fs.DurationVar(&ttl, "ttl", 15*time.Minute, "the session's lifetime, 1m to 8h")
		fs.StringVar(&role, "role", "", "a role narrower than the admin's: operator, auditor or viewer")
	})
	if err != nil {
		return err
	}
	if ttl < time.Minute || ttl > 8*time.Hour || ttl%time.Second != 0 {
		return usageError("--ttl must be whole seconds from 1m to 8h")
	}
	if err := ac.connect(true); err != nil {
		return err
	}
	body := map[string]any{"ttl_seconds": int64(ttl / time.Second)}
	if role != "" {
		body["role"] = role
	}
	var resp struct {
		Token     string `json:"token"`
		ExpiresAt string `json:"expires_at"`
		DID       string `json:"did"`
		Role      string `json:"role"`
	}
	if err := ac.c.do(e.ctx, http.MethodPost, "/v1/admin/sessions", nil, body, &resp); err != nil {
		return ac.fail(err)
	}
	if !validSession(resp.Token) {
		return failf(exitIO, "the server's session token is malformed")
	}
	ui := ac.c.base + "/ui/#session=" + resp.Token
	return e.emit(ac.asJSON, map[string]any{"ok": true, "token": resp.Token, "expires_at": resp.ExpiresAt, "did": resp.DID, "role": resp.Role, "dashboard_url": ui}, func(o io.Writer) {
		fmt.Fprintln(o, resp.Token)
		fmt.Fprintf(e.stderr, "session for %s as %s until %s\ndashboard: %s\n", safeText(resp.DID), safeText(resp.Role), safeText(resp.ExpiresAt), ui)
	})
}

func cmdAdminSessionRevoke(e *env, args []string) error {
	ac, err := e.adminSetup("admin session revoke", "talos admin session revoke (--session TOKEN | $TALOS_ADMIN_SESSION)", args, nil, nil)
	if err != nil {
		return err
	}
	if ac.a.wallet != "" {
		return usageError("admin session revoke revokes a session: give --session or $%s, not --wallet", adminSessionEnv)
	}
	if ac.a.session == "" && ac.e.getenv(adminSessionEnv) == "" {
		return usageError("need the session to revoke: --session or $%s", adminSessionEnv)
	}
	return ac.write(http.MethodDelete, "/v1/admin/sessions/current", nil)
}

func cmdAdminIdentitiesList(e *env, args []string) error {
	return e.listCmd("admin identities list", "/v1/admin/identities", args, nil, []string{"did", "role", "created_at", "created_by"})
}

func cmdAdminIdentitiesGet(e *env, args []string) error {
	ac, err := e.adminSetup("admin identities get", "talos admin identities get DID", args, []string{"DID"}, nil)
	if err != nil {
		return err
	}
	return ac.get("/v1/admin/identities/"+pathArg(ac.fs.Arg(0)), nil)
}

func cmdAdminIdentitiesSetRole(e *env, args []string) error {
	ac, err := e.adminSetup("admin identities set-role", "talos admin identities set-role DID (owner|operator|auditor|viewer)", args, []string{"DID", "ROLE"}, nil)
	if err != nil {
		return err
	}
	return ac.write(http.MethodPut, "/v1/admin/identities/"+pathArg(ac.fs.Arg(0)), map[string]string{"role": ac.fs.Arg(1)})
}

func cmdAdminIdentitiesRemove(e *env, args []string) error {
	ac, err := e.adminSetup("admin identities remove", "talos admin identities remove DID", args, []string{"DID"}, nil)
	if err != nil {
		return err
	}
	return ac.write(http.MethodDelete, "/v1/admin/identities/"+pathArg(ac.fs.Arg(0)), nil)
}

// --- principals, roles, bindings ---

func cmdAdminPrincipalsList(e *env, args []string) error {
	return e.listCmd("admin principals list", "/v1/principals", args, [][2]string{{"team", "team"}}, []string{"principal_id", "team_id", "created_at"})
}

func cmdAdminPrincipalsGet(e *env, args []string) error {
	ac, err := e.adminSetup("admin principals get", "talos admin principals get DID", args, []string{"DID"}, nil)
	if err != nil {
		return err
	}
	return ac.get("/v1/principals/"+pathArg(ac.fs.Arg(0)), nil)
}

func cmdAdminPrincipalsAdd(e *env, args []string) error {
	var team string
	ac, err := e.adminSetup("admin principals add", "talos admin principals add --team TEAM DID", args, []string{"DID"}, func(fs *flag.FlagSet) {
		fs.StringVar(&team, "team", "", "the agent's team (required)")
	})
	if err != nil {
		return err
	}
	if team == "" {
		return usageError("--team is required")
	}
	if _, err := identity.ParseDID(ac.fs.Arg(0)); err != nil {
		return wrap(exitFailed, "bad DID", err)
	}
	return ac.write(http.MethodPut, "/v1/principals/"+pathArg(ac.fs.Arg(0)), map[string]string{"team_id": team})
}

func cmdAdminPrincipalsRemove(e *env, args []string) error {
	ac, err := e.adminSetup("admin principals remove", "talos admin principals remove DID", args, []string{"DID"}, nil)
	if err != nil {
		return err
	}
	return ac.write(http.MethodDelete, "/v1/principals/"+pathArg(ac.fs.Arg(0)), nil)
}

func cmdAdminRolesList(e *env, args []string) error {
	return e.listCmd("admin roles list", "/v1/rbac/roles", args, nil, []string{"id", "permissions"})
}

func cmdAdminRolesGet(e *env, args []string) error {
	ac, err := e.adminSetup("admin roles get", "talos admin roles get ID", args, []string{"ID"}, nil)
	if err != nil {
		return err
	}
	return ac.get("/v1/rbac/roles/"+pathArg(ac.fs.Arg(0)), nil)
}

func cmdAdminRolesPut(e *env, args []string) error {
	var perms stringList
	ac, err := e.adminSetup("admin roles put", "talos admin roles put --permission PERM… ID", args, []string{"ID"}, func(fs *flag.FlagSet) {
		fs.Var(&perms, "permission", "a permission, e.g. search:query or files:* (repeatable; at least one)")
	})
	if err != nil {
		return err
	}
	if len(perms) == 0 {
		return usageError("need at least one --permission")
	}
	return ac.write(http.MethodPut, "/v1/rbac/roles/"+pathArg(ac.fs.Arg(0)), map[string]any{"permissions": []string(perms)})
}

func cmdAdminBindingsList(e *env, args []string) error {
	return e.listCmd("admin bindings list", "/v1/rbac/bindings", args, [][2]string{{"principal", "principal_id"}, {"role", "role_id"}}, []string{"id", "principal_id", "role_id", "scope.scope_type", "scope.attributes"})
}

func cmdAdminBindingsGet(e *env, args []string) error {
	ac, err := e.adminSetup("admin bindings get", "talos admin bindings get ID", args, []string{"ID"}, nil)
	if err != nil {
		return err
	}
	return ac.get("/v1/rbac/bindings/"+pathArg(ac.fs.Arg(0)), nil)
}

func cmdAdminBindingsPut(e *env, args []string) error {
	var principal, role, scopeType string
	var attrs stringList
	ac, err := e.adminSetup("admin bindings put", "talos admin bindings put --principal DID --role ROLE [--scope-type TYPE] [--scope-attr K=V…] ID", args, []string{"ID"}, func(fs *flag.FlagSet) {
		fs.StringVar(&principal, "principal", "", "the principal's DID (required)")
		fs.StringVar(&role, "role", "", "the RBAC role id (required)")
		fs.StringVar(&scopeType, "scope-type", "global", "the scope type (global matches every scope)")
		fs.Var(&attrs, "scope-attr", "a scope attribute KEY=VALUE (repeatable)")
	})
	if err != nil {
		return err
	}
	if principal == "" || role == "" {
		return usageError("--principal and --role are required")
	}
	scope := capability.Scope{Type: scopeType, Attributes: map[string]string{}}
	for _, kv := range attrs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return usageError("bad --scope-attr %q: want KEY=VALUE", kv)
		}
		scope.Attributes[k] = v
	}
	return ac.write(http.MethodPut, "/v1/rbac/bindings/"+pathArg(ac.fs.Arg(0)), map[string]any{"principal_id": principal, "role_id": role, "scope": scope})
}

// --- capabilities, revocations, budgets ---

func cmdAdminCapabilitiesList(e *env, args []string) error {
	return e.listCmd("admin capabilities list", "/v1/capabilities", args, [][2]string{{"subject", "subject"}, {"revoked", "revoked"}},
		[]string{"capability_hash", "subject", "grants", "expires_at", "revoked"})
}

func cmdAdminCapabilitiesGet(e *env, args []string) error {
	ac, err := e.adminSetup("admin capabilities get", "talos admin capabilities get HASH", args, []string{"HASH"}, nil)
	if err != nil {
		return err
	}
	return ac.get("/v1/capabilities/"+pathArg(ac.fs.Arg(0)), nil)
}

func cmdAdminCapabilitiesIssue(e *env, args []string) error {
	const syn = "talos admin capabilities issue --subject DID --grant TOOL:ACTIONS… [--expires 1h] [--audience DID] [--read-only] [--out FILE]"
	var subject, audience, out string
	var expires time.Duration
	var readOnly bool
	var g grantFlags
	ac, err := e.adminSetup("admin capabilities issue", syn, args, nil, func(fs *flag.FlagSet) {
		fs.StringVar(&subject, "subject", "", "the agent's did:key (required)")
		fs.DurationVar(&expires, "expires", time.Hour, "lifetime, whole seconds up to 720h")
		fs.StringVar(&audience, "audience", "", "the audience DID (default: the server)")
		fs.BoolVar(&readOnly, "read-only", false, "limit every grant to read actions")
		fs.StringVar(&out, "out", "", "write the token to this file (0600) instead of stdout")
		g.register(fs)
	})
	if err != nil {
		return err
	}
	if subject == "" {
		return usageError("--subject is required")
	}
	if _, err := identity.ParseDID(subject); err != nil {
		return wrap(exitFailed, "bad --subject", err)
	}
	if expires < time.Second || expires > 720*time.Hour || expires%time.Second != 0 {
		return usageError("--expires must be whole seconds from 1s to 720h")
	}
	grants, err := g.grants()
	if err != nil {
		return err
	}
	body := map[string]any{"subject": subject, "grants": grants, "expires_in_seconds": int64(expires / time.Second)}
	if audience != "" {
		body["audience"] = audience
	}
	if readOnly {
		body["read_only"] = true
	}
	if err := ac.connect(false); err != nil {
		return err
	}
	var resp struct {
		Token          string `json:"token"`
		CapabilityHash string `json:"capability_hash"`
		Exp            int64  `json:"exp"`
	}
	if err := ac.c.do(e.ctx, http.MethodPost, "/v1/capabilities", nil, body, &resp); err != nil {
		return ac.fail(err)
	}
	if out != "" {
		if err := writeFileAtomic(out, []byte(resp.Token+"\n"), 0o600); err != nil {
			return wrap(exitIO, "cannot write the token", err)
		}
	}
	res := map[string]any{"ok": true, "capability_hash": resp.CapabilityHash, "exp": resp.Exp}
	if out == "" {
		res["token"] = resp.Token
	} else {
		res["file"] = out
	}
	return e.emit(ac.asJSON, res, func(o io.Writer) {
		if out == "" {
			fmt.Fprintln(o, resp.Token)
		}
		fmt.Fprintf(e.stderr, "capability_hash: %s\nexpires:         %s\n", safeText(resp.CapabilityHash), time.Unix(resp.Exp, 0).UTC().Format(time.RFC3339))
	})
}

func cmdAdminCapabilitiesRevoke(e *env, args []string) error {
	const syn = "talos admin capabilities revoke [--until WHEN] (HASH | --nonce NONCE)"
	var nonce, until string
	ac, err := e.adminSetup("admin capabilities revoke", syn, args, []string{"HASH?"}, func(fs *flag.FlagSet) {
		fs.StringVar(&nonce, "nonce", "", "revoke by the token's nonce instead of its capability hash")
		fs.StringVar(&until, "until", "", "the revocation may be forgotten after this time (RFC 3339 or a duration; after the token expires)")
	})
	if err != nil {
		return err
	}
	body := map[string]any{}
	switch {
	case nonce != "" && ac.fs.NArg() == 0:
		body["nonce"] = nonce
	case nonce == "" && ac.fs.NArg() == 1:
		body["capability_hash"] = ac.fs.Arg(0)
	default:
		return usageError("give exactly one of HASH or --nonce")
	}
	if until != "" {
		t, err := parseWhen(until, time.Now())
		if err != nil {
			return err
		}
		body["until"] = t.Unix()
	}
	return ac.write(http.MethodPost, "/v1/capabilities/revocations", body)
}

func cmdAdminRevocationsList(e *env, args []string) error {
	return e.listCmd("admin revocations list", "/v1/capabilities/revocations", args, nil, []string{"capability_hash", "nonce", "revoked_at", "revoked_by"})
}

func cmdAdminBudgetsList(e *env, args []string) error {
	return e.listCmd("admin budgets list", "/v1/budgets", args, nil, []string{"scope", "limit_usd", "mode", "period", "used_usd", "reserved_usd", "remaining_usd"})
}

func cmdAdminBudgetsGet(e *env, args []string) error {
	ac, err := e.adminSetup("admin budgets get", "talos admin budgets get SCOPE (key:<did> or team:<id>)", args, []string{"SCOPE"}, nil)
	if err != nil {
		return err
	}
	return ac.get("/v1/budgets/"+pathArg(ac.fs.Arg(0)), nil)
}

func cmdAdminBudgetsSet(e *env, args []string) error {
	var limit, mode, period string
	ac, err := e.adminSetup("admin budgets set", "talos admin budgets set --limit-usd N.NN [--mode hard|warn|off] [--period daily|monthly|lifetime|rolling:DUR] SCOPE", args, []string{"SCOPE"}, func(fs *flag.FlagSet) {
		fs.StringVar(&limit, "limit-usd", "", "the limit in US dollars, e.g. 5.00 (required)")
		fs.StringVar(&mode, "mode", "hard", "hard (deny over the limit), warn or off")
		fs.StringVar(&period, "period", "monthly", "daily, monthly, lifetime or rolling:<duration>")
	})
	if err != nil {
		return err
	}
	if limit == "" {
		return usageError("--limit-usd is required")
	}
	return ac.write(http.MethodPut, "/v1/budgets/"+pathArg(ac.fs.Arg(0)), map[string]string{"limit_usd": limit, "mode": mode, "period": period})
}

// --- A2A, config, stats ---

func cmdAdminSessions(e *env, args []string) error {
	return e.a2aCmd("admin sessions", "/v1/admin/a2a/sessions", args, []string{"id", "participants", "state", "frame_count", "event_count", "updated_at", "chain_verified"})
}

func cmdAdminA2ASessions(e *env, args []string) error {
	return e.a2aCmd("admin a2a sessions", "/v1/admin/a2a/sessions", args, []string{"id", "participants", "state", "frame_count", "event_count", "updated_at", "chain_verified"})
}

func cmdAdminA2AGroups(e *env, args []string) error {
	return e.a2aCmd("admin a2a groups", "/v1/admin/a2a/groups", args, []string{"id", "owner_id", "member_count", "state", "event_count", "updated_at", "chain_verified"})
}

// a2aCmd lists A2A sessions or groups, or shows one given its id.
func (e *env) a2aCmd(name, path string, args []string, cols []string) error {
	syn := "talos " + name + " [--limit N] [--cursor C] [--all] [ID]"
	var l listFlags
	fs := newFlags(name)
	var a adminFlags
	a.register(fs)
	l.register(fs)
	if err := e.parse(fs, syn, args); err != nil {
		return err
	}
	id, err := oneArg(fs)
	if err != nil {
		return err
	}
	if err := l.check(); err != nil {
		return err
	}
	ac := &adminCmd{e: e, fs: fs, a: a, asJSON: jsonOut(fs)}
	if id != "" {
		return ac.get(path+"/"+pathArg(id), nil)
	}
	if err := ac.connect(false); err != nil {
		return err
	}
	p, err := ac.c.list(e.ctx, path, nil, l)
	if err != nil {
		return ac.fail(err)
	}
	return e.printList(ac.asJSON, p, cols)
}

func cmdAdminConfigList(e *env, args []string) error {
	return e.listCmd("admin config list", "/v1/config", args, [][2]string{{"kind", "kind"}}, []string{"kind", "name", "latest_version", "digest", "updated_at"})
}

func cmdAdminConfigGet(e *env, args []string) error {
	var version int64
	ac, err := e.adminSetup("admin config get", "talos admin config get [--version N] KIND NAME", args, []string{"KIND", "NAME"}, func(fs *flag.FlagSet) {
		fs.Int64Var(&version, "version", 0, "this version instead of the latest")
	})
	if err != nil {
		return err
	}
	path := "/v1/config/" + pathArg(ac.fs.Arg(0)) + "/" + pathArg(ac.fs.Arg(1))
	if version < 0 {
		return usageError("--version must be positive")
	}
	if version > 0 {
		path += "/versions/" + strconv.FormatInt(version, 10)
	}
	return ac.get(path, nil)
}

func cmdAdminConfigVersions(e *env, args []string) error {
	var limit int
	var all bool
	ac, err := e.adminSetup("admin config versions", "talos admin config versions [--limit N] [--all] KIND NAME", args, []string{"KIND", "NAME"}, func(fs *flag.FlagSet) {
		fs.IntVar(&limit, "limit", 0, "page size, 1 to 1000 (the server's default is 100)")
		fs.BoolVar(&all, "all", false, "follow next_after to the last page")
	})
	if err != nil {
		return err
	}
	if limit < 0 || limit > 1000 {
		return usageError("--limit must be 1 to 1000")
	}
	if err := ac.connect(false); err != nil {
		return err
	}
	path := "/v1/config/" + pathArg(ac.fs.Arg(0)) + "/" + pathArg(ac.fs.Arg(1)) + "/versions"
	var versions []json.RawMessage
	var after int64
	for pages := 0; ; pages++ {
		q := url.Values{}
		if limit > 0 {
			q.Set("limit", strconv.Itoa(limit))
		}
		if after > 0 {
			q.Set("after", strconv.FormatInt(after, 10))
		}
		var resp struct {
			Versions  []json.RawMessage `json:"versions"`
			NextAfter int64             `json:"next_after"`
		}
		if err := ac.c.do(e.ctx, http.MethodGet, path, q, nil, &resp); err != nil {
			return ac.fail(err)
		}
		versions = append(versions, resp.Versions...)
		if !all || resp.NextAfter == 0 || pages == maxListPages {
			break
		}
		if resp.NextAfter <= after {
			return failf(exitIO, "the server repeated next_after %d", after)
		}
		after = resp.NextAfter
	}
	return e.printList(ac.asJSON, listPage{Items: versions}, []string{"version", "digest", "created_at"})
}

func cmdAdminStats(e *env, args []string) error {
	var window time.Duration
	ac, err := e.adminSetup("admin stats", "talos admin stats [--window 15m]", args, nil, func(fs *flag.FlagSet) {
		fs.DurationVar(&window, "window", 15*time.Minute, "the time window, 1m to 24h")
	})
	if err != nil {
		return err
	}
	if window < time.Minute || window > 24*time.Hour {
		return usageError("--window must be 1m to 24h")
	}
	if err := ac.connect(false); err != nil {
		return err
	}
	var raw json.RawMessage
	if err := ac.c.do(e.ctx, http.MethodGet, "/v1/admin/stats", url.Values{"window": {shortDuration(window)}}, nil, &raw); err != nil {
		return ac.fail(err)
	}
	if ac.asJSON {
		return e.printJSON(raw)
	}
	return printStats(e.stdout, raw)
}

// shortDuration formats d as the contract's examples do: 15m, 1h, 90s.
func shortDuration(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	}
	return strconv.FormatInt(int64(d/time.Second), 10) + "s"
}

// printStats renders GET /v1/admin/stats for a person.
func printStats(w io.Writer, raw json.RawMessage) error {
	var s struct {
		WindowSeconds int64  `json:"window_seconds"`
		From          string `json:"from"`
		To            string `json:"to"`
		Scope         string `json:"scope"`
		Decisions     struct {
			Total     int64            `json:"total"`
			ByOutcome map[string]int64 `json:"by_outcome"`
			BySurface map[string]int64 `json:"by_surface"`
			ByReason  map[string]int64 `json:"by_reason"`
		} `json:"decisions"`
		Latency          map[string]float64 `json:"latency_ms"`
		AuthorizeLatency map[string]float64 `json:"authorize_latency_ms"`
		RateLimitDenials int64              `json:"rate_limit_denials"`
		BudgetDenials    int64              `json:"budget_denials"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return wrap(exitIO, "the server's answer is not the expected JSON", err)
	}
	fmt.Fprintf(w, "window:     %s to %s (%ds, %s)\n", safeText(s.From), safeText(s.To), s.WindowSeconds, safeText(s.Scope))
	fmt.Fprintf(w, "decisions:  %d\n", s.Decisions.Total)
	for _, sec := range []struct {
		name string
		m    map[string]int64
	}{{"outcome", s.Decisions.ByOutcome}, {"surface", s.Decisions.BySurface}, {"reason", s.Decisions.ByReason}} {
		keys := make([]string, 0, len(sec.m))
		for k := range sec.m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(w, "  %-8s %-28s %d\n", sec.name, safeText(k), sec.m[k])
		}
	}
	fmt.Fprintf(w, "latency:    p50 %.1f ms, p95 %.1f ms, p99 %.1f ms\n", s.Latency["p50"], s.Latency["p95"], s.Latency["p99"])
	if s.AuthorizeLatency != nil {
		fmt.Fprintf(w, "authorize:  p50 %.1f ms, p95 %.1f ms, p99 %.1f ms\n", s.AuthorizeLatency["p50"], s.AuthorizeLatency["p95"], s.AuthorizeLatency["p99"])
	}
	fmt.Fprintf(w, "denials:    rate limit %d, budget %d\n", s.RateLimitDenials, s.BudgetDenials)
	return nil
}
