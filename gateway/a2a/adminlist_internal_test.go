package a2a

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/talosgo/talos/audit"
)

// TestAdminListTamperedChain: an event changed in the store after the fact
// makes chain_verified false (the digests are recomputed, not trusted).
func TestAdminListTamperedChain(t *testing.T) {
	m := NewMemStore()
	ev, d, err := audit.NewChain(audit.SessionEventChain).Seal(map[string]any{
		"schema_id": "talos.a2a.session_event", "schema_version": "v1", "event_id": "019a0000-0000-7000-8000-000000000001",
		"session_id": "s1", "actor_id": "did:key:zA", "event_type": "created", "ts": "2026-03-13T12:00:00.000Z"})
	if err != nil {
		t.Fatal(err)
	}
	s := &Session{SchemaID: "talos.a2a.session", SchemaVersion: "v1", SessionID: "s1", InitiatorID: "did:key:zA", ResponderID: "did:key:zB",
		State: "pending", CreatedAt: "2026-03-13T12:00:00.000Z", RatchetStateBlob: []byte("secret ratchet state")}
	if err := m.CreateSession(context.Background(), s, ev, d); err != nil {
		t.Fatal(err)
	}
	al, err := NewAdminList(m)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	al.Register(mux, func(next http.HandlerFunc) http.HandlerFunc { return next })
	get := func() (SessionItem, string) {
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, httptest.NewRequest("GET", "/v1/admin/a2a/sessions/s1", nil))
		var it SessionItem
		json.Unmarshal(w.Body.Bytes(), &it)
		return it, w.Body.String()
	}
	it, body := get()
	if !it.ChainVerified || strings.Contains(body, "secret") || strings.Contains(body, "blob") {
		t.Fatalf("before: %s", body)
	}
	m.mu.Lock()
	m.chains["s1"][0] = json.RawMessage(strings.Replace(string(m.chains["s1"][0]), "created", "accepted", 1))
	m.mu.Unlock()
	if it, body = get(); it.ChainVerified {
		t.Fatalf("a tampered event verified: %s", body)
	}
	// A store that is not a Lister is refused at construction.
	if _, err := NewAdminList(struct{ Store }{m}); err == nil {
		t.Fatal("NewAdminList accepted a store that cannot list")
	}
	// Nil authorize refuses.
	nm := http.NewServeMux()
	al.Register(nm, nil)
	w := httptest.NewRecorder()
	nm.ServeHTTP(w, httptest.NewRequest("GET", "/v1/admin/a2a/groups", nil))
	if w.Code != 401 {
		t.Fatalf("nil authorize: %d", w.Code)
	}
}

func FuzzAdminListQuery(f *testing.F) {
	for _, q := range []string{"limit=2", "cursor=czE", "limit=0", "cursor=***", "limit=1&cursor=czE&x=1"} {
		f.Add(q, "s1")
	}
	al, _ := NewAdminList(NewMemStore())
	mux := http.NewServeMux()
	al.Register(mux, func(next http.HandlerFunc) http.HandlerFunc { return next })
	f.Fuzz(func(t *testing.T, query, id string) {
		for _, path := range []string{"/v1/admin/a2a/sessions", "/v1/admin/a2a/groups"} {
			r := httptest.NewRequest("GET", path, nil)
			r.URL.RawQuery = query
			w := httptest.NewRecorder()
			mux.ServeHTTP(w, r)
			if w.Code != 200 && w.Code != 400 {
				t.Fatalf("%s?%s: %d", path, query, w.Code)
			}
			r = httptest.NewRequest("GET", path, nil)
			r.URL.Path += "/" + id
			w = httptest.NewRecorder()
			mux.ServeHTTP(w, r)
			if w.Code >= 500 {
				t.Fatalf("%s/%q: %d", path, id, w.Code)
			}
		}
	})
}
