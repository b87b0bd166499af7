package main

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/talosgo/talos/audit"
)

// TestConfigChangesAudited checks that every new config version lands in the
// audit log with its digest and its predecessor's, and that re-sending an
// identical document (no new version) adds nothing.
func TestConfigChangesAudited(t *testing.T) {
	ts := newTestServer(t, testConfig(t))
	ctx := context.Background()
	before, err := ts.core.log.Size(ctx)
	if err != nil {
		t.Fatal(err)
	}
	put := func(doc string) map[string]any {
		resp := ts.do(t, http.MethodPut, "/v1/config/budget/team-a", ts.cred, []byte(doc))
		var body map[string]any
		if st := decode(t, resp, &body); st != http.StatusOK && st != http.StatusCreated {
			t.Fatalf("PUT: status %d %v", st, body)
		}
		return body
	}
	v1 := put(`{"id":"team-a","scope_type":"team","scope_id":"a","period":"monthly","max_usd":25}`)
	put(`{"id":"team-a","scope_type":"team","scope_id":"a","period":"monthly","max_usd":25}`) // unchanged
	v2 := put(`{"id":"team-a","scope_type":"team","scope_id":"a","period":"monthly","max_usd":30}`)

	after, err := ts.core.log.Size(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after-before != 2 {
		t.Fatalf("%d audit events for 2 new versions", after-before)
	}
	var metas []map[string]any
	for i := before; i < after; i++ {
		entry, err := ts.core.log.Entry(ctx, i)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := audit.ParseEvent(entry)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(ev)
		var m struct {
			SurfaceID string         `json:"surface_id"`
			Meta      map[string]any `json:"meta"`
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		if m.SurfaceID != opConfig {
			t.Fatalf("surface %q", m.SurfaceID)
		}
		metas = append(metas, m.Meta)
	}
	if metas[0]["config_digest"] != v1["digest"] || metas[1]["config_digest"] != v2["digest"] ||
		metas[1]["config_previous_digest"] != v1["digest"] || metas[1]["config_version"] != float64(2) {
		t.Fatalf("audit metas %v; versions %v, %v", metas, v1, v2)
	}
}
