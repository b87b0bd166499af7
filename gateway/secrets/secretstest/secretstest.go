// Package secretstest is the conformance suite for gateway/secrets stores:
// the record semantics every [secrets.Store] must have (not found, create
// once, compare-and-set updates, sorted prefix lists, removal, an exclusive
// rotation lock) and a [secrets.Vault] over it (sealed at rest, bound to the
// id, rotation under concurrent reads on two handles without a failed read).
package secretstest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/secrets"
)

// NewStores returns n handles on one fresh, empty store: n clients of one
// database (each its own pool), or the same value n times for a store that
// belongs to one process.
type NewStores func(t *testing.T, n int) []secrets.Store

// Run runs the suite; every subtest asks newStores for fresh stores.
func Run(t *testing.T, newStores NewStores) {
	t.Run("Records", func(t *testing.T) { testRecords(t, newStores) })
	t.Run("Lock", func(t *testing.T) { testLock(t, newStores) })
	t.Run("ConcurrentUpdates", func(t *testing.T) { testConcurrentUpdates(t, newStores) })
	t.Run("Vault", func(t *testing.T) { testVault(t, newStores) })
	t.Run("RotationUnderLoad", func(t *testing.T) { testRotationUnderLoad(t, newStores) })
	t.Run("Age", func(t *testing.T) { testAge(t, newStores) })
	t.Run("ScheduledRotationOncePerInterval", func(t *testing.T) { testScheduledRotation(t, newStores) })
}

func testAge(t *testing.T, newStores NewStores) {
	ctx := t.Context()
	hs := newStores(t, 2)
	if _, err := hs[0].Age(ctx, "x"); !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("Age of a missing record: %v, want ErrNotFound", err)
	}
	if err := hs[0].Create(ctx, "x", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	age, err := hs[1].Age(ctx, "x")
	if err != nil || age < 0 || age > time.Hour {
		t.Fatalf("Age of a record just created, on the other handle: %v %v", age, err)
	}
}

// fakeAges is a fake clock over a store's ages: advance makes the records
// that exist now that much older, as if that time had passed since they
// were written; records written afterwards age normally.
type fakeAges struct {
	mu    sync.Mutex
	extra map[string]time.Duration
}

func (f *fakeAges) advance(t *testing.T, s secrets.Store, d time.Duration) {
	t.Helper()
	rs, err := s.List(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.extra == nil {
		f.extra = map[string]time.Duration{}
	}
	for _, r := range rs {
		f.extra[r.ID] += d
	}
}

// agedStore is a store whose Age adds the fake clock's advance.
type agedStore struct {
	secrets.Store
	ages *fakeAges
}

func (s agedStore) Age(ctx context.Context, id string) (time.Duration, error) {
	age, err := s.Store.Age(ctx, id)
	if err != nil {
		return 0, err
	}
	s.ages.mu.Lock()
	defer s.ages.mu.Unlock()
	return age + s.ages.extra[id], nil
}

func kekIDs(t *testing.T, s secrets.Store) string {
	t.Helper()
	rs, err := s.List(t.Context(), secrets.KEKPrefix)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		out = append(out, r.ID)
	}
	return fmt.Sprint(out)
}

// testScheduledRotation: two vaults on one store (two replicas), both
// rotating on schedule, rotate once per interval between them, and an
// operator's Rotate still rotates.
func testScheduledRotation(t *testing.T, newStores NewStores) {
	ctx := t.Context()
	hs := newStores(t, 2)
	ages := &fakeAges{}
	master := key(t)
	a := open(t, agedStore{hs[0], ages}, master)
	b := open(t, agedStore{hs[1], ages}, master)
	if err := a.Put(ctx, "s", []byte("v")); err != nil {
		t.Fatal(err)
	}
	const interval = time.Hour
	race := func() (rotated []string) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i := range 8 {
			v := []*secrets.Vault{a, b}[i%2]
			wg.Go(func() {
				res, err := v.RotateIfDue(ctx, interval)
				if err != nil {
					t.Error(err)
					return
				}
				if !res.Skipped {
					mu.Lock()
					rotated = append(rotated, res.KEKID)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		return rotated
	}
	if r := race(); len(r) != 0 {
		t.Fatalf("rotations with a fresh KEK: %v", r)
	}
	ages.advance(t, hs[0], interval)
	if r := race(); len(r) != 1 || r[0] != "kek-00000002" {
		t.Fatalf("rotations after one interval by 8 callers on two replicas: %v, want exactly [kek-00000002]", r)
	}
	if got, want := kekIDs(t, hs[1]), "[kek/kek-00000001 kek/kek-00000002]"; got != want {
		t.Fatalf("KEKs after one interval: %s, want %s", got, want)
	}
	for _, v := range []*secrets.Vault{a, b} {
		res, err := v.RotateIfDue(ctx, interval)
		if err != nil || !res.NotDue || res.Age >= interval {
			t.Fatalf("RotateIfDue right after another replica rotated: %+v %v, want NotDue", res, err)
		}
		if v.PrimaryKEK() != "kek-00000002" {
			t.Fatalf("a replica's primary KEK is %s after a rotation elsewhere, want kek-00000002", v.PrimaryKEK())
		}
	}
	if got, err := b.Get(ctx, "s"); err != nil || string(got) != "v" {
		t.Fatalf("secret after the rotation: %q %v", got, err)
	}

	// The workers: both start, check at once, and between them rotate once.
	ages.advance(t, hs[0], interval)
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, v := range []*secrets.Vault{a, b} {
		wg.Go(func() {
			if err := v.RotateEvery(interval)(wctx); err != nil {
				t.Error(err)
			}
		})
	}
	deadline := time.Now().Add(30 * time.Second)
	for a.PrimaryKEK() != "kek-00000003" || b.PrimaryKEK() != "kek-00000003" {
		if time.Now().After(deadline) {
			cancel()
			wg.Wait()
			t.Fatalf("primary KEKs %s and %s, want both kek-00000003", a.PrimaryKEK(), b.PrimaryKEK())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	if got, want := kekIDs(t, hs[0]), "[kek/kek-00000001 kek/kek-00000002 kek/kek-00000003]"; got != want {
		t.Fatalf("KEKs after two RotateEvery workers ran one interval: %s, want %s", got, want)
	}

	// The operator's rotation is not subject to the interval.
	res, err := b.Rotate(ctx)
	if err != nil || res.Skipped || res.KEKID != "kek-00000004" {
		t.Fatalf("explicit Rotate with a fresh KEK: %+v %v, want kek-00000004", res, err)
	}
}

func testRecords(t *testing.T, newStores NewStores) {
	ctx := t.Context()
	hs := newStores(t, 2)
	a, b := hs[0], hs[1]
	if _, err := a.Get(ctx, "x"); !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("Get of a missing record: %v, want ErrNotFound", err)
	}
	if err := a.Update(ctx, "x", []byte(`{"e":1}`), 1); !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("Update of a missing record: %v, want ErrNotFound", err)
	}
	if err := a.Create(ctx, "x", []byte(`{"e":1}`)); err != nil {
		t.Fatal(err)
	}
	if err := b.Create(ctx, "x", []byte(`{"e":2}`)); !errors.Is(err, secrets.ErrExists) {
		t.Fatalf("second Create: %v, want ErrExists", err)
	}
	r, err := b.Get(ctx, "x")
	if err != nil || r.ID != "x" || r.Version != 1 || string(r.Envelope) != `{"e":1}` {
		t.Fatalf("Get after Create on the other handle: %+v %v", r, err)
	}
	if err := b.Update(ctx, "x", []byte(`{"e":3}`), 2); !errors.Is(err, secrets.ErrConflict) {
		t.Fatalf("Update at a wrong version: %v, want ErrConflict", err)
	}
	if err := b.Update(ctx, "x", []byte(`{"e":3}`), 1); err != nil {
		t.Fatal(err)
	}
	if err := a.Update(ctx, "x", []byte(`{"e":4}`), 1); !errors.Is(err, secrets.ErrConflict) {
		t.Fatalf("Update at a stale version: %v, want ErrConflict", err)
	}
	if r, err = a.Get(ctx, "x"); err != nil || r.Version != 2 || string(r.Envelope) != `{"e":3}` {
		t.Fatalf("Get after Update: %+v %v", r, err)
	}
	for _, id := range []string{"kek/kek-00000002", "b/10", "a/1", "kek/kek-00000001", "b/2", "B/0"} {
		if err := a.Create(ctx, id, []byte(`{"id":"`+id+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(prefix string) string {
		rs, err := b.List(ctx, prefix)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range rs {
			if string(r.Envelope) != `{"id":"`+r.ID+`"}` && r.ID != "x" {
				t.Fatalf("List returned record %q with envelope %s", r.ID, r.Envelope)
			}
			out = append(out, r.ID)
		}
		return fmt.Sprint(out)
	}
	if got, want := ids(""), "[B/0 a/1 b/10 b/2 kek/kek-00000001 kek/kek-00000002 x]"; got != want {
		t.Fatalf("List(\"\") = %s, want %s (sorted by bytes)", got, want)
	}
	if got, want := ids("kek/"), "[kek/kek-00000001 kek/kek-00000002]"; got != want {
		t.Fatalf("List(kek/) = %s, want %s", got, want)
	}
	if got, want := ids("b/"), "[b/10 b/2]"; got != want {
		t.Fatalf("List(b/) = %s, want %s", got, want)
	}
	if err := b.Remove(ctx, "a/1"); err != nil {
		t.Fatal(err)
	}
	if err := b.Remove(ctx, "a/1"); err != nil {
		t.Fatalf("Remove of an absent record: %v", err)
	}
	if _, err := a.Get(ctx, "a/1"); !errors.Is(err, secrets.ErrNotFound) {
		t.Fatalf("Get after Remove: %v", err)
	}
	if err := a.Create(ctx, "a/1", []byte(`{}`)); err != nil {
		t.Fatalf("Create after Remove: %v", err)
	}
	if r, _ := a.Get(ctx, "a/1"); r.Version != 1 {
		t.Fatalf("a re-created record is at version %d", r.Version)
	}
}

func testLock(t *testing.T, newStores NewStores) {
	ctx := t.Context()
	hs := newStores(t, 2)
	unlock, ok, err := hs[0].TryLock(ctx)
	if err != nil || !ok {
		t.Fatalf("TryLock of a free lock: %v %v", ok, err)
	}
	if _, ok2, err := hs[1].TryLock(ctx); err != nil || ok2 {
		t.Fatalf("a second holder took the held lock: %v %v", ok2, err)
	}
	unlock()
	unlock2, ok, err := hs[1].TryLock(ctx)
	if err != nil || !ok {
		t.Fatalf("TryLock after unlock: %v %v", ok, err)
	}
	unlock2()
}

func testConcurrentUpdates(t *testing.T, newStores NewStores) {
	ctx := t.Context()
	hs := newStores(t, 2)
	if err := hs[0].Create(ctx, "c", []byte(`{"n":0}`)); err != nil {
		t.Fatal(err)
	}
	const writers, each = 6, 10
	var won atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := hs[w%len(hs)]
			for range each {
				r, err := s.Get(ctx, "c")
				if err != nil {
					errs <- err
					return
				}
				err = s.Update(ctx, "c", []byte(fmt.Sprintf(`{"n":%d}`, r.Version)), r.Version)
				switch {
				case err == nil:
					won.Add(1)
				case !errors.Is(err, secrets.ErrConflict):
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	r, err := hs[1].Get(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	if r.Version != 1+won.Load() || won.Load() == 0 {
		t.Fatalf("version %d after %d successful updates: an update was lost or doubled", r.Version, won.Load())
	}
	if want := fmt.Sprintf(`{"n":%d}`, r.Version-1); string(r.Envelope) != want {
		t.Fatalf("envelope %s, want the last winner's %s", r.Envelope, want)
	}
}

func key(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func open(t *testing.T, s secrets.Store, master []byte) *secrets.Vault {
	t.Helper()
	v, err := secrets.Open(t.Context(), secrets.Config{Store: s, MasterKey: master})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func kekOf(t *testing.T, env []byte) string {
	t.Helper()
	var e struct {
		KEKID string `json:"kek_id"`
	}
	if err := json.Unmarshal(env, &e); err != nil {
		t.Fatal(err)
	}
	return e.KEKID
}

func testVault(t *testing.T, newStores NewStores) {
	ctx := t.Context()
	hs := newStores(t, 2)
	master := key(t)
	v := open(t, hs[0], master)
	if created, err := v.Create(ctx, "a", []byte("alpha-secret")); err != nil || !created {
		t.Fatalf("Create: %v %v", created, err)
	}
	if created, err := v.Create(ctx, "a", []byte("other")); err != nil || created {
		t.Fatalf("second Create: %v %v", created, err)
	}
	if err := v.Put(ctx, "b", []byte("beta-secret")); err != nil {
		t.Fatal(err)
	}
	if err := v.Put(ctx, "b", []byte("beta-secret-2")); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Get(ctx, "missing"); !errors.Is(err, contracts.ErrNotFound) {
		t.Fatalf("missing secret: %v", err)
	}
	for _, id := range []string{"", "kek/x", "has space"} {
		if err := v.Put(ctx, id, []byte("x")); !errors.Is(err, contracts.ErrInvalidInput) {
			t.Fatalf("Put(%q): %v", id, err)
		}
	}
	// The store holds envelopes only.
	all, err := hs[1].List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range all {
		if bytes.Contains(r.Envelope, []byte("alpha-secret")) || bytes.Contains(r.Envelope, []byte("beta-secret")) {
			t.Fatalf("plaintext in the stored record %q", r.ID)
		}
	}
	// A second process with the same master key reads them.
	v2 := open(t, hs[1], master)
	if v2.PrimaryKEK() != v.PrimaryKEK() {
		t.Fatalf("two vaults on one store use KEKs %s and %s", v.PrimaryKEK(), v2.PrimaryKEK())
	}
	for id, want := range map[string]string{"a": "alpha-secret", "b": "beta-secret-2"} {
		if got, err := v2.Get(ctx, id); err != nil || string(got) != want {
			t.Fatalf("Get(%s) on the second vault = %q, %v", id, got, err)
		}
	}
	// Another master key does not open the KEKs, and says so without a key.
	if _, err := secrets.Open(ctx, secrets.Config{Store: hs[1], MasterKey: key(t)}); !errors.Is(err, secrets.ErrWrongMasterKey) {
		t.Fatalf("a wrong master key: %v, want ErrWrongMasterKey", err)
	}
	// An envelope moved to another id does not open (the id is bound).
	r, err := hs[0].Get(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	if err := hs[0].Create(ctx, "c", r.Envelope); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Get(ctx, "c"); !errors.Is(err, contracts.ErrInternal) {
		t.Fatalf("an envelope opened under another id: %v", err)
	}
	// A record that does not open under its own id stops a rotation
	// (nothing is rewrapped blindly); remove it.
	if err := hs[0].Remove(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	// OnReveal sees what Get returns.
	var seen []byte
	v3, err := secrets.Open(ctx, secrets.Config{Store: hs[0], MasterKey: master, OnReveal: func(p []byte) { seen = append([]byte(nil), p...) }})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := v3.Get(ctx, "a"); err != nil || !bytes.Equal(seen, got) {
		t.Fatalf("OnReveal saw %q, Get returned %q, %v", seen, got, err)
	}
	// Rotation rewraps every secret under the new KEK.
	res, err := v.Rotate(ctx)
	if err != nil || res.Skipped || res.Rewrapped != 2 || res.KEKID != v.PrimaryKEK() {
		t.Fatalf("Rotate: %+v %v (primary %s)", res, err, v.PrimaryKEK())
	}
	for _, id := range []string{"a", "b"} {
		r, err := hs[1].Get(ctx, id)
		if err != nil || kekOf(t, r.Envelope) != res.KEKID {
			t.Fatalf("%s not under %s after the rotation: %v", id, res.KEKID, err)
		}
	}
	// The other vault follows: it loads the new KEK on first use.
	if got, err := v2.Get(ctx, "b"); err != nil || string(got) != "beta-secret-2" {
		t.Fatalf("second vault after the rotation: %q %v", got, err)
	}
	if err := v2.Put(ctx, "d", []byte("delta")); err != nil {
		t.Fatal(err)
	}
	if r, _ := hs[0].Get(ctx, "d"); kekOf(t, r.Envelope) != res.KEKID {
		t.Fatal("the second vault seals new secrets under an old KEK")
	}
}

// testRotationUnderLoad rotates on two vaults over two handles while
// readers on both read every secret; no read may fail.
func testRotationUnderLoad(t *testing.T, newStores NewStores) {
	ctx := t.Context()
	hs := newStores(t, 2)
	master := key(t)
	vaults := []*secrets.Vault{open(t, hs[0], master), open(t, hs[1], master)}
	const n = 20
	for i := range n {
		if err := vaults[0].Put(ctx, fmt.Sprintf("r%d", i), []byte(fmt.Sprintf("v%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var reads, failures atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for vi, v := range vaults {
		for w := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					id := fmt.Sprintf("r%d", i%n)
					got, err := v.Get(ctx, id)
					reads.Add(1)
					if err != nil || string(got) != fmt.Sprintf("v%d", i%n) {
						failures.Add(1)
						firstErr.CompareAndSwap(nil, fmt.Sprintf("vault %d: Get(%s) = %q, %v", vi, id, got, err))
					}
				}
			}()
		}
	}
	var rotated atomic.Int64
	var rwg sync.WaitGroup
	for _, v := range vaults {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			for range 4 {
				res, err := v.Rotate(ctx)
				if err != nil {
					firstErr.CompareAndSwap(nil, "Rotate: "+err.Error())
					failures.Add(1)
					return
				}
				if !res.Skipped {
					rotated.Add(1)
				}
				time.Sleep(time.Millisecond)
			}
		}()
	}
	rwg.Wait()
	// Let the readers run past the last rotation, then wait until they
	// have read a while.
	for start := reads.Load(); reads.Load() < start+50; {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if f := failures.Load(); f != 0 {
		t.Fatalf("%d of %d reads/rotations failed during rotation; first: %v", f, reads.Load(), firstErr.Load())
	}
	if rotated.Load() == 0 || reads.Load() < 100 {
		t.Fatalf("test did too little: %d rotations, %d reads", rotated.Load(), reads.Load())
	}
	// Every secret ends under the newest KEK.
	keks, err := hs[0].List(ctx, secrets.KEKPrefix)
	if err != nil || len(keks) == 0 {
		t.Fatalf("KEK records: %d, %v", len(keks), err)
	}
	newest := keks[len(keks)-1].ID[len(secrets.KEKPrefix):]
	for i := range n {
		r, err := hs[1].Get(ctx, fmt.Sprintf("r%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if got := kekOf(t, r.Envelope); got != newest {
			t.Fatalf("r%d under %s after the last rotation to %s", i, got, newest)
		}
	}
}
