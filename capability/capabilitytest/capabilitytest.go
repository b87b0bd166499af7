// Package capabilitytest is the conformance suite for the back-ends of
// package capability: every RevocationStore and ReplayStore implementation
// runs it from its own tests.
package capabilitytest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/talosgo/talos/capability"
)

// RunRevocationStore exercises a RevocationStore. newStore must return an
// empty store that no other test uses. If the store is a
// capability.RevocationWatcher, a second store from newStore must share
// its state (as two processes sharing one server do), and the suite checks
// that revocations made through one reach watchers of the other.
//
// wait lets time pass for the store's TTLs: time.Sleep for real servers,
// a fast-forward for simulated ones. If nil, time.Sleep.
func RunRevocationStore(t *testing.T, newStore func(t *testing.T) capability.RevocationStore, wait func(time.Duration)) {
	if wait == nil {
		wait = time.Sleep
	}
	ctx := context.Background()
	t.Run("RevokeAndCheck", func(t *testing.T) {
		s := newStore(t)
		if r, err := s.AnyRevoked(ctx, []string{"hash:a", "nonce:b"}); err != nil || r {
			t.Fatalf("empty store: revoked=%v err=%v", r, err)
		}
		if r, err := s.AnyRevoked(ctx, nil); err != nil || r {
			t.Fatalf("no keys: revoked=%v err=%v", r, err)
		}
		if err := s.Revoke(ctx, "nonce:b", time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if r, err := s.AnyRevoked(ctx, []string{"hash:a", "nonce:b"}); err != nil || !r {
			t.Fatalf("after revoke: revoked=%v err=%v", r, err)
		}
		if r, err := s.AnyRevoked(ctx, []string{"hash:a"}); err != nil || r {
			t.Fatalf("other key: revoked=%v err=%v", r, err)
		}
		if err := s.Revoke(ctx, "", time.Time{}); err == nil {
			t.Fatal("empty key accepted")
		}
	})
	t.Run("Expiry", func(t *testing.T) {
		s := newStore(t)
		if err := s.Revoke(ctx, "hash:short", time.Now().Add(150*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		if err := s.Revoke(ctx, "hash:forever", time.Time{}); err != nil {
			t.Fatal(err)
		}
		// A shorter deadline never shortens an existing revocation.
		if err := s.Revoke(ctx, "hash:forever", time.Now().Add(100*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
		wait(300 * time.Millisecond)
		if r, err := s.AnyRevoked(ctx, []string{"hash:short"}); err != nil || r {
			t.Fatalf("expired revocation still reported: %v %v", r, err)
		}
		if r, err := s.AnyRevoked(ctx, []string{"hash:forever"}); err != nil || !r {
			t.Fatalf("permanent revocation lost: %v %v", r, err)
		}
	})
	t.Run("Watch", func(t *testing.T) {
		s := newStore(t)
		w, ok := s.(capability.RevocationWatcher)
		if !ok {
			t.Skip("store is not a RevocationWatcher")
		}
		other := newStore(t)
		got := make(chan string, 16)
		live, stop := w.WatchRevocations(func(k string) { got <- k })
		defer stop()
		waitFor(t, live, "feed to become live")
		drain(got)
		if err := other.Revoke(ctx, "hash:watched", time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		deadline := time.After(5 * time.Second)
		for {
			select {
			case k := <-got:
				if k == "hash:watched" {
					return
				}
			case <-deadline:
				t.Fatal("revocation through another store never reached the watcher")
			}
		}
	})
}

func drain(c chan string) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// RunReplayStore exercises a ReplayStore (identity.NonceStore); wait is as
// for RunRevocationStore.
func RunReplayStore(t *testing.T, newStore func(t *testing.T) capability.ReplayStore, wait func(time.Duration)) {
	if wait == nil {
		wait = time.Sleep
	}
	ctx := context.Background()
	t.Run("FirstThenReplay", func(t *testing.T) {
		s := newStore(t)
		for i, want := range []bool{true, false, false} {
			first, err := s.Claim(ctx, "k1", time.Minute)
			if err != nil || first != want {
				t.Fatalf("claim %d: first=%v err=%v", i, first, err)
			}
		}
		if first, err := s.Claim(ctx, "k2", time.Minute); err != nil || !first {
			t.Fatalf("other key: %v %v", first, err)
		}
	})
	t.Run("TTL", func(t *testing.T) {
		s := newStore(t)
		if first, err := s.Claim(ctx, "short", 100*time.Millisecond); err != nil || !first {
			t.Fatal(first, err)
		}
		wait(250 * time.Millisecond)
		if first, err := s.Claim(ctx, "short", time.Minute); err != nil || !first {
			t.Fatalf("key not forgotten after its ttl: %v %v", first, err)
		}
	})
	t.Run("Concurrent", func(t *testing.T) {
		s := newStore(t)
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := 0; i < 16; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				first, err := s.Claim(ctx, "race", time.Minute)
				if err != nil {
					t.Error(err)
				}
				if first {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%d concurrent claims won, want 1", wins.Load())
		}
	})
}
