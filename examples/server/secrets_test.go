package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/internal/testenv"
)

func newKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
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

func fileStore(t *testing.T) *fileSecretStore {
	t.Helper()
	s, err := openFileSecretStore(filepath.Join(t.TempDir(), "secrets.json"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSecretsRoundTripAndPersistence(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "secrets.json")
	store, err := openFileSecretStore(path)
	if err != nil {
		t.Fatal(err)
	}
	master := newKey(t)
	sec, err := openSecrets(ctx, store, master, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if created, err := sec.Create(ctx, "a", []byte("alpha")); err != nil || !created {
		t.Fatalf("Create: %v %v", created, err)
	}
	if created, err := sec.Create(ctx, "a", []byte("other")); err != nil || created {
		t.Fatalf("second Create: %v %v", created, err)
	}
	if err := sec.Put(ctx, "b", []byte("beta")); err != nil {
		t.Fatal(err)
	}
	if err := sec.Put(ctx, "b", []byte("beta2")); err != nil {
		t.Fatal(err)
	}
	if _, err := sec.Get(ctx, "missing"); !errors.Is(err, contracts.ErrNotFound) {
		t.Fatalf("missing secret: %v", err)
	}
	for _, id := range []string{"", "kek/x", "has space"} {
		if err := sec.Put(ctx, id, []byte("x")); !errors.Is(err, contracts.ErrInvalidInput) {
			t.Fatalf("Put(%q): %v", id, err)
		}
	}
	raw, err := readLimited(path, maxSecretsFile)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("alpha")) || bytes.Contains(raw, []byte("beta")) {
		t.Fatal("plaintext in the secrets file")
	}

	// Reopen from disk.
	store2, err := openFileSecretStore(path)
	if err != nil {
		t.Fatal(err)
	}
	sec2, err := openSecrets(ctx, store2, master, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]string{"a": "alpha", "b": "beta2"} {
		got, err := sec2.Get(ctx, id)
		if err != nil || string(got) != want {
			t.Fatalf("Get(%s) after reopen = %q, %v", id, got, err)
		}
	}
	// A different master key cannot open the KEKs.
	if _, err := openSecrets(ctx, store2, newKey(t), slog.New(slog.DiscardHandler)); err == nil {
		t.Fatal("a wrong master key opened the secrets")
	}
	// A record moved to another id does not open (AAD binds the id).
	r, _ := store2.get(ctx, "a")
	if err := store2.create(ctx, "c", r.Envelope); err != nil {
		t.Fatal(err)
	}
	if _, err := sec2.Get(ctx, "c"); err == nil {
		t.Fatal("an envelope opened under another secret id")
	}
}

func TestSecretsRotationRewraps(t *testing.T) {
	ctx := t.Context()
	store := fileStore(t)
	sec, err := openSecrets(ctx, store, newKey(t), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := sec.Put(ctx, fmt.Sprintf("s%d", i), []byte(fmt.Sprintf("value-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := store.get(ctx, "s0")
	res, err := sec.Rotate(ctx)
	if err != nil || res.Skipped || res.Rewrapped != 5 || res.KEKID != "kek-00000002" {
		t.Fatalf("Rotate: %+v %v", res, err)
	}
	for i := range 5 {
		r, _ := store.get(ctx, fmt.Sprintf("s%d", i))
		if got := kekOf(t, r.Envelope); got != res.KEKID {
			t.Fatalf("s%d still under %s after rotation to %s", i, got, res.KEKID)
		}
		v, err := sec.Get(ctx, fmt.Sprintf("s%d", i))
		if err != nil || string(v) != fmt.Sprintf("value-%d", i) {
			t.Fatalf("Get after rotation: %q %v", v, err)
		}
	}
	// An envelope read before the rotation still opens (old KEKs stay loaded).
	if _, err := sec.ring.Open(before.Envelope, []byte(secretAADPfx+"s0")); err != nil {
		t.Fatalf("pre-rotation envelope no longer opens: %v", err)
	}
	// New secrets go under the new KEK.
	if err := sec.Put(ctx, "new", []byte("n")); err != nil {
		t.Fatal(err)
	}
	if r, _ := store.get(ctx, "new"); kekOf(t, r.Envelope) != res.KEKID {
		t.Fatal("new secret not sealed under the new primary KEK")
	}
	// The process-local lock: a rotation already running makes another skip.
	unlock, ok, _ := store.tryLock(ctx)
	if !ok {
		t.Fatal("lock not free")
	}
	if res, err := sec.Rotate(ctx); err != nil || !res.Skipped {
		t.Fatalf("Rotate while locked: %+v %v", res, err)
	}
	unlock()
}

// rotateUnderLoad runs rotations while readers (on every replica) read every
// secret continuously; any failed read fails the test.
func rotateUnderLoad(t *testing.T, replicas []*Secrets, rotations int) {
	t.Helper()
	ctx := t.Context()
	const n = 20
	for i := range n {
		if err := replicas[0].Put(ctx, fmt.Sprintf("r%d", i), []byte(fmt.Sprintf("v%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var reads, failures atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	for ri, rep := range replicas {
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
					v, err := rep.Get(ctx, id)
					reads.Add(1)
					if err != nil || string(v) != fmt.Sprintf("v%d", i%n) {
						failures.Add(1)
						firstErr.CompareAndSwap(nil, fmt.Sprintf("replica %d: Get(%s) = %q, %v", ri, id, v, err))
					}
				}
			}()
		}
	}
	var rotated atomic.Int64
	var rwg sync.WaitGroup
	for _, rep := range replicas {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			for range rotations {
				res, err := rep.Rotate(ctx)
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
	time.Sleep(20 * time.Millisecond)
	close(stop)
	wg.Wait()
	if f := failures.Load(); f != 0 {
		t.Fatalf("%d of %d reads/rotations failed during rotation; first: %v", f, reads.Load(), firstErr.Load())
	}
	if rotated.Load() == 0 || reads.Load() < 100 {
		t.Fatalf("test did too little: %d rotations, %d reads", rotated.Load(), reads.Load())
	}
	// Every secret ends under the newest KEK.
	for _, rep := range replicas {
		if err := rep.reloadKEKs(ctx); err != nil {
			t.Fatal(err)
		}
	}
	primary := replicas[0].ring.Primary()
	for i := range n {
		r, err := replicas[0].store.get(ctx, fmt.Sprintf("r%d", i))
		if err != nil {
			t.Fatal(err)
		}
		if got := kekOf(t, r.Envelope); got != primary {
			t.Fatalf("r%d under %s after the last rotation to %s", i, got, primary)
		}
	}
	t.Logf("%d rotations, %d reads, primary %s", rotated.Load(), reads.Load(), replicas[0].ring.Primary())
}

func TestSecretsNoReadFailsDuringRotation(t *testing.T) {
	store := fileStore(t)
	master := newKey(t)
	var reps []*Secrets
	for range 2 { // two "replicas" in one process share the store and its lock
		s, err := openSecrets(t.Context(), store, master, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		reps = append(reps, s)
	}
	rotateUnderLoad(t, reps, 4)
}

func TestSecretsRotationPostgresAdvisoryLock(t *testing.T) {
	dsn := testenv.PostgresURL(t)
	ctx := t.Context()
	prefix := testenv.Unique(t) + "_"
	master := newKey(t)
	var reps []*Secrets
	for range 2 { // two replicas: separate pools, one table, one advisory lock
		pool, err := pgxpool.New(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		store, err := openPGSecretStore(ctx, pool, prefix)
		if err != nil {
			t.Fatal(err)
		}
		s, err := openSecrets(ctx, store, master, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		reps = append(reps, s)
	}
	t.Cleanup(func() {
		pool, err := pgxpool.New(context.Background(), dsn)
		if err == nil {
			pool.Exec(context.Background(), `DROP TABLE IF EXISTS `+prefix+`secrets`)
			pool.Close()
		}
	})
	if a, b := reps[0].ring.Primary(), reps[1].ring.Primary(); a != b {
		t.Fatalf("replicas started with different KEKs %s, %s", a, b)
	}
	// The lock is exclusive across connections.
	unlock, ok, err := reps[0].store.tryLock(ctx)
	if err != nil || !ok {
		t.Fatalf("tryLock: %v %v", ok, err)
	}
	if _, ok2, err := reps[1].store.tryLock(ctx); err != nil || ok2 {
		t.Fatalf("second replica took a held advisory lock: %v %v", ok2, err)
	}
	if res, err := reps[1].Rotate(ctx); err != nil || !res.Skipped {
		t.Fatalf("Rotate while another replica holds the lock: %+v %v", res, err)
	}
	unlock()
	rotateUnderLoad(t, reps, 4)
}

func TestRotationWorkerStopsOnShutdown(t *testing.T) {
	cfg := testConfig(t)
	ts := newTestServer(t, cfg)
	if err := ts.secrets.Put(t.Context(), "w", []byte("x")); err != nil {
		t.Fatal(err)
	}
	before := ts.secrets.ring.Primary()
	ts.Go("kek-rotation-fast", ts.secrets.rotationWorker(10*time.Millisecond))
	ts.serve(t)
	deadline := time.Now().Add(5 * time.Second)
	for ts.secrets.ring.Primary() == before {
		if time.Now().After(deadline) {
			t.Fatal("the rotation worker never rotated")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := ts.stop(t); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	after := ts.secrets.ring.Primary()
	time.Sleep(50 * time.Millisecond)
	if ts.secrets.ring.Primary() != after {
		t.Fatal("the rotation worker kept running after shutdown")
	}
	if v, err := ts.secrets.Get(t.Context(), "w"); err != nil || string(v) != "x" {
		t.Fatalf("secret after rotations: %q %v", v, err)
	}
}

func TestSecretsRetireOldKEKs(t *testing.T) {
	ctx := t.Context()
	store := fileStore(t)
	master := newKey(t)
	sec, err := openSecrets(ctx, store, master, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := sec.Put(ctx, fmt.Sprintf("k%d", i), []byte(fmt.Sprintf("v%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	const rotations = 3 * keepKEKs
	for range rotations {
		if _, err := sec.Rotate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	keks, _ := store.list(ctx, kekPrefix)
	if len(keks) != keepKEKs {
		t.Fatalf("%d KEK records after %d rotations, want the newest %d", len(keks), rotations, keepKEKs)
	}
	if n := len(sec.ring.IDs()); n > keepKEKs+1 {
		t.Fatalf("the keyring holds %d KEKs", n)
	}
	// A fresh process opens everything with the retained KEKs.
	fresh, err := openSecrets(ctx, store, master, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if v, err := fresh.Get(ctx, fmt.Sprintf("k%d", i)); err != nil || string(v) != fmt.Sprintf("v%d", i) {
			t.Fatalf("k%d: %q %v", i, v, err)
		}
	}
	// A KEK still named by an envelope is never retired.
	old := keks[0].ID
	oldID := old[len(kekPrefix):]
	kek, err := sec.master.Open(keks[0].Envelope, []byte(kekAADPrefix+oldID))
	if err != nil {
		t.Fatal(err)
	}
	if err := sec.ring.SetPrimary(oldID); err != nil {
		t.Fatal(err)
	}
	clear(kek)
	if err := sec.Put(ctx, "pinned", []byte("p")); err != nil { // sealed under the old KEK
		t.Fatal(err)
	}
	if err := sec.reloadKEKs(ctx); err != nil { // back to the newest primary
		t.Fatal(err)
	}
	if p := sec.ring.Primary(); p != keks[len(keks)-1].ID[len(kekPrefix):] {
		t.Fatalf("primary %s after reload, want the newest KEK", p)
	}
	if err := sec.retireKEKs(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := store.get(ctx, old); err != nil {
		t.Fatalf("a KEK in use was retired: %v", err)
	}
}
