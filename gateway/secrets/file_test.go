package secrets

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func newKey(t *testing.T) []byte {
	t.Helper()
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func openVault(t *testing.T, s Store, master []byte) *Vault {
	t.Helper()
	v, err := Open(t.Context(), Config{Store: s, MasterKey: master})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func fileStore(t *testing.T) *FileStore {
	t.Helper()
	s, err := OpenFile(filepath.Join(t.TempDir(), "secrets.json"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestFilePersistence reopens the file: the records come back, the file holds
// no plaintext and is 0600; a damaged file is refused.
func TestFilePersistence(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "secrets.json")
	store, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	master := newKey(t)
	v := openVault(t, store, master)
	if err := v.Put(ctx, "a", []byte("alpha")); err != nil {
		t.Fatal(err)
	}
	if err := v.Put(ctx, "b", []byte("beta2")); err != nil {
		t.Fatal(err)
	}
	raw, err := readLimited(path, maxFileSize)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("alpha")) || bytes.Contains(raw, []byte("beta")) || !bytes.Contains(raw, []byte(FileFormat)) {
		t.Fatal("plaintext in the secrets file, or not the file format")
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secrets file mode %v, %v", fi.Mode(), err)
	}
	store2, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v2 := openVault(t, store2, master)
	for id, want := range map[string]string{"a": "alpha", "b": "beta2"} {
		if got, err := v2.Get(ctx, id); err != nil || string(got) != want {
			t.Fatalf("Get(%s) after reopen = %q, %v", id, got, err)
		}
	}
	for _, bad := range []string{`{"format":"other","secrets":{}}`, `{"format":"` + FileFormat + `","secrets":{"x":{"envelope":{},"version":0}}}`, `not json`} {
		p := filepath.Join(t.TempDir(), "bad.json")
		os.WriteFile(p, []byte(bad), 0o600)
		if _, err := OpenFile(p); err == nil {
			t.Fatalf("OpenFile accepted %s", bad)
		}
	}
	// A failed write changes nothing: the directory is gone.
	gone := filepath.Join(t.TempDir(), "sub")
	os.Mkdir(gone, 0o700)
	fs, err := OpenFile(filepath.Join(gone, "secrets.json"))
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(gone)
	if err := fs.Create(ctx, "x", []byte(`{}`)); err == nil {
		t.Fatal("Create succeeded without a directory")
	}
	if _, err := fs.Get(ctx, "x"); err != ErrNotFound {
		t.Fatalf("a failed Create left a record: %v", err)
	}
}

// TestRotationKeepsOldEnvelopesOpen checks that an envelope read before a
// rotation still opens after it, and that a held lock makes Rotate skip.
func TestRotationKeepsOldEnvelopesOpen(t *testing.T) {
	ctx := t.Context()
	store := fileStore(t)
	v := openVault(t, store, newKey(t))
	for i := range 5 {
		if err := v.Put(ctx, fmt.Sprintf("s%d", i), []byte(fmt.Sprintf("value-%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := store.Get(ctx, "s0")
	res, err := v.Rotate(ctx)
	if err != nil || res.Skipped || res.Rewrapped != 5 || res.KEKID != "kek-00000002" {
		t.Fatalf("Rotate: %+v %v", res, err)
	}
	if _, err := v.ring.Open(before.Envelope, []byte(secretAADPfx+"s0")); err != nil {
		t.Fatalf("pre-rotation envelope no longer opens: %v", err)
	}
	unlock, ok, _ := store.TryLock(ctx)
	if !ok {
		t.Fatal("lock not free")
	}
	if res, err := v.Rotate(ctx); err != nil || !res.Skipped {
		t.Fatalf("Rotate while locked: %+v %v", res, err)
	}
	unlock()
}

func TestRetireOldKEKs(t *testing.T) {
	ctx := t.Context()
	store := fileStore(t)
	master := newKey(t)
	v := openVault(t, store, master)
	for i := range 3 {
		if err := v.Put(ctx, fmt.Sprintf("k%d", i), []byte(fmt.Sprintf("v%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	const rotations = 3 * keepKEKs
	for range rotations {
		if _, err := v.Rotate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	keks, _ := store.List(ctx, KEKPrefix)
	if len(keks) != keepKEKs {
		t.Fatalf("%d KEK records after %d rotations, want the newest %d", len(keks), rotations, keepKEKs)
	}
	if n := len(v.ring.IDs()); n > keepKEKs+1 {
		t.Fatalf("the keyring holds %d KEKs", n)
	}
	fresh := openVault(t, store, master)
	for i := range 3 {
		if got, err := fresh.Get(ctx, fmt.Sprintf("k%d", i)); err != nil || string(got) != fmt.Sprintf("v%d", i) {
			t.Fatalf("k%d: %q %v", i, got, err)
		}
	}
	// A KEK still named by an envelope is never retired.
	old := keks[0].ID
	oldID := old[len(KEKPrefix):]
	if err := v.ring.SetPrimary(oldID); err != nil {
		t.Fatal(err)
	}
	if err := v.Put(ctx, "pinned", []byte("p")); err != nil { // sealed under the old KEK
		t.Fatal(err)
	}
	if err := v.reloadKEKs(ctx); err != nil { // back to the newest primary
		t.Fatal(err)
	}
	if p := v.PrimaryKEK(); p != keks[len(keks)-1].ID[len(KEKPrefix):] {
		t.Fatalf("primary %s after reload, want the newest KEK", p)
	}
	if err := v.retireKEKs(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Get(ctx, old); err != nil {
		t.Fatalf("a KEK in use was retired: %v", err)
	}
}

// TestRotateEveryStops runs the worker until a rotation happened, then ends
// its context: the worker returns and rotates no more.
func TestRotateEveryStops(t *testing.T) {
	store := fileStore(t)
	v := openVault(t, store, newKey(t))
	if err := v.Put(t.Context(), "w", []byte("x")); err != nil {
		t.Fatal(err)
	}
	before := v.PrimaryKEK()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- v.RotateEvery(5 * time.Millisecond)(ctx) }()
	for v.PrimaryKEK() == before {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("worker: %v", err)
	}
	after := v.PrimaryKEK()
	time.Sleep(20 * time.Millisecond)
	if v.PrimaryKEK() != after {
		t.Fatal("the rotation worker kept running after its context ended")
	}
	if got, err := v.Get(t.Context(), "w"); err != nil || string(got) != "x" {
		t.Fatalf("secret after rotations: %q %v", got, err)
	}
}

// TestErrorsNameNoSecret checks that no error of a failed operation quotes
// the master key, a KEK or a value.
func TestErrorsNameNoSecret(t *testing.T) {
	ctx := t.Context()
	store := fileStore(t)
	master := newKey(t)
	v := openVault(t, store, master)
	value := []byte("top-secret-value-123")
	if err := v.Put(ctx, "s", value); err != nil {
		t.Fatal(err)
	}
	var errs []error
	_, err := Open(ctx, Config{Store: store, MasterKey: newKey(t)})
	errs = append(errs, err)
	_, err = Open(ctx, Config{Store: store, MasterKey: master[:31]})
	errs = append(errs, err)
	errs = append(errs, v.Put(ctx, "s", make([]byte, MaxSecretSize+1)))
	r, _ := store.Get(ctx, "s")
	store.Create(ctx, "moved", r.Envelope)
	_, err = v.Get(ctx, "moved")
	errs = append(errs, err)
	for _, err := range errs {
		if err == nil {
			t.Fatal("a bad operation succeeded")
		}
		msg := fmt.Sprintf("%v %+v %#v", err, err, err)
		if strings.Contains(msg, string(value)) || bytes.Contains([]byte(msg), master) || strings.Contains(msg, fmt.Sprintf("%x", master)) {
			t.Fatalf("error leaks a secret: %s", msg)
		}
	}
}

// TestFileStoreAgeSurvivesReopen: the write time is in the file, so a
// restarted process does not rotate a fresh KEK again; a record from a file
// written before ages were recorded counts as due.
func TestFileStoreAgeSurvivesReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "secrets.json")
	s, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	master := newKey(t)
	openVault(t, s, master)
	s2, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	age, err := s2.Age(ctx, KEKPrefix+"kek-00000001")
	if err != nil || age > time.Hour {
		t.Fatalf("age of a fresh KEK after reopening: %v %v", age, err)
	}
	res, err := openVault(t, s2, master).RotateIfDue(ctx, time.Hour)
	if err != nil || !res.NotDue {
		t.Fatalf("RotateIfDue after a restart with a fresh KEK: %+v %v, want NotDue", res, err)
	}

	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	legacy := regexpWritten.ReplaceAll(raw, nil)
	if bytes.Equal(legacy, raw) {
		t.Fatal("the file records no write time")
	}
	if err := os.WriteFile(path, legacy, 0o600); err != nil {
		t.Fatal(err)
	}
	s3, err := OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	res, err = openVault(t, s3, master).RotateIfDue(ctx, time.Hour)
	if err != nil || res.Skipped || res.KEKID != "kek-00000002" {
		t.Fatalf("RotateIfDue on a KEK of unknown age: %+v %v, want a rotation to kek-00000002", res, err)
	}
}

var regexpWritten = regexp.MustCompile(`,\s*"written":\s*"[^"]*"`)
