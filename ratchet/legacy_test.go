package ratchet

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/internal/testenv"
)

// ownVectors reads one of this package's vector files under
// contracts/testdata/ratchet (not embedded in contracts: they are the
// ratchet's own).
func ownVectors(t testing.TB, name string) []contracts.Vector {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(t), "contracts", "testdata", "ratchet", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Vectors []contracts.Vector `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Vectors) == 0 {
		t.Fatalf("%s has no vectors", name)
	}
	return f.Vectors
}

// TestLegacyBundleVectors: bundles as the Python SDK writes them (padded
// standard base64) are read by ParseBundleLegacy, verify, and re-encode in
// the contract form; the strict ParseBundle refuses them.
func TestLegacyBundleVectors(t *testing.T) {
	for _, v := range ownVectors(t, "prekey_bundle_legacy") {
		t.Run(v.Name, func(t *testing.T) {
			var in struct{ Path, Bundle string }
			if err := json.Unmarshal(v.Input, &in); err != nil {
				t.Fatal(err)
			}
			parse := ParseBundle
			if in.Path == "legacy" {
				parse = ParseBundleLegacy
			}
			b, err := parse([]byte(in.Bundle))
			if got := contracts.Outcome(err); got != v.Expect {
				t.Fatalf("outcome %s (%v), want %s", got, err, v.Expect)
			}
			if err != nil {
				return
			}
			var out struct{ Canonical, DID string }
			if err := json.Unmarshal(v.Output, &out); err != nil {
				t.Fatal(err)
			}
			if err := b.Verify(); err != nil {
				t.Fatalf("signature: %v", err)
			}
			c, err := b.MarshalJSON()
			if err != nil || string(c) != out.Canonical {
				t.Fatalf("canonical form %s %v, want %s", c, err, out.Canonical)
			}
			if d, err := b.DID(); err != nil || d.String() != out.DID {
				t.Fatalf("DID %v %v", d, err)
			}
			// The contract form reads on the strict path.
			if _, err := ParseBundle(c); err != nil {
				t.Fatalf("strict re-read: %v", err)
			}
			// A session set up from a legacy-read bundle works.
			if _, err := Initiate(b, Config{}); err != nil {
				t.Fatalf("initiate: %v", err)
			}
		})
	}
}

// FuzzParseBundleLegacy: the legacy reader never panics, fails only with
// TALOS_INVALID_INPUT, and what it accepts re-encodes to a bundle the strict
// reader accepts with the same bytes.
func FuzzParseBundleLegacy(f *testing.F) {
	for _, v := range ownVectors(f, "prekey_bundle_legacy") {
		var in struct{ Bundle string }
		if json.Unmarshal(v.Input, &in) == nil {
			f.Add([]byte(in.Bundle))
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		b, err := ParseBundleLegacy(raw)
		if err != nil {
			if contracts.CodeOf(err) != contracts.CodeInvalidInput {
				t.Fatalf("error code %s", contracts.CodeOf(err))
			}
			return
		}
		c, err := b.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		b2, err := ParseBundle(c)
		if err != nil {
			t.Fatalf("re-encoded bundle refused by the strict path: %v", err)
		}
		c2, _ := b2.MarshalJSON()
		if string(c) != string(c2) {
			t.Fatal("legacy bundle does not round-trip")
		}
	})
}
