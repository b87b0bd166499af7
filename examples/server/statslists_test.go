package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/talosgo/talos/gateway/a2a"
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

// TestAdminStatsA2ALists: a session opened and used through the relay
// appears in GET /v1/admin/a2a/sessions with its frame count and a
// verified chain, and never with its ratchet state; admin.a2a read is
// refused to the auditor.
func TestAdminStatsA2ALists(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	alice := newAgent(t, ts, "alice", "team-a")
	bob := newAgent(t, ts, "bob", "team-a")
	ap, _, id := openSession(t, alice, bob)
	for _, msg := range []string{"one", "two"} {
		if st := alice.call("POST", "/a2a/sessions/"+id+"/frames", sendBody(ap.frame(id, msg)), nil); st != http.StatusCreated {
			t.Fatalf("frame: %d", st)
		}
	}
	var page a2a.Page[a2a.SessionItem]
	resp := ts.do(t, "GET", "/v1/admin/a2a/sessions", ts.cred, nil)
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err := json.Unmarshal(raw, &page); err != nil || resp.StatusCode != 200 || len(page.Items) != 1 {
		t.Fatalf("sessions: %d %s", resp.StatusCode, raw)
	}
	it := page.Items[0]
	if it.ID != id || it.State != "active" || it.FrameCount != 2 || it.EventCount != 2 || !it.ChainVerified ||
		it.Participants[0] != alice.did || it.Participants[1] != bob.did {
		t.Fatalf("session item %+v", it)
	}
	if bytes.Contains(raw, []byte("ratchet_state")) || bytes.Contains(raw, []byte(`"frames"`)) {
		t.Fatalf("the list leaks ratchet state or frames: %s", raw)
	}
	var one a2a.SessionItem
	if st := decode(t, ts.do(t, "GET", "/v1/admin/a2a/sessions/"+id, ts.cred, nil), &one); st != 200 || one.ChainHead != it.ChainHead {
		t.Fatalf("session %d %+v", st, one)
	}
	var groups a2a.Page[a2a.GroupItem]
	if st := decode(t, ts.do(t, "GET", "/v1/admin/a2a/groups", ts.cred, nil), &groups); st != 200 || len(groups.Items) != 0 {
		t.Fatalf("groups %d %+v", st, groups)
	}
	auditor := ts.newAdmin(t, admin.RoleAuditor).session(t, ts, "")
	var eb errBody
	st := decode(t, ts.do(t, "GET", "/v1/admin/a2a/sessions", auditor, nil), &eb)
	expectErr(t, "auditor", st, eb, "RBAC_DENIED")
	st = decode(t, ts.do(t, "GET", "/v1/admin/a2a/groups/nope", ts.cred, nil), &eb)
	expectErr(t, "missing group", st, eb, "NOT_FOUND")
}
