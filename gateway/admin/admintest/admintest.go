// Package admintest is the conformance suite every admin.Store passes:
// round trips, replacement, deletion, kinds kept apart, the admin API's
// own kinds (identities, sessions, capability and revocation records), the
// order of All, concurrent writers and, for durable stores, reopening. It
// also has [Admin], an admin identity that signs requests, for tests of
// handlers behind [admin.Handler.Require].
package admintest

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"github.com/talosgo/talos/gateway/admin"
)

// NewStore returns an empty store for one test.
type NewStore func(t *testing.T) admin.Store

// Reopen returns a new store over the same data as s (a restart), or nil
// when the store is not durable.
type Reopen func(t *testing.T, s admin.Store) admin.Store

// Run runs the suite. reopen may be nil; then the restart test is skipped
// (and says so).
func Run(t *testing.T, newStore NewStore, reopen Reopen) {
	t.Run("Empty", func(t *testing.T) { testEmpty(t, newStore(t)) })
	t.Run("RoundTrip", func(t *testing.T) { testRoundTrip(t, newStore(t)) })
	t.Run("Delete", func(t *testing.T) { testDelete(t, newStore(t)) })
	t.Run("Order", func(t *testing.T) { testOrder(t, newStore(t)) })
	t.Run("AdminKinds", func(t *testing.T) { testAdminKinds(t, newStore(t)) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, newStore(t)) })
	t.Run("Reopen", func(t *testing.T) {
		if reopen == nil {
			t.Skip("the store is not durable")
		}
		testReopen(t, newStore(t), reopen)
	})
}

func doc(kind, id, body string) admin.Doc {
	return admin.Doc{Kind: kind, ID: id, Doc: []byte(body)}
}

func mustPut(t *testing.T, s admin.Store, d admin.Doc) {
	t.Helper()
	if err := s.Put(t.Context(), d); err != nil {
		t.Fatalf("put %s/%s: %v", d.Kind, d.ID, err)
	}
}

func expectDoc(t *testing.T, s admin.Store, kind, id, want string) {
	t.Helper()
	got, ok, err := s.Get(t.Context(), kind, id)
	if err != nil {
		t.Fatalf("get %s/%s: %v", kind, id, err)
	}
	if want == "" {
		if ok {
			t.Fatalf("get %s/%s: found %s, want none", kind, id, got)
		}
		return
	}
	if !ok || !bytes.Equal(got, []byte(want)) {
		t.Fatalf("get %s/%s: %s (found %v), want %s", kind, id, got, ok, want)
	}
}

func testEmpty(t *testing.T, s admin.Store) {
	all, err := s.All(t.Context())
	if err != nil || len(all) != 0 {
		t.Fatalf("empty store: %v %v", all, err)
	}
	expectDoc(t, s, admin.KindPrincipal, "did:key:z6Mkabc", "")
	existed, err := s.Delete(t.Context(), admin.KindRole, "nobody")
	if err != nil || existed {
		t.Fatalf("delete of a missing document: %v %v", existed, err)
	}
}

func testRoundTrip(t *testing.T, s admin.Store) {
	mustPut(t, s, doc(admin.KindRole, "reader", `{"permissions":["files:read"]}`))
	expectDoc(t, s, admin.KindRole, "reader", `{"permissions":["files:read"]}`)
	// The same id under another kind is another document.
	mustPut(t, s, doc(admin.KindBinding, "reader", `{"principal_id":"p","role_id":"reader","scope":{}}`))
	expectDoc(t, s, admin.KindRole, "reader", `{"permissions":["files:read"]}`)
	// A put replaces.
	mustPut(t, s, doc(admin.KindRole, "reader", `{"permissions":["files:read","files:list"]}`))
	expectDoc(t, s, admin.KindRole, "reader", `{"permissions":["files:read","files:list"]}`)
	expectDoc(t, s, admin.KindBinding, "reader", `{"principal_id":"p","role_id":"reader","scope":{}}`)
	all, err := s.All(t.Context())
	if err != nil || len(all) != 2 {
		t.Fatalf("all: %v %v", all, err)
	}
	// A caller changing the bytes it put or got does not change the store.
	d := doc(admin.KindBudget, "team:a", `{"limit_usd":"1","mode":"hard","period":"daily"}`)
	mustPut(t, s, d)
	d.Doc[2] = 'X'
	got, _, _ := s.Get(t.Context(), admin.KindBudget, "team:a")
	got[3] = 'Y'
	expectDoc(t, s, admin.KindBudget, "team:a", `{"limit_usd":"1","mode":"hard","period":"daily"}`)
}

func testDelete(t *testing.T, s admin.Store) {
	mustPut(t, s, doc(admin.KindPrincipal, "did:key:z6Mka", `{"team_id":"a"}`))
	mustPut(t, s, doc(admin.KindPrincipal, "did:key:z6Mkb", `{"team_id":"b"}`))
	existed, err := s.Delete(t.Context(), admin.KindPrincipal, "did:key:z6Mka")
	if err != nil || !existed {
		t.Fatalf("delete: %v %v", existed, err)
	}
	expectDoc(t, s, admin.KindPrincipal, "did:key:z6Mka", "")
	expectDoc(t, s, admin.KindPrincipal, "did:key:z6Mkb", `{"team_id":"b"}`)
	if existed, err := s.Delete(t.Context(), admin.KindPrincipal, "did:key:z6Mka"); err != nil || existed {
		t.Fatalf("second delete: %v %v", existed, err)
	}
	// Deleting under the wrong kind removes nothing.
	if existed, err := s.Delete(t.Context(), admin.KindRole, "did:key:z6Mkb"); err != nil || existed {
		t.Fatalf("delete under another kind: %v %v", existed, err)
	}
	all, err := s.All(t.Context())
	if err != nil || len(all) != 1 || all[0].ID != "did:key:z6Mkb" {
		t.Fatalf("all after delete: %v %v", all, err)
	}
}

func testOrder(t *testing.T, s admin.Store) {
	// Byte order, not a locale's: upper case before lower case, "_" between.
	ids := []string{"b", "B", "a_1", "a", "aB", "ab", "Z", "é"}
	for _, kind := range []string{admin.KindRole, admin.KindBudget, admin.KindPrincipal} {
		for _, id := range ids {
			mustPut(t, s, doc(kind, id, `{}`))
		}
	}
	all, err := s.All(t.Context())
	if err != nil || len(all) != 3*len(ids) {
		t.Fatalf("all: %d %v", len(all), err)
	}
	for i := 1; i < len(all); i++ {
		a, b := all[i-1], all[i]
		if a.Kind > b.Kind || a.Kind == b.Kind && a.ID >= b.ID {
			t.Fatalf("not in (kind, id) byte order at %d: %s/%s then %s/%s", i, a.Kind, a.ID, b.Kind, b.ID)
		}
	}
}

func testConcurrent(t *testing.T, s admin.Store) {
	const writers, each = 4, 8
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := s.Put(t.Context(), doc(admin.KindBudget, fmt.Sprintf("team:%d-%d", w, i), `{"mode":"hard"}`)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	all, err := s.All(t.Context())
	if err != nil || len(all) != writers*each {
		t.Fatalf("after concurrent puts: %d documents, %v", len(all), err)
	}
}

func testReopen(t *testing.T, s admin.Store, reopen Reopen) {
	mustPut(t, s, doc(admin.KindRole, "reader", `{"permissions":["files:read"]}`))
	mustPut(t, s, doc(admin.KindPrincipal, "did:key:z6Mka", `{"team_id":"a"}`))
	mustPut(t, s, doc(admin.KindPrincipal, "did:key:z6Mkb", `{"team_id":"b"}`))
	if _, err := s.Delete(t.Context(), admin.KindPrincipal, "did:key:z6Mkb"); err != nil {
		t.Fatal(err)
	}
	s2 := reopen(t, s)
	expectDoc(t, s2, admin.KindRole, "reader", `{"permissions":["files:read"]}`)
	expectDoc(t, s2, admin.KindPrincipal, "did:key:z6Mka", `{"team_id":"a"}`)
	expectDoc(t, s2, admin.KindPrincipal, "did:key:z6Mkb", "")
	all, err := s2.All(t.Context())
	if err != nil || len(all) != 2 {
		t.Fatalf("after reopening: %v %v", all, err)
	}
}

// testAdminKinds round-trips the admin API's own documents (identities,
// sessions by token hash, issued-capability and revocation records):
// every store keeps them beside the gateway's documents.
func testAdminKinds(t *testing.T, s admin.Store) {
	docs := []admin.Doc{
		doc(admin.KindIdentity, "did:key:z6MkOwner", `{"did":"did:key:z6MkOwner","role":"owner","created_at":"2026-12-03T10:00:00Z","created_by":"bootstrap"}`),
		doc(admin.KindSession, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", `{"did":"did:key:z6MkOwner","role":"viewer","created_at":"2026-12-03T10:00:00Z","expires_at":"2026-12-03T10:15:00Z"}`),
		doc(admin.KindCapability, "aa", `{"capability_hash":"aa","revoked":false}`),
		doc(admin.KindRevocation, "talos:revoked:hash:aa", `{"capability_hash":"aa"}`),
	}
	for _, d := range docs {
		mustPut(t, s, d)
	}
	for _, d := range docs {
		expectDoc(t, s, d.Kind, d.ID, string(d.Doc))
	}
	// A role change replaces the identity document.
	mustPut(t, s, doc(admin.KindIdentity, "did:key:z6MkOwner", `{"did":"did:key:z6MkOwner","role":"viewer"}`))
	expectDoc(t, s, admin.KindIdentity, "did:key:z6MkOwner", `{"did":"did:key:z6MkOwner","role":"viewer"}`)
	if existed, err := s.Delete(t.Context(), admin.KindSession, docs[1].ID); err != nil || !existed {
		t.Fatalf("delete session: %v %v", existed, err)
	}
	expectDoc(t, s, admin.KindSession, docs[1].ID, "")
	all, err := s.All(t.Context())
	if err != nil || len(all) != 3 {
		t.Fatalf("all: %v %v", all, err)
	}
}
