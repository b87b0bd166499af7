package main

import (
	"net/http"
	"testing"

	"github.com/talosgo/talos/gateway/admin"
	"github.com/talosgo/talos/gateway/config"
)

// TestAdminStatsConfigList: GET /v1/config lists the stored documents
// (admin.config read: every role but the auditor), paginated.
func TestAdminStatsConfigList(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	for _, name := range []string{"team-b", "team-a"} {
		body := []byte(`{"id":"` + name + `","scope_type":"team","scope_id":"` + name + `","period":"monthly","max_usd":5}`)
		if st := decode(t, ts.do(t, "PUT", "/v1/config/budget/"+name, ts.cred, body), nil); st != http.StatusCreated {
			t.Fatalf("PUT %s: %d", name, st)
		}
	}
	var page config.ListResponse
	if st := decode(t, ts.do(t, "GET", "/v1/config?limit=1", ts.cred, nil), &page); st != 200 || len(page.Items) != 1 || page.NextCursor == "" {
		t.Fatalf("first page: %d %+v", st, page)
	}
	first := page.Items[0]
	if st := decode(t, ts.do(t, "GET", "/v1/config?limit=1&cursor="+page.NextCursor, ts.cred, nil), &page); st != 200 || len(page.Items) != 1 {
		t.Fatalf("second page: %d %+v", st, page)
	}
	if first.Name != "team-a" || page.Items[0].Name != "team-b" || first.LatestVersion != 1 || first.Digest == "" {
		t.Fatalf("documents %+v, %+v", first, page.Items[0])
	}
	viewer := ts.newAdmin(t, admin.RoleViewer).session(t, ts, "")
	if st := decode(t, ts.do(t, "GET", "/v1/config", viewer, nil), nil); st != 200 {
		t.Fatalf("viewer: %d", st)
	}
	auditor := ts.newAdmin(t, admin.RoleAuditor).session(t, ts, "")
	var eb errBody
	st := decode(t, ts.do(t, "GET", "/v1/config", auditor, nil), &eb)
	expectErr(t, "auditor", st, eb, "RBAC_DENIED")
	st = decode(t, ts.do(t, "GET", "/v1/config?cursor=nope", ts.cred, nil), &eb)
	expectErr(t, "bad cursor", st, eb, "TALOS_INVALID_INPUT")
}
