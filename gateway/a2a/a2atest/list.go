package a2atest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/a2a"
)

// sealed returns the n-th event of a real session or group event chain.
type chainer struct {
	t  *testing.T
	ch *audit.Chain
}

func newChainer(t *testing.T) *chainer {
	return &chainer{t: t, ch: audit.NewChain(audit.SessionEventChain)}
}

func (c *chainer) next(id, typ string, sec int) (json.RawMessage, string) {
	c.t.Helper()
	ev, digest, err := c.ch.Seal(map[string]any{
		"schema_id": "talos.a2a.session_event", "schema_version": "v1", "event_id": contracts.NewUUIDv7(),
		"session_id": id, "actor_id": "did:key:zA", "event_type": typ, "ts": fmt.Sprintf("2026-03-13T12:00:%02d.000Z", sec),
	})
	if err != nil {
		c.t.Fatal(err)
	}
	return ev, digest
}

// fill stores sessions s-c, s-a, s-b (s-a with a second event and three
// frames) and groups g-b, g-a (g-a with a member added).
func fill(t *testing.T, s a2a.Store) map[string]string {
	ctx := context.Background()
	heads := map[string]string{}
	for _, id := range []string{"s-c", "s-a", "s-b"} {
		c := newChainer(t)
		ev, d := c.next(id, "created", 0)
		if err := s.CreateSession(ctx, session(id), ev, d); err != nil {
			t.Fatal(err)
		}
		heads[id] = d
		if id == "s-a" {
			if _, err := s.UpdateSession(ctx, id, func(x *a2a.Session, h a2a.ChainHead) (*a2a.Session, json.RawMessage, string, error) {
				if h.N != 1 || h.Head != d {
					t.Fatalf("head %+v", h)
				}
				x.State = "active"
				ev, d := c.next(id, "accepted", 5)
				heads[id] = d
				return x, ev, d, nil
			}); err != nil {
				t.Fatal(err)
			}
			for seq := uint64(1); seq <= 3; seq++ {
				f, raw := frame(id, "did:key:zA", seq, "v")
				if _, err := s.PutFrame(ctx, f, raw); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for _, id := range []string{"g-b", "g-a"} {
		ch := audit.NewChain(audit.GroupEventChain)
		ev, d, err := ch.Seal(map[string]any{"schema_id": "talos.a2a.group_event", "schema_version": "v1", "event_id": contracts.NewUUIDv7(),
			"group_id": id, "actor_id": "did:key:zO", "event_type": "created", "ts": "2026-03-13T12:01:00.000Z"})
		if err != nil {
			t.Fatal(err)
		}
		g := &a2a.Group{SchemaID: "talos.a2a.group", SchemaVersion: "v1", GroupID: id, OwnerID: "did:key:zO", State: "active",
			CreatedAt: "2026-03-13T12:01:00.000Z", Members: map[string]bool{"did:key:zO": true}}
		if err := s.CreateGroup(ctx, g, ev, d); err != nil {
			t.Fatal(err)
		}
		heads[id] = d
		if id == "g-a" {
			if _, err := s.UpdateGroup(ctx, id, func(x *a2a.Group, h a2a.ChainHead) (*a2a.Group, json.RawMessage, string, error) {
				rc, err := audit.ResumeChain(audit.GroupEventChain, h.Head, h.N)
				if err != nil {
					return nil, nil, "", err
				}
				ev, d, err := rc.Seal(map[string]any{"schema_id": "talos.a2a.group_event", "schema_version": "v1", "event_id": contracts.NewUUIDv7(),
					"group_id": id, "actor_id": "did:key:zO", "event_type": "member_added", "target_id": "did:key:zM", "ts": "2026-03-13T12:02:00.000Z"})
				x.Members["did:key:zM"] = true
				heads[id] = d
				return x, ev, d, err
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return heads
}

func testLists(t *testing.T, s a2a.Store) {
	l, ok := s.(a2a.Lister)
	if !ok {
		t.Fatal("the relay store is not an a2a.Lister")
	}
	ctx := context.Background()
	if ss, err := l.ListSessions(ctx, a2a.ListQuery{Limit: 10}); err != nil || len(ss) != 0 {
		t.Fatalf("empty store: %v %v", ss, err)
	}
	heads := fill(t, s)
	p1, err := l.ListSessions(ctx, a2a.ListQuery{Limit: 2})
	if err != nil || len(p1) != 2 || p1[0].Session.SessionID != "s-a" || p1[1].Session.SessionID != "s-b" {
		t.Fatalf("first page: %+v %v", p1, err)
	}
	if p1[0].Frames != 3 || p1[0].Head.N != 2 || p1[0].Head.Head != heads["s-a"] || p1[0].Session.State != "active" {
		t.Fatalf("s-a: %+v", p1[0])
	}
	if p1[1].Frames != 0 || p1[1].Head.N != 1 || p1[1].Head.Head != heads["s-b"] {
		t.Fatalf("s-b: %+v", p1[1])
	}
	p2, err := l.ListSessions(ctx, a2a.ListQuery{After: "s-b", Limit: 2})
	if err != nil || len(p2) != 1 || p2[0].Session.SessionID != "s-c" {
		t.Fatalf("second page: %+v %v", p2, err)
	}
	one, err := l.ListSessions(ctx, a2a.ListQuery{ID: "s-c", Limit: 1})
	if err != nil || len(one) != 1 || one[0].Session.SessionID != "s-c" {
		t.Fatalf("by id: %+v %v", one, err)
	}
	if none, err := l.ListSessions(ctx, a2a.ListQuery{ID: "g-a", Limit: 1}); err != nil || len(none) != 0 {
		t.Fatalf("a group as a session: %+v %v", none, err)
	}
	gs, err := l.ListGroups(ctx, a2a.ListQuery{Limit: 10})
	if err != nil || len(gs) != 2 || gs[0].Group.GroupID != "g-a" || gs[1].Group.GroupID != "g-b" {
		t.Fatalf("groups: %+v %v", gs, err)
	}
	if gs[0].Head.N != 2 || gs[0].Head.Head != heads["g-a"] || len(gs[0].Group.Members) != 2 {
		t.Fatalf("g-a: %+v", gs[0])
	}
}

func testAdminList(t *testing.T, s a2a.Store) {
	heads := fill(t, s)
	al, err := a2a.NewAdminList(s)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	al.Register(mux, func(next http.HandlerFunc) http.HandlerFunc { return next })
	get := func(path string, v any) int {
		t.Helper()
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if v != nil {
			if err := json.Unmarshal(w.Body.Bytes(), v); err != nil {
				t.Fatalf("%s: %d %s", path, w.Code, w.Body.Bytes())
			}
		}
		return w.Code
	}
	var page a2a.Page[a2a.SessionItem]
	if st := get("/v1/admin/a2a/sessions?limit=2", &page); st != 200 || len(page.Items) != 2 || page.NextCursor == "" {
		t.Fatalf("sessions: %d %+v", st, page)
	}
	sa := page.Items[0]
	if sa.ID != "s-a" || !sa.ChainVerified || sa.ChainHead != heads["s-a"] || sa.EventCount != 2 || sa.FrameCount != 3 ||
		sa.UpdatedAt != "2026-03-13T12:00:05.000Z" || len(sa.Participants) != 2 || sa.State != "active" {
		t.Fatalf("s-a: %+v", sa)
	}
	var rest a2a.Page[a2a.SessionItem]
	if st := get("/v1/admin/a2a/sessions?limit=2&cursor="+page.NextCursor, &rest); st != 200 || len(rest.Items) != 1 || rest.Items[0].ID != "s-c" || rest.NextCursor != "" {
		t.Fatalf("second page: %d %+v", st, rest)
	}
	var one a2a.SessionItem
	if st := get("/v1/admin/a2a/sessions/s-b", &one); st != 200 || one.ID != "s-b" || !one.ChainVerified {
		t.Fatalf("s-b: %d %+v", st, one)
	}
	var groups a2a.Page[a2a.GroupItem]
	if st := get("/v1/admin/a2a/groups", &groups); st != 200 || len(groups.Items) != 2 {
		t.Fatalf("groups: %d %+v", st, groups)
	}
	ga := groups.Items[0]
	if ga.ID != "g-a" || !ga.ChainVerified || ga.EventCount != 2 || ga.MemberCount != 2 || ga.UpdatedAt != "2026-03-13T12:02:00.000Z" {
		t.Fatalf("g-a: %+v", ga)
	}
	var g a2a.GroupItem
	if st := get("/v1/admin/a2a/groups/g-b", &g); st != 200 || g.ID != "g-b" || !g.ChainVerified {
		t.Fatalf("g-b: %d %+v", st, g)
	}
	var eb struct{ Code string }
	for path, want := range map[string]int{
		"/v1/admin/a2a/sessions/nope": 404, "/v1/admin/a2a/groups/s-a": 404,
		"/v1/admin/a2a/sessions?limit=0": 400, "/v1/admin/a2a/sessions?limit=501": 400,
		"/v1/admin/a2a/groups?cursor=***": 400, "/v1/admin/a2a/groups?x=1": 400,
	} {
		if st := get(path, &eb); st != want {
			t.Fatalf("%s: %d %s, want %d", path, st, eb.Code, want)
		}
	}
}
