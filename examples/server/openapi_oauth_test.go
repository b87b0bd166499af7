package main

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/talosgo/talos/gateway/oauth/oauthtest"
)

// TestOpenAPIOAuthAnswersMatch: the answers of POST /mcp to OAuth
// clients are the documented ones: the bearer alternative is in the
// operation's security, a bearer tools/list is a documented 200, and the
// refusals (no credential, a bad token, a missing scope, an unregistered
// principal) are documented statuses whose bodies match the document and
// carry the WWW-Authenticate challenge it names.
func TestOpenAPIOAuthAnswersMatch(t *testing.T) {
	o := newOAuthServer(t)
	doc := loadOpenAPI(t)
	sc := schemaCompiler(t)
	var mcpOp documentedOp
	for _, d := range documentedOps(t, doc) {
		if d.method == "POST" && d.path == "/mcp" {
			mcpOp = d
		}
	}
	if mcpOp.op == nil {
		t.Fatal("POST /mcp is not documented")
	}
	var bearer bool
	for _, alt := range mcpOp.op["security"].([]any) {
		if _, ok := alt.(map[string]any)["oauthBearer"]; ok {
			bearer = true
		}
	}
	if !bearer {
		t.Fatalf("POST /mcp security %v has no oauthBearer alternative", mcpOp.op["security"])
	}

	unregistered := o.claims("tools:read")
	unregistered.Subject = "agent-9"
	for _, tc := range []struct {
		name, authz, body string
		status            int
		challenge         string // in WWW-Authenticate
	}{
		{"bearer list", "Bearer " + o.as.Sign(t, oauthtest.KeyRSA, o.claims("tools:read")), listBody, http.StatusOK, ""},
		{"no credential", "", listBody, http.StatusUnauthorized, "resource_metadata="},
		{"bad token", "Bearer not-a-token", listBody, http.StatusUnauthorized, `error="invalid_token"`},
		{"missing scope", "Bearer " + o.as.Sign(t, oauthtest.KeyRSA, o.claims("tools:read")), callBody("write_file"), http.StatusForbidden, `error="insufficient_scope"`},
		{"no useful scope", "Bearer " + o.as.Sign(t, oauthtest.KeyRSA, o.claims("profile")), listBody, http.StatusForbidden, `error="insufficient_scope"`},
		{"unregistered", "Bearer " + o.as.Sign(t, oauthtest.KeyRSA, unregistered), listBody, http.StatusForbidden, "Bearer "},
	} {
		resp := o.post(t, tc.authz, tc.body)
		hdr := strings.Join(resp.Header.Values("WWW-Authenticate"), ", ")
		if resp.StatusCode != tc.status || !strings.Contains(hdr, tc.challenge) {
			t.Errorf("%s: %d %q, want %d with %q", tc.name, resp.StatusCode, hdr, tc.status, tc.challenge)
		}
		documented, _ := mcpOp.op["responses"].(map[string]any)[strconv.Itoa(resp.StatusCode)].(map[string]any)
		if tc.challenge != "" {
			if _, ok := documented["headers"].(map[string]any)["WWW-Authenticate"]; !ok {
				t.Errorf("%s: the %d response does not document WWW-Authenticate", tc.name, resp.StatusCode)
			}
		}
		if !checkAnswer(t, sc, mcpOp, "/mcp", resp) {
			t.Errorf("%s: the %d answer was not checked against a schema", tc.name, resp.StatusCode)
		}
	}
}
