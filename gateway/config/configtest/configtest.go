// Package configtest is the conformance suite for gateway/config stores:
// dense versions, unchanged digests adding nothing, the commit hook inside
// the write (its failure stores nothing), not found, pages, the version
// bound's error, and concurrent writers on several handles.
package configtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/talosgo/talos/gateway/config"
)

// NewStores returns n handles on one fresh, empty store: n clients of one
// database (each its own pool), or the same value n times for a store that
// belongs to one process.
type NewStores func(t *testing.T, n int) []config.Store

// Run runs the suite; every subtest asks newStores for fresh stores.
func Run(t *testing.T, newStores NewStores) {
	t.Run("Versions", func(t *testing.T) { testVersions(t, newStores) })
	t.Run("HookFailureStoresNothing", func(t *testing.T) { testHookFailure(t, newStores) })
	t.Run("ConcurrentWriters", func(t *testing.T) { testConcurrent(t, newStores) })
	t.Run("Service", func(t *testing.T) { testService(t, newStores) })
	t.Run("List", func(t *testing.T) { testList(t, newStores) })
}

func doc(i int) ([]byte, string) {
	d := []byte(fmt.Sprintf(`{"id":"team-a","max_usd":%d,"scope_id":"a","scope_type":"team"}`, i))
	sum := sha256.Sum256(d)
	return d, hex.EncodeToString(sum[:])
}

var at = time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)

func noHook(context.Context, config.Version, string) error { return nil }

func testVersions(t *testing.T, newStores NewStores) {
	ctx := t.Context()
	s := newStores(t, 1)[0]
	if _, err := s.Latest(ctx, "budget", "team-a"); !errors.Is(err, config.ErrNotFound) {
		t.Fatalf("Latest of nothing: %v", err)
	}
	if _, err := s.Version(ctx, "budget", "team-a", 1); !errors.Is(err, config.ErrNotFound) {
		t.Fatalf("Version of nothing: %v", err)
	}
	if vs, err := s.Versions(ctx, "budget", "team-a", 0, 10); err != nil || len(vs) != 0 {
		t.Fatalf("Versions of nothing: %v %v", vs, err)
	}
	var prevs []string
	hook := func(_ context.Context, v config.Version, prev string) error {
		prevs = append(prevs, fmt.Sprintf("%d:%s", v.Version, prev))
		return nil
	}
	var digests []string
	for i := 1; i <= 3; i++ {
		d, dg := doc(i)
		v, changed, err := s.Put(ctx, "budget", "team-a", dg, d, at.Add(time.Duration(i)*time.Second), hook)
		if err != nil || !changed || v.Version != int64(i) || v.Digest != dg {
			t.Fatalf("Put %d: %+v %v %v", i, v, changed, err)
		}
		digests = append(digests, dg)
	}
	// The same digest again: no version, no hook.
	d3, dg3 := doc(3)
	v, changed, err := s.Put(ctx, "budget", "team-a", dg3, d3, at, hook)
	if err != nil || changed || v.Version != 3 || string(v.Document) != string(d3) {
		t.Fatalf("unchanged Put: %+v %v %v", v, changed, err)
	}
	if want := fmt.Sprint([]string{"1:", "2:" + digests[0], "3:" + digests[1]}); fmt.Sprint(prevs) != want {
		t.Fatalf("hook saw %v, want %s", prevs, want)
	}
	// A document that was an older version is a new version.
	d1, dg1 := doc(1)
	if v, changed, err := s.Put(ctx, "budget", "team-a", dg1, d1, at, noHook); err != nil || !changed || v.Version != 4 {
		t.Fatalf("Put of an older document: %+v %v %v", v, changed, err)
	}
	got, err := s.Latest(ctx, "budget", "team-a")
	if err != nil || got.Version != 4 || string(got.Document) != string(d1) || got.Digest != dg1 {
		t.Fatalf("Latest: %+v %v", got, err)
	}
	got, err = s.Version(ctx, "budget", "team-a", 2)
	d2, _ := doc(2)
	if err != nil || got.Version != 2 || string(got.Document) != string(d2) || !got.CreatedAt.Equal(at.Add(2*time.Second)) ||
		got.Kind != "budget" || got.Name != "team-a" {
		t.Fatalf("Version 2: %+v %v", got, err)
	}
	if _, err := s.Version(ctx, "budget", "team-a", 5); !errors.Is(err, config.ErrNotFound) {
		t.Fatalf("Version beyond the latest: %v", err)
	}
	if _, err := s.Latest(ctx, "budget", "team-b"); !errors.Is(err, config.ErrNotFound) {
		t.Fatalf("another name: %v", err)
	}
	if _, err := s.Latest(ctx, "policy", "team-a"); !errors.Is(err, config.ErrNotFound) {
		t.Fatalf("another kind: %v", err)
	}
	vs, err := s.Versions(ctx, "budget", "team-a", 1, 2)
	if err != nil || len(vs) != 2 || vs[0].Version != 2 || vs[1].Version != 3 || vs[0].Document != nil || vs[0].Digest != digests[1] {
		t.Fatalf("Versions(after 1, limit 2): %+v %v", vs, err)
	}
	if vs, err := s.Versions(ctx, "budget", "team-a", 4, 10); err != nil || len(vs) != 0 {
		t.Fatalf("Versions after the last: %+v %v", vs, err)
	}
}

func testHookFailure(t *testing.T, newStores NewStores) {
	ctx := t.Context()
	s := newStores(t, 1)[0]
	d1, dg1 := doc(1)
	if _, _, err := s.Put(ctx, "budget", "team-a", dg1, d1, at, noHook); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("audit log down")
	d2, dg2 := doc(2)
	if _, _, err := s.Put(ctx, "budget", "team-a", dg2, d2, at, func(context.Context, config.Version, string) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("Put with a failing hook: %v, want the hook's error", err)
	}
	if v, err := s.Latest(ctx, "budget", "team-a"); err != nil || v.Version != 1 {
		t.Fatalf("after a failed hook the latest is %+v, %v; want version 1", v, err)
	}
	if v, changed, err := s.Put(ctx, "budget", "team-a", dg2, d2, at, noHook); err != nil || !changed || v.Version != 2 {
		t.Fatalf("Put after a failed hook: %+v %v %v (the failed version must not hold its number)", v, changed, err)
	}
}

func testConcurrent(t *testing.T, newStores NewStores) {
	ctx := t.Context()
	hs := newStores(t, 2)
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, dg := doc(i + 10)
			if _, _, err := hs[i%len(hs)].Put(ctx, "budget", "team-c", dg, d, at, noHook); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Put failed: %v", err)
	}
	vs, err := hs[0].Versions(ctx, "budget", "team-c", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != n {
		t.Fatalf("%d versions after %d distinct Puts", len(vs), n)
	}
	for i, v := range vs {
		if v.Version != int64(i+1) {
			t.Fatalf("versions not dense: %+v", vs)
		}
	}
}

// testService runs a config.Service over the store: a failed audit hook
// stores nothing, a Change carries the digests.
func testService(t *testing.T, newStores NewStores) {
	ctx := t.Context()
	s := newStores(t, 1)[0]
	var changes []config.Change
	fail := false
	svc, err := config.New(config.Config{Store: s, OnChange: func(_ context.Context, c config.Change) error {
		if fail {
			return errors.New("no audit")
		}
		changes = append(changes, c)
		return nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	budget := `{"id":"team-a","scope_type":"team","scope_id":"a","period":"monthly","max_usd":12.5}`
	v1, changed, err := svc.Put(ctx, "budget", "team-a", []byte(budget))
	if err != nil || !changed || v1.Version != 1 {
		t.Fatalf("Put: %+v %v %v", v1, changed, err)
	}
	fail = true
	if _, _, err := svc.Put(ctx, "budget", "team-a", []byte(`{"id":"team-a","scope_type":"team","scope_id":"a","max_usd":1}`)); err == nil {
		t.Fatal("Put with a failing hook succeeded")
	}
	if v, err := svc.Latest(ctx, "budget", "team-a"); err != nil || v.Version != 1 {
		t.Fatalf("after a failed hook: %+v %v", v, err)
	}
	fail = false
	v2, _, err := svc.Put(ctx, "budget", "team-a", []byte(`{"id":"team-a","scope_type":"team","scope_id":"a","max_usd":2}`))
	if err != nil || v2.Version != 2 {
		t.Fatalf("Put: %+v %v", v2, err)
	}
	if len(changes) != 2 || changes[1].PreviousDigest != v1.Digest || changes[1].Digest != v2.Digest || changes[0].PreviousDigest != "" {
		t.Fatalf("changes %+v", changes)
	}
}

// testList: a Lister lists every document's latest version, sorted by kind
// then name in byte order, paged after a (kind, name), across clients.
func testList(t *testing.T, newStores NewStores) {
	ss := newStores(t, 2)
	l0, ok0 := ss[0].(config.Lister)
	l1, ok1 := ss[1].(config.Lister)
	if !ok0 || !ok1 {
		t.Fatal("the store is not a config.Lister")
	}
	ctx := t.Context()
	at := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	empty, err := l0.List(ctx, "", "", 10)
	if err != nil || len(empty) != 0 || empty == nil {
		t.Fatalf("empty store: %v %v", empty, err)
	}
	type key struct{ kind, name string }
	puts := []key{{"policy", "b"}, {"budget", "team-a"}, {"budget", "team.b"}, {"budget", "team-a"}, {"budget", "team_c"}, {"policy", "a-1"}}
	want := map[key]int64{}
	for i, k := range puts {
		d, digest := doc(i)
		if _, _, err := ss[i%2].Put(ctx, k.kind, k.name, digest, d, at.Add(time.Duration(i)*time.Second), noHook); err != nil {
			t.Fatal(err)
		}
		want[k]++
	}
	order := []key{{"budget", "team-a"}, {"budget", "team.b"}, {"budget", "team_c"}, {"policy", "a-1"}, {"policy", "b"}}
	var got []config.Document
	ak, an := "", ""
	for {
		page, err := l1.List(ctx, ak, an, 2)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, page...)
		if len(page) < 2 {
			break
		}
		ak, an = page[len(page)-1].Kind, page[len(page)-1].Name
	}
	if len(got) != len(order) {
		t.Fatalf("listed %d documents, want %d: %+v", len(got), len(order), got)
	}
	for i, d := range got {
		if (key{d.Kind, d.Name}) != order[i] || d.LatestVersion != want[order[i]] || d.Digest == "" || d.UpdatedAt.IsZero() {
			t.Fatalf("document %d: %+v, want %v version %d", i, d, order[i], want[order[i]])
		}
		latest, err := ss[0].Latest(ctx, d.Kind, d.Name)
		if err != nil || latest.Digest != d.Digest || !latest.CreatedAt.Equal(d.UpdatedAt) {
			t.Fatalf("document %d: %+v, latest %+v %v", i, d, latest, err)
		}
	}
}
