package main

import (
	"testing"
	"time"
)

// The secret store, KEK rotation and its PostgreSQL lock are tested in
// gateway/secrets (secretstest on the file and PostgreSQL stores); this is
// the server's wiring: the rotation worker it starts stops at shutdown.
func TestRotationWorkerStopsOnShutdown(t *testing.T) {
	cfg := testConfig(t)
	ts := newTestServer(t, cfg)
	if err := ts.secrets.Put(t.Context(), "w", []byte("x")); err != nil {
		t.Fatal(err)
	}
	before := ts.secrets.PrimaryKEK()
	ts.Go("kek-rotation-fast", ts.secrets.RotateEvery(10*time.Millisecond))
	ts.serve(t)
	deadline := time.Now().Add(5 * time.Second)
	for ts.secrets.PrimaryKEK() == before {
		if time.Now().After(deadline) {
			t.Fatal("the rotation worker never rotated")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := ts.stop(t); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	after := ts.secrets.PrimaryKEK()
	time.Sleep(50 * time.Millisecond)
	if ts.secrets.PrimaryKEK() != after {
		t.Fatal("the rotation worker kept running after shutdown")
	}
	if v, err := ts.secrets.Get(t.Context(), "w"); err != nil || string(v) != "x" {
		t.Fatalf("secret after rotations: %q %v", v, err)
	}
}
