package capability

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v5"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
	"github.com/talosgo/talos/internal/testenv"
)

func testRegistry(t *testing.T) *ToolRegistry {
	t.Helper()
	reg, err := NewToolRegistry([]ToolEntry{
		{Tool: "fs", Action: "read", Class: ClassRead},
		{Tool: "fs", Action: "write", Class: ClassWrite, RequiresIdempotencyKey: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// TestGrantReadOnlyWire pins the wire form of a read-only grant: the scope
// item member "read_only": true in RFC 8785 order, inside the signed
// bytes, and verifiable by an implementation that knows nothing of it (a
// generic canonicalize-and-verify over the token minus its signature).
func TestGrantReadOnlyWire(t *testing.T) {
	ws := wallets(t, 2)
	tok := mustIssue(t, ws[0], ws[1].DID().String(), []Grant{
		{Tool: "fs", Actions: []string{"read", "write"}, ReadOnly: true},
		{Tool: "net", Actions: []string{"get"}},
	}, testExp, IssueOptions{Nonce: "nonce-0123456789abcdef"})
	canon := string(tok.AppendCanonical(nil))
	if !strings.Contains(canon, `{"actions":["read","write"],"read_only":true,"tool":"fs"},{"actions":["get"],"tool":"net"}`) {
		t.Fatalf("canonical form %s", canon)
	}
	if c, err := contracts.Canonicalize([]byte(canon)); err != nil || string(c) != canon {
		t.Fatalf("not RFC 8785: %v", err)
	}
	if err := contracts.Validate("capability_token", []byte(canon)); err != nil {
		t.Fatalf("schema: %v", err)
	}
	// A generic verifier: drop signature, canonicalize, Ed25519.
	var m map[string]any
	if err := json.Unmarshal([]byte(canon), &m); err != nil {
		t.Fatal(err)
	}
	sig, err := contracts.DecodeBase64URL(m["signature"].(string))
	if err != nil {
		t.Fatal(err)
	}
	delete(m, "signature")
	payload, err := contracts.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if !ed25519.Verify(ws[0].PublicKey(), payload, sig) {
		t.Fatal("a generic verifier rejects the signature over a read-only grant")
	}
	p, err := Parse(tok.Encode())
	if err != nil {
		t.Fatal(err)
	}
	if p.Hash() != tok.Hash() || !p.Grants()[0].ReadOnly || p.Grants()[1].ReadOnly {
		t.Fatalf("round trip lost the limit: %+v", p.Grants())
	}
	if err := Verify(p, ws[0].PublicKey(), testNow); err != nil {
		t.Fatal(err)
	}
	// Dropping the member changes the signed bytes.
	stripped := strings.Replace(canon, `,"read_only":true`, "", 1)
	q, err := Parse(stripped)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(q, ws[0].PublicKey(), testNow); !errors.Is(err, ErrSignature) {
		t.Fatalf("stripped read_only: %v", err)
	}
}

// TestGrantReadOnlyReferenceSchema: a token with a read-only grant is
// valid under the contract's own schemas/capability_token.json, so other
// implementations that validate against it accept it; a member the
// contract forbids at the top level is still refused there (the check is
// not vacuous).
func TestGrantReadOnlyReferenceSchema(t *testing.T) {
	path := filepath.Join(testenv.ContractsDir(t), "schemas", "capability_token.json")
	sch, err := jsonschema.NewCompiler().Compile(path)
	if err != nil {
		t.Fatal(err)
	}
	ws := wallets(t, 2)
	tok := mustIssue(t, ws[0], ws[1].DID().String(), []Grant{{Tool: "fs", Actions: []string{"read"}, ReadOnly: true}}, testExp, IssueOptions{})
	validate := func(b []byte) error {
		var v any
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		return sch.Validate(v)
	}
	canon := tok.AppendCanonical(nil)
	if err := validate(canon); err != nil {
		t.Fatalf("contract schema rejects a read-only grant: %v", err)
	}
	if err := validate(bytes.Replace(canon, []byte(`{"exp"`), []byte(`{"read_only":true,"exp"`), 1)); err == nil {
		t.Fatal("contract schema accepted an unknown top-level member")
	}
}

// TestGrantReadOnlyStrict checks that read_only is the one extra member a
// scope item may carry, and only as true.
func TestGrantReadOnlyStrict(t *testing.T) {
	ws := wallets(t, 2)
	tok := mustIssue(t, ws[0], ws[1].DID().String(), []Grant{{Tool: "fs", Actions: []string{"read"}, ReadOnly: true}}, testExp, IssueOptions{})
	canon := string(tok.AppendCanonical(nil))
	for name, repl := range map[string]string{
		"false":     `,"read_only":false`,
		"string":    `,"read_only":"true"`,
		"number":    `,"read_only":1`,
		"null":      `,"read_only":null`,
		"duplicate": `,"read_only":true,"read_only":true`,
		"other":     `,"read_only":true,"write_only":true`,
		"mis-cased": `,"Read_Only":true`,
	} {
		bad := strings.Replace(canon, `,"read_only":true`, repl, 1)
		_, err := Parse(bad)
		if contracts.CodeOf(err) != contracts.CodeInvalidCapability || !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Parse = %v", name, err)
		}
	}
	// Non-canonical member order is fine and re-encodes canonically.
	reordered := strings.Replace(canon, `{"actions":["read"],"read_only":true,"tool":"fs"}`, `{"read_only":true,"tool":"fs","actions":["read"]}`, 1)
	p, err := Parse(reordered)
	if err != nil || p.Hash() != tok.Hash() {
		t.Fatalf("reordered scope item: %v", err)
	}
}

func TestDelegateKeepsGrantReadOnly(t *testing.T) {
	ws := wallets(t, 3)
	root := mustIssue(t, ws[0], ws[1].DID().String(), []Grant{
		{Tool: "fs", Actions: []string{"read", "write"}, ReadOnly: true},
		{Tool: "db", Actions: []string{"query"}},
	}, testExp, IssueOptions{})
	sub := ws[2].DID().String()
	trusted := []identity.DID{ws[0].DID()}
	// Keeping or adding the limit narrows.
	for _, g := range [][]Grant{
		{{Tool: "fs", Actions: []string{"read"}, ReadOnly: true}},
		{{Tool: "db", Actions: []string{"query"}, ReadOnly: true}},
	} {
		child, err := Delegate(root, ws[1].Signer(), identity.MustParseDID(sub), g, testExp)
		if err != nil {
			t.Fatalf("%+v: %v", g, err)
		}
		if err := VerifyChain(Chain{root, child}, trusted, testNow); err != nil {
			t.Fatalf("%+v: %v", g, err)
		}
	}
	// Dropping it widens.
	drop := []Grant{{Tool: "fs", Actions: []string{"read"}}}
	if _, err := Delegate(root, ws[1].Signer(), identity.MustParseDID(sub), drop, testExp); !errors.Is(err, ErrDelegation) || contracts.CodeOf(err) != contracts.CodeInvalidCapability {
		t.Fatalf("Delegate dropping read_only: %v", err)
	}
	// Signed directly, bypassing Delegate: VerifyChain refuses the link.
	forged, err := issue(ws[1].Signer(), identity.MustParseDID(sub), drop, testExp, IssueOptions{}, root.Hash())
	if err != nil {
		t.Fatal(err)
	}
	var ce *ChainError
	if err := VerifyChain(Chain{root, forged}, trusted, testNow); !errors.As(err, &ce) || ce.Link != 1 || ce.Reason != ReasonDelegationInvalid {
		t.Fatalf("VerifyChain dropping read_only: %v", err)
	}
	// A parent granting the pair both ways lets the child take it writable.
	both := mustIssue(t, ws[0], ws[1].DID().String(), []Grant{
		{Tool: "fs", Actions: []string{"read", "write"}, ReadOnly: true},
		{Tool: "fs", Actions: []string{"write"}},
	}, testExp, IssueOptions{})
	if _, err := Delegate(both, ws[1].Signer(), identity.MustParseDID(sub), []Grant{{Tool: "fs", Actions: []string{"write"}}}, testExp); err != nil {
		t.Fatal(err)
	}
	if _, err := Delegate(both, ws[1].Signer(), identity.MustParseDID(sub), []Grant{{Tool: "fs", Actions: []string{"read"}}}, testExp); !errors.Is(err, ErrDelegation) {
		t.Fatalf("read was only granted read-only: %v", err)
	}
	// Under a read-only token, the child token inherits metadata.read_only,
	// so its grants need not repeat the limit.
	roTok := mustIssue(t, ws[0], ws[1].DID().String(), []Grant{{Tool: "fs", Actions: []string{"read"}, ReadOnly: true}}, testExp, IssueOptions{ReadOnly: true})
	child, err := Delegate(roTok, ws[1].Signer(), identity.MustParseDID(sub), drop, testExp)
	if err != nil || !child.ReadOnly() {
		t.Fatalf("delegation under a read-only token: %v", err)
	}
	if err := VerifyChain(Chain{roTok, child}, trusted, testNow); err != nil {
		t.Fatal(err)
	}
}

func TestVerifierGrantReadOnly(t *testing.T) {
	reg := testRegistry(t)
	f := newFixture(t, func(c *Config) { c.Registry = reg })
	sub := f.ws[1].DID().String()
	ro := mustIssue(t, f.ws[0], sub, []Grant{{Tool: "fs", Actions: []string{"read", "write"}, ReadOnly: true}}, testExp, IssueOptions{})
	wantReason(t, f.authorize(t, Request{Capability: ro.Encode(), Tool: "fs", Action: "read"}), ReasonAllowed)
	wantReason(t, f.authorize(t, Request{Capability: ro.Encode(), Tool: "fs", Action: "write"}), ReasonScopeMismatch)
	wantReason(t, f.authorize(t, Request{Capability: ro.Encode(), Tool: "fs", Action: "exec"}), ReasonUnknownTool)
	// A writable grant next to the read-only one is the one that matches.
	mixed := mustIssue(t, f.ws[0], sub, []Grant{
		{Tool: "fs", Actions: []string{"read", "write"}, ReadOnly: true},
		{Tool: "fs", Actions: []string{"write"}},
	}, testExp, IssueOptions{})
	d := f.authorize(t, Request{Capability: mixed.Encode(), Tool: "fs", Action: "write"})
	wantReason(t, d, ReasonAllowed)
	if d.Grant.ReadOnly || len(d.Grant.Actions) != 1 {
		t.Fatalf("matched grant %+v", d.Grant)
	}
	// Without a registry a read-only grant allows nothing.
	g := newFixture(t, nil)
	wantReason(t, g.authorize(t, Request{Capability: ro.Encode(), Tool: "fs", Action: "read"}), ReasonScopeMismatch)
	wantReason(t, g.authorize(t, Request{Capability: mixed.Encode(), Tool: "fs", Action: "write"}), ReasonAllowed)
}

func TestRoleReadOnly(t *testing.T) {
	reg := testRegistry(t)
	scope := Scope{Type: ScopeGlobal}
	cfg := RBACConfig{
		Roles: []Role{
			{ID: "viewer", Permissions: []string{"fs.*"}, ReadOnly: true},
			{ID: "dbadmin", Permissions: []string{"db.*"}},
		},
		Bindings: []Binding{
			{Principal: "p", Role: "viewer", Scope: scope},
			{Principal: "p", Role: "dbadmin", Scope: scope},
		},
		Registry: reg,
	}
	e, err := NewRBAC(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		tool, action string
		want         bool
	}{
		{"fs", "read", true},
		{"fs", "write", false}, // classified write
		{"fs", "exec", false},  // not in the registry
		{"db", "drop", true},   // from the role without the limit
	} {
		if ok, _ := e.CheckTool("p", c.tool, c.action, scope); ok != c.want {
			t.Errorf("CheckTool(%s, %s) = %v", c.tool, c.action, ok)
		}
	}
	if ok, _ := e.Check("p", "fs.read", scope); ok {
		t.Error("Check: a read-only role allowed a bare permission")
	}
	if ok, _ := e.Check("p", "db.drop", scope); !ok {
		t.Error("Check: a plain role denied")
	}
	cfg.Registry = nil
	noReg, err := NewRBAC(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := noReg.CheckTool("p", "fs", "read", scope); ok {
		t.Error("a read-only role allowed without a registry")
	}
	cfg.Registry = reg
	f := newFixture(t, func(c *Config) {
		c.Registry = reg
		w := seedWallet(t, 11) // the fixture's subject (wallets start at seed 10)
		cfg.Bindings = []Binding{{Principal: w.DID().String(), Role: "viewer", Scope: scope}}
		r, err := NewRBAC(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c.RBAC = r
	})
	wantReason(t, f.authorize(t, Request{Tool: "fs", Action: "read", Scope: scope}), ReasonAllowed)
	wantReason(t, f.authorize(t, Request{Tool: "fs", Action: "write", Scope: scope}), ReasonRBACDenied)
}
