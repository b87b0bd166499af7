package capability

import (
	"encoding/json"
	"testing"

	"github.com/talosgo/talos/internal/testenv"
)

func TestScopeMatchVectors(t *testing.T) {
	var file struct {
		Vectors []struct {
			ID          string `json:"id"`
			Required    Scope  `json:"required_scope"`
			Binding     Scope  `json:"binding_scope"`
			ShouldMatch bool   `json:"should_match"`
			Specificity int    `json:"specificity"`
		} `json:"vectors"`
	}
	if err := json.Unmarshal(testenv.ReadContract(t, "test_vectors/rbac/scope_match_vectors.json"), &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Vectors) == 0 {
		t.Fatal("no vectors")
	}
	for _, v := range file.Vectors {
		t.Run(v.ID, func(t *testing.T) {
			ok, spec := ScopeMatch(v.Required, v.Binding)
			if ok != v.ShouldMatch || spec != v.Specificity {
				t.Fatalf("match %v spec %d, want %v %d", ok, spec, v.ShouldMatch, v.Specificity)
			}
		})
	}
	// Tie-break: exact beats wildcard beats global.
	req := Scope{Type: "repo", Attributes: map[string]string{"repo": "a/b"}}
	e, err := NewRBAC(RBACConfig{
		Roles: []Role{{ID: "r", Permissions: []string{"x.y"}}},
		Bindings: []Binding{
			{Principal: "p", Role: "r", Scope: Scope{Type: "global"}},
			{Principal: "p", Role: "r", Scope: Scope{Type: "repo", Attributes: map[string]string{"repo": "*"}}},
			{Principal: "p", Role: "r", Scope: Scope{Type: "repo", Attributes: map[string]string{"repo": "a/b"}}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if ok, m := e.Check("p", "x.y", req); !ok || m.Specificity != 2 || m.Binding.Scope.Attributes["repo"] != "a/b" {
		t.Fatalf("tie-break: %v %+v", ok, m)
	}
}

func TestDenyByDefaultVectors(t *testing.T) {
	var file struct {
		Tests []struct {
			Name     string `json:"name"`
			Identity *struct {
				PrincipalID string   `json:"principal_id"`
				Scopes      []string `json:"scopes"`
				Status      string   `json:"status"`
			} `json:"identity"`
			Action   string `json:"action"`
			Expected string `json:"expected"`
		} `json:"tests"`
	}
	if err := json.Unmarshal(testenv.ReadContract(t, "test_vectors/rbac/deny_by_default.json"), &file); err != nil {
		t.Fatal(err)
	}
	for _, v := range file.Tests {
		t.Run(v.Name, func(t *testing.T) {
			cfg := RBACConfig{}
			principal := ""
			if v.Identity != nil {
				principal = v.Identity.PrincipalID
				// The identity's scopes become a role bound globally, so the
				// only thing that can deny is the rule under test.
				cfg.Roles = []Role{{ID: "own", Permissions: v.Identity.Scopes}}
				if v.Identity.Status == "revoked" {
					cfg.Roles[0].Permissions = []string{"*.*"}
					cfg.Revoked = []string{principal}
				}
				cfg.Bindings = []Binding{{Principal: principal, Role: "own", Scope: Scope{Type: ScopeGlobal}}}
			}
			e, err := NewRBAC(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ok, _ := e.Check(principal, v.Action, Scope{Type: ScopeGlobal})
			if got := map[bool]string{true: "allow", false: "deny"}[ok]; got != v.Expected {
				t.Fatalf("%s, want %s", got, v.Expected)
			}
		})
	}
}

// TestEnforcementVectors runs rbac/enforcement.json with a role table of
// our own: the contracts name the roles but do not define their
// permissions, so the table below is the test's assumption.
func TestEnforcementVectors(t *testing.T) {
	type vscope struct {
		Type   string `json:"type"`
		TeamID string `json:"team_id"`
		OrgID  string `json:"org_id"`
	}
	var cases []struct {
		Description string `json:"description"`
		Input       struct {
			PrincipalID string `json:"principal_id"`
			Bindings    []struct {
				RoleID string `json:"role_id"`
				Scope  vscope `json:"scope"`
			} `json:"bindings"`
			RequiredPermission string `json:"required_permission"`
			RequiredScope      vscope `json:"required_scope"`
		} `json:"input"`
		Expected struct {
			Allowed bool   `json:"allowed"`
			Reason  string `json:"reason"`
		} `json:"expected"`
	}
	if err := json.Unmarshal(testenv.ReadContract(t, "test_vectors/rbac/enforcement.json"), &cases); err != nil {
		t.Fatal(err)
	}
	roles := []Role{
		{ID: "TeamViewer", Permissions: []string{"keys.read", "team.read"}},
		{ID: "TeamAdmin", Permissions: []string{"keys.*", "team.*"}},
		{ID: "OrgAdmin", Permissions: []string{"*.*"}},
		{ID: "PlatformAdmin", Permissions: []string{"*.*"}},
	}
	conv := func(s vscope) Scope {
		if s.Type == "platform" {
			return Scope{Type: ScopeGlobal}
		}
		a := map[string]string{}
		if s.TeamID != "" {
			a["team_id"] = s.TeamID
		}
		if s.OrgID != "" {
			a["org_id"] = s.OrgID
		}
		return Scope{Type: s.Type, Attributes: a}
	}
	for _, c := range cases {
		t.Run(c.Description, func(t *testing.T) {
			cfg := RBACConfig{Roles: roles, Parents: map[string]string{"team": "org"}}
			for _, b := range c.Input.Bindings {
				cfg.Bindings = append(cfg.Bindings, Binding{Principal: c.Input.PrincipalID, Role: b.RoleID, Scope: conv(b.Scope)})
			}
			e, err := NewRBAC(cfg)
			if err != nil {
				t.Fatal(err)
			}
			ok, _ := e.Check(c.Input.PrincipalID, c.Input.RequiredPermission, conv(c.Input.RequiredScope))
			if ok != c.Expected.Allowed {
				t.Fatalf("allowed %v, want %v", ok, c.Expected.Allowed)
			}
			if !ok && c.Expected.Reason != string(ReasonRBACDenied) {
				t.Fatalf("reason %s", c.Expected.Reason)
			}
		})
	}
}

func TestPermissionPatterns(t *testing.T) {
	for _, c := range []struct {
		pattern, perm string
		want          bool
	}{
		{"keys.write", "keys.write", true},
		{"keys:write", "keys.write", true},
		{"keys.*", "keys.write", true},
		{"keys.*", "keys.write.all", true},
		{"*.*", "mcp.admin", true},
		{"keys.write", "keys.writer", false},
		{"keys", "keys.write", false},
		{"keys.write", "keys", false},
		{"keys.*", "keys", false},
		{"keys.write", "keys..write", false},
		{"*", "a", true},
		{"*", "a.b", false},
	} {
		if got := permits(splitPermission(c.pattern), c.perm); got != c.want {
			t.Errorf("permits(%q, %q) = %v", c.pattern, c.perm, got)
		}
	}
	if _, err := NewRBAC(RBACConfig{Roles: []Role{{ID: "r", Permissions: []string{"a..b"}}}}); err == nil {
		t.Fatal("empty permission segment accepted")
	}
	if _, err := NewRBAC(RBACConfig{Roles: []Role{{ID: "r"}}, Bindings: []Binding{{Principal: "p", Role: "x", Scope: Scope{Type: "global"}}}}); err == nil {
		t.Fatal("unknown role accepted")
	}
}
