// Package ratchettest is the conformance suite every ratchet.SessionStore
// implementation runs from its own tests.
package ratchettest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io/fs"
	"strconv"
	"sync"
	"testing"

	"github.com/talosgo/talos/identity"
	"github.com/talosgo/talos/ratchet"
)

// Run exercises a SessionStore. newStore must return an empty store,
// isolated from every other call (for example with a unique table prefix).
func Run(t *testing.T, newStore func(t *testing.T) ratchet.SessionStore) {
	t.Run("NotFound", func(t *testing.T) {
		s := newStore(t)
		_, _, err := s.Load(t.Context(), "missing")
		if !errors.Is(err, ratchet.ErrNotFound) || !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Load(missing) = %v, want ErrNotFound wrapping fs.ErrNotExist", err)
		}
	})
	t.Run("ConditionalSave", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		v, err := s.Save(ctx, "a", 0, []byte("one"))
		if err != nil || v != 1 {
			t.Fatalf("first Save = %d, %v", v, err)
		}
		if _, err := s.Save(ctx, "a", 0, []byte("dup")); !errors.Is(err, ratchet.ErrConflict) {
			t.Fatalf("Save(expected 0) on an existing id = %v, want ErrConflict", err)
		}
		for _, bad := range []uint64{2, 7} {
			if _, err := s.Save(ctx, "a", bad, []byte("x")); !errors.Is(err, ratchet.ErrConflict) {
				t.Fatalf("Save(expected %d) at version 1 = %v, want ErrConflict", bad, err)
			}
		}
		if _, err := s.Save(ctx, "missing", 3, []byte("x")); !errors.Is(err, ratchet.ErrConflict) {
			t.Fatalf("Save(expected 3) on a missing id = %v, want ErrConflict", err)
		}
		expectLoad(t, s, "a", "one", 1)
		v, err = s.Save(ctx, "a", 1, []byte("two"))
		if err != nil || v != 2 {
			t.Fatalf("second Save = %d, %v", v, err)
		}
		if _, err := s.Save(ctx, "a", 1, []byte("stale")); !errors.Is(err, ratchet.ErrConflict) {
			t.Fatalf("stale Save = %v, want ErrConflict", err)
		}
		expectLoad(t, s, "a", "two", 2)
		if _, _, err := s.Load(ctx, "missing"); !errors.Is(err, ratchet.ErrNotFound) {
			t.Fatalf("a failed Save created the id: %v", err)
		}
	})
	t.Run("Isolation", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		blob := []byte("mine")
		if _, err := s.Save(ctx, "x", 0, blob); err != nil {
			t.Fatal(err)
		}
		blob[0] = 'M' // the store kept its own copy
		got, _, err := s.Load(ctx, "x")
		if err != nil {
			t.Fatal(err)
		}
		got[1] = 'I'
		expectLoad(t, s, "x", "mine", 1)
		if _, err := s.Save(ctx, "y", 0, []byte("other")); err != nil {
			t.Fatal(err)
		}
		expectLoad(t, s, "x", "mine", 1)
	})
	t.Run("Delete", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		if err := s.Delete(ctx, "never"); err != nil {
			t.Fatalf("Delete(unknown) = %v", err)
		}
		if _, err := s.Save(ctx, "d", 0, []byte("v")); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "d"); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Load(ctx, "d"); !errors.Is(err, ratchet.ErrNotFound) {
			t.Fatalf("Load after Delete = %v", err)
		}
		if v, err := s.Save(ctx, "d", 0, []byte("again")); err != nil || v != 1 {
			t.Fatalf("Save after Delete = %d, %v", v, err)
		}
	})
	t.Run("OddIDsAndLargeBlobs", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		big := make([]byte, 300<<10)
		rand.Read(big)
		for _, id := range []string{"did:key:z6Mk/with spaces", `quote"s'`, "ünïcode", "tab\tnewline\n"} {
			if _, err := s.Save(ctx, id, 0, big); err != nil {
				t.Fatalf("Save(%q): %v", id, err)
			}
			got, v, err := s.Load(ctx, id)
			if err != nil || v != 1 || !bytes.Equal(got, big) {
				t.Fatalf("Load(%q) = %d bytes, v%d, %v", id, len(got), v, err)
			}
		}
	})
	t.Run("CanceledContext", func(t *testing.T) {
		s := newStore(t)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := s.Save(ctx, "c", 0, []byte("x")); err == nil {
			t.Fatal("Save with a canceled context succeeded")
		}
		if _, _, err := s.Load(ctx, "c"); err == nil {
			t.Fatalf("Load with a canceled context = %v", err)
		}
	})
	t.Run("ConcurrentReadModifyWrite", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		if _, err := s.Save(ctx, "ctr", 0, binary.BigEndian.AppendUint64(nil, 0)); err != nil {
			t.Fatal(err)
		}
		const workers, each = 4, 10
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for done := 0; done < each; {
					b, v, err := s.Load(ctx, "ctr")
					if err != nil {
						errs <- err
						return
					}
					n := binary.BigEndian.Uint64(b) + 1
					_, err = s.Save(ctx, "ctr", v, binary.BigEndian.AppendUint64(nil, n))
					if errors.Is(err, ratchet.ErrConflict) {
						continue
					}
					if err != nil {
						errs <- err
						return
					}
					done++
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		b, v, err := s.Load(ctx, "ctr")
		if err != nil {
			t.Fatal(err)
		}
		if n := binary.BigEndian.Uint64(b); n != workers*each || v != workers*each+1 {
			t.Fatalf("counter %d at version %d, want %d at %d: a conditional Save lost an update", n, v, workers*each, workers*each+1)
		}
	})
	t.Run("SealedSessions", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		kr := identity.NewKeyring()
		kek := make([]byte, 32)
		rand.Read(kek)
		if err := kr.Add("k1", kek); err != nil {
			t.Fatal(err)
		}
		if err := kr.SetPrimary("k1"); err != nil {
			t.Fatal(err)
		}
		w, err := identity.GenerateWallet("bob")
		if err != nil {
			t.Fatal(err)
		}
		p, err := ratchet.GeneratePrekey(w.Signer(), nil)
		if err != nil {
			t.Fatal(err)
		}
		alice, err := ratchet.Initiate(p.Bundle(), ratchet.Config{})
		if err != nil {
			t.Fatal(err)
		}
		bob, err := ratchet.Accept(p, ratchet.Config{})
		if err != nil {
			t.Fatal(err)
		}
		v := uint64(0)
		for i := range 5 {
			msg := "m" + strconv.Itoa(i)
			wire, err := alice.Encrypt([]byte(msg))
			if err != nil {
				t.Fatal(err)
			}
			if i > 0 {
				if bob, v, err = ratchet.LoadSession(ctx, s, kr, "bob/alice", ratchet.Config{}); err != nil {
					t.Fatal(err)
				}
			}
			pt, err := bob.Decrypt(wire)
			if err != nil || string(pt) != msg {
				t.Fatalf("message %d after reload: %q, %v", i, pt, err)
			}
			if v, err = ratchet.SaveSession(ctx, s, kr, "bob/alice", v, bob); err != nil {
				t.Fatal(err)
			}
		}
		// A blob copied to another id does not open there.
		blob, _, err := s.Load(ctx, "bob/alice")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Save(ctx, "bob/mallory", 0, blob); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ratchet.LoadSession(ctx, s, kr, "bob/mallory", ratchet.Config{}); err == nil {
			t.Fatal("a sealed state opened under another id")
		}
	})
}

func expectLoad(t *testing.T, s ratchet.SessionStore, id, want string, wantV uint64) {
	t.Helper()
	got, v, err := s.Load(t.Context(), id)
	if err != nil || string(got) != want || v != wantV {
		t.Fatalf("Load(%q) = %q, v%d, %v; want %q, v%d", id, got, v, err, want, wantV)
	}
}
