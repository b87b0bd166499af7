package audit_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"testing"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/audit/audittest"
	"github.com/talosgo/talos/contracts"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// bundleLogSize is the size of the log the bundle fuzzers export from.
const bundleLogSize = 12

// bundleFixture is a log of bundleLogSize events, its verifier, and the
// sealed bytes of every event by index: the only events a bundle signed by
// the log's key may carry.
type bundleFixture struct {
	v       note.Verifier
	genuine [][]byte
	export  func(start, end uint64) []byte
}

func newBundleFixture(tb testing.TB) *bundleFixture {
	ctx := context.Background()
	l := audittest.NewLog(tb, audit.NewMemStore())
	for i := range bundleLogSize {
		if _, err := l.Append(ctx, audittest.Event(i)); err != nil {
			tb.Fatal(err)
		}
	}
	_, v := audittest.SignerVerifier(tb)
	fx := &bundleFixture{v: v}
	fx.export = func(start, end uint64) []byte {
		raw, err := l.ExportBundle(ctx, start, end, audit.BundleOptions{})
		if err != nil {
			tb.Fatal(err)
		}
		return raw
	}
	var b audit.EvidenceBundle
	if err := json.Unmarshal(fx.export(0, bundleLogSize), &b); err != nil {
		tb.Fatal(err)
	}
	for _, be := range b.Events {
		fx.genuine = append(fx.genuine, []byte(be.Event))
	}
	return fx
}

// checkAccepted checks what VerifyBundle returned for raw: on error a typed
// *contracts.Error; on success events that are the log's own at the
// bundle's indexes, each proven in the returned checkpoint by the bundle's
// proofs when recomputed from the re-encoded event.
func (fx *bundleFixture) checkAccepted(t *testing.T, raw []byte) ([]*audit.Event, bool) {
	t.Helper()
	evs, cp, err := audit.VerifyBundle(raw, fx.v)
	if err != nil {
		if contracts.CodeOf(err) == "" {
			t.Fatalf("untyped error %v", err)
		}
		return nil, false
	}
	var b audit.EvidenceBundle
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatalf("accepted bundle does not decode: %v", err)
	}
	if len(evs) == 0 || len(evs) != len(b.Events) || cp.Size == 0 || cp.Size > bundleLogSize {
		t.Fatalf("accepted: %d events for %d bundle events, checkpoint size %d", len(evs), len(b.Events), cp.Size)
	}
	for i, e := range evs {
		idx := b.Events[i].Index
		enc, err := e.MarshalCanonical()
		if err != nil {
			t.Fatal(err)
		}
		if idx >= cp.Size || !bytes.Equal(enc, fx.genuine[idx]) {
			t.Fatalf("accepted event %d (index %d) is not the log's:\n%s", i, idx, enc)
		}
		proof := make(tlog.RecordProof, len(b.Events[i].Proof))
		for j, s := range b.Events[i].Proof {
			h, err := base64.StdEncoding.DecodeString(s)
			if err != nil || len(h) != tlog.HashSize {
				t.Fatalf("accepted a bad proof hash %q", s)
			}
			proof[j] = tlog.Hash(h)
		}
		if err := audit.VerifyInclusion(proof, cp, idx, audit.LeafHash(enc)); err != nil {
			t.Fatalf("accepted event %d does not verify on its own: %v", i, err)
		}
	}
	return evs, true
}

// FuzzVerifyBundle: never panics; errors are typed; an accepted bundle
// carries only the log's own events, each independently provable.
//
// Every exec verifies signatures and proofs, so minimizing an input takes
// long: fuzz with -fuzzminimizetime=100x.
func FuzzVerifyBundle(f *testing.F) {
	fx := newBundleFixture(f)
	// Small bundles only: the fuzzer minimizes every accepted variant, and
	// each exec verifies every event's proof.
	f.Add(fx.export(3, 5))
	f.Add(fx.export(bundleLogSize-1, bundleLogSize))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"events":[],"integrity_summary":{"total_events":0}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		fx.checkAccepted(t, raw)
	})
}

// sameEvents reports whether two event lists encode identically.
func sameEvents(t *testing.T, a, b []*audit.Event) bool {
	t.Helper()
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, err1 := a[i].MarshalCanonical()
		y, err2 := b[i].MarshalCanonical()
		if err1 != nil || err2 != nil || !bytes.Equal(x, y) {
			return false
		}
	}
	return true
}

// FuzzVerifyBundleMutation: a valid bundle with one byte replaced is
// rejected, or yields exactly the original events.
func FuzzVerifyBundleMutation(f *testing.F) {
	fx := newBundleFixture(f)
	base := fx.export(4, 6)
	want, _, err := audit.VerifyBundle(base, fx.v)
	if err != nil {
		f.Fatalf("the exported bundle does not verify: %v", err)
	}
	for _, pos := range []uint32{0, 10, uint32(len(base) / 2), uint32(len(base) - 1)} {
		f.Add(pos, byte('0'))
	}
	f.Fuzz(func(t *testing.T, pos uint32, val byte) {
		raw := bytes.Clone(base)
		i := int(pos % uint32(len(raw)))
		if raw[i] == val {
			return
		}
		raw[i] = val
		if got, ok := fx.checkAccepted(t, raw); ok && !sameEvents(t, got, want) {
			t.Fatalf("byte %d set to %q: accepted with different events", i, val)
		}
	})
}

// TestVerifyBundleSingleByteMutations sweeps every byte of a one-event
// bundle with two substitutions (a low bit flip and an ASCII case or
// space/quote flip).
func TestVerifyBundleSingleByteMutations(t *testing.T) {
	fx := newBundleFixture(t)
	base := fx.export(5, 6)
	want, ok := fx.checkAccepted(t, base)
	if !ok {
		t.Fatal("the exported bundle does not verify")
	}
	accepted := 0
	for i := range base {
		for _, x := range []byte{0x01, 0x20} {
			raw := bytes.Clone(base)
			raw[i] ^= x
			got, ok := fx.checkAccepted(t, raw)
			if !ok {
				continue
			}
			accepted++
			if !sameEvents(t, got, want) {
				t.Fatalf("byte %d xor %#x: accepted with different events", i, x)
			}
		}
	}
	t.Logf("%d bytes, %d mutations accepted with identical events (metadata)", len(base), accepted)
}
