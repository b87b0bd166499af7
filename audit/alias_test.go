package audit_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/audit/audittest"
)

// TestAppendEntryDoesNotAliasInput: AppendEntry's fast path reads the
// event without copying it; overwriting the caller's buffer afterwards must
// change neither the receipt nor the stored entry.
func TestAppendEntryDoesNotAliasInput(t *testing.T) {
	ctx := context.Background()
	l := audittest.NewLog(t, audit.NewMemStore())
	e := richEvent(3)
	sealed, err := e.Seal()
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(sealed)
	rec, err := l.AppendEntry(ctx, sealed)
	if err != nil {
		t.Fatal(err)
	}
	hash := rec.EventHash
	for i := range sealed {
		sealed[i] = 'x'
	}
	if rec.EventHash != hash || hash != e.EventHash {
		t.Fatalf("receipt event hash changed with the input buffer: %q", rec.EventHash)
	}
	got, err := l.Entry(ctx, rec.Index)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("stored entry changed with the input buffer")
	}
}
