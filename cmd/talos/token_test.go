package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTokenIssueDelegateInspectVerify(t *testing.T) {
	dir := t.TempDir()
	c := newCLI(t)
	root, rootDID := keygen(t, c, dir, "root", true)
	agent, agentDID := keygen(t, c, dir, "agent", true)
	_, subDID := keygen(t, c, dir, "sub", true)
	_, serviceDID := keygen(t, c, dir, "service", true)

	tok := filepath.Join(dir, "tok")
	r := c.must(exitOK, "token", "issue", "--json", "--wallet", root, "--subject", agentDID,
		"--grant", "search:query,list", "--grant-read-only", "files:read", "--expires", "1h", "--out", tok)
	if m := decodeJSON(t, r.stdout); m["ok"] != true || len(m["hash"].(string)) != 64 {
		t.Fatalf("issue: %v", m)
	}
	// The agent narrows it to search:query for sub; the chain reads from stdin.
	raw, _ := os.ReadFile(tok)
	c.stdin = string(raw)
	r = c.must(exitOK, "token", "delegate", "--wallet", agent, "--subject", subDID, "--grant", "search:query", "-")
	chain := filepath.Join(dir, "chain")
	os.WriteFile(chain, []byte(r.stdout), 0o644)

	r = c.must(exitOK, "token", "inspect", "--json", chain)
	m := decodeJSON(t, r.stdout)
	links := m["chain"].([]any)
	if len(links) != 2 || m["verified"] != false {
		t.Fatalf("inspect: %v", m)
	}
	l1 := links[1].(map[string]any)
	if l1["issuer"] != agentDID || l1["subject"] != subDID || l1["parent"] != links[0].(map[string]any)["hash"] {
		t.Fatalf("link 1: %v", l1)
	}
	if r := c.must(exitOK, "token", "inspect", tok); !strings.Contains(r.stdout, "files: read (read-only)") || !strings.Contains(r.stdout, "nothing is verified") {
		t.Fatalf("inspect text: %s", r.stdout)
	}

	c.must(exitOK, "token", "verify", "--trust", rootDID, "--holder", subDID, "--tool", "search", "--action", "query", chain)
	r = c.must(exitOK, "token", "verify", "--json", "--trust", rootDID, chain)
	if m := decodeJSON(t, r.stdout); m["reason"] != "ALLOWED" || m["depth"] != float64(2) {
		t.Fatalf("verify: %v", m)
	}

	// Each failure: exit 1, the reason in the message and in --json.
	fails := []struct {
		name, reason string
		args         []string
	}{
		{"untrusted root", "SIGNATURE_INVALID", []string{"--trust", agentDID, chain}},
		{"expired", "EXPIRED", []string{"--trust", rootDID, "--at", "2h", chain}},
		{"dropped scope", "SCOPE_MISMATCH", []string{"--trust", rootDID, "--tool", "search", "--action", "list", chain}},
		{"read-only grant", "SCOPE_MISMATCH", []string{"--trust", rootDID, "--tool", "files", "--action", "read", tok}},
		{"holder", "HOLDER_MISMATCH", []string{"--trust", rootDID, "--holder", agentDID, chain}},
		{"audience given, token has none", "AUDIENCE_MISMATCH", []string{"--trust", rootDID, "--audience", serviceDID, chain}},
	}
	for _, f := range fails {
		args := append([]string{"token", "verify", "--json"}, f.args...)
		r := c.must(exitFailed, args...)
		m := decodeJSON(t, r.stdout)
		if m["ok"] != false || f.reason != "" && m["reason"] != f.reason || !strings.Contains(r.stderr, "not valid") && !strings.Contains(r.stderr, "not decided") {
			t.Errorf("%s: %v / %s", f.name, m, r.stderr)
		}
	}

	later := filepath.Join(dir, "later")
	c.must(exitOK, "token", "issue", "--wallet", root, "--subject", agentDID, "--grant", "search:query", "--not-before", "1h", "--expires", "2h", "--out", later)
	if m := decodeJSON(t, c.must(exitFailed, "token", "verify", "--json", "--trust", rootDID, later).stdout); m["reason"] != "NOT_YET_VALID" {
		t.Fatalf("not yet valid: %v", m)
	}
	c.must(exitOK, "token", "verify", "--trust", rootDID, "--at", "90m", later)

	// A token addressed to a service needs --audience to match.
	aud := filepath.Join(dir, "aud")
	c.must(exitOK, "token", "issue", "--wallet", root, "--subject", agentDID, "--grant", "search:query", "--expires", "1h", "--audience", serviceDID, "--out", aud)
	if r := c.must(exitFailed, "token", "verify", "--trust", rootDID, aud); !strings.Contains(r.stderr, "addressed to "+serviceDID) {
		t.Fatalf("stderr %q", r.stderr)
	}
	c.must(exitOK, "token", "verify", "--trust", rootDID, "--audience", serviceDID, aud)

	// A tampered token: one character of its signature changed.
	tampered := []byte(strings.TrimSpace(string(raw)))
	tampered[len(tampered)-20] ^= 1
	c.stdin = string(tampered)
	c.must(exitFailed, "token", "verify", "--trust", rootDID)
	c.stdin = "not a token"
	if r := c.must(exitFailed, "token", "inspect"); !strings.Contains(r.stderr, "not a token or chain") {
		t.Fatalf("stderr %q", r.stderr)
	}

	// Delegation cannot widen: the agent adds search:delete.
	c.stdin = string(raw)
	if r := c.must(exitFailed, "token", "delegate", "--wallet", agent, "--subject", subDID, "--grant", "search:delete"); !strings.Contains(r.stderr, "cannot delegate") {
		t.Fatalf("stderr %q", r.stderr)
	}
	// Only the chain's subject can delegate.
	c.stdin = string(raw)
	c.must(exitFailed, "token", "delegate", "--wallet", root, "--subject", subDID, "--grant", "search:query")

	// Usage errors.
	c.must(exitUsage, "token", "issue", "--wallet", root, "--grant", "search:query", "--expires", "1h")
	c.must(exitUsage, "token", "issue", "--wallet", root, "--subject", agentDID, "--grant", "search", "--expires", "1h")
	c.must(exitUsage, "token", "issue", "--wallet", root, "--subject", agentDID, "--grant", "a:b", "--expires", "soon")
	c.must(exitUsage, "token", "verify", chain)
	c.must(exitIO, "token", "inspect", filepath.Join(dir, "missing"))
}
