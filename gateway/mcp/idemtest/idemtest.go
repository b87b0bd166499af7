// Package idemtest is the conformance test of mcp.IdempotencyStore
// implementations.
package idemtest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/talosgo/talos/gateway/mcp"
)

// Run checks store against the IdempotencyStore contract: a claim holds a
// key until it expires, a held key returns its record (in flight, then
// done with its result or failure code), Release frees an in-flight key
// but not a done one, and an expired key is claimed anew. Keys are random,
// so stores may be shared between runs.
func Run(t *testing.T, store mcp.IdempotencyStore) {
	ctx := t.Context()
	key := func() string {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		return hex.EncodeToString(b)
	}
	k := key()
	if _, ok, err := store.Claim(ctx, k, "d1", time.Hour); !ok || err != nil {
		t.Fatalf("first claim: %v %v", ok, err)
	}
	rec, ok, err := store.Claim(ctx, k, "d2", time.Hour)
	if ok || err != nil || rec.Digest != "d1" || rec.Done {
		t.Fatalf("claim of a key in flight: %+v %v %v", rec, ok, err)
	}
	if err := store.Complete(ctx, k, mcp.IdempotencyRecord{Digest: "d1", Done: true, Result: []byte(`{"content":[]}`)}); err != nil {
		t.Fatal(err)
	}
	rec, ok, err = store.Claim(ctx, k, "d1", time.Hour)
	if ok || err != nil || !rec.Done || !bytes.Equal(rec.Result, []byte(`{"content":[]}`)) || rec.Code != "" {
		t.Fatalf("claim of a done key: %+v %v %v", rec, ok, err)
	}
	if err := store.Release(ctx, k); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := store.Claim(ctx, k, "d1", time.Hour); ok {
		t.Fatal("Release freed a done key")
	}

	f := key()
	store.Claim(ctx, f, "d", time.Hour)
	if err := store.Complete(ctx, f, mcp.IdempotencyRecord{Digest: "d", Done: true, Code: "UPSTREAM_TIMEOUT"}); err != nil {
		t.Fatal(err)
	}
	if rec, _, _ := store.Claim(ctx, f, "d", time.Hour); rec.Code != "UPSTREAM_TIMEOUT" || !rec.Done {
		t.Fatalf("failed call: %+v", rec)
	}

	r := key()
	store.Claim(ctx, r, "d", time.Hour)
	if err := store.Release(ctx, r); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := store.Claim(ctx, r, "d3", time.Hour); !ok || err != nil {
		t.Fatalf("claim after Release: %v %v", ok, err)
	}

	// A key claimed with a TTL already past is expired: claimed anew.
	e := key()
	if _, ok, err := store.Claim(ctx, e, "old", -time.Second); !ok || err != nil {
		t.Fatalf("claim: %v %v", ok, err)
	}
	if rec, ok, err := store.Claim(ctx, e, "new", time.Hour); !ok || err != nil || rec.Digest != "new" {
		t.Fatalf("claim of an expired key: %+v %v %v", rec, ok, err)
	}
	if rec, ok, _ := store.Claim(ctx, e, "x", time.Hour); ok || rec.Digest != "new" || rec.Done {
		t.Fatalf("the new claim: %+v %v", rec, ok)
	}
}
