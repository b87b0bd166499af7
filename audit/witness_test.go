package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/audit/audittest"
	"golang.org/x/mod/sumdb/note"
)

func witnessKey() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
}

func newWitness(t testing.TB) *audit.Witness {
	_, v := audittest.SignerVerifier(t)
	w, err := audit.NewWitness(audit.WitnessConfig{Name: "witness.example/w1", Signer: witnessKey(), Logs: []note.Verifier{v},
		Now: func() time.Time { return time.Unix(1700000000, 0) }})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func appendN(t *testing.T, l *audit.Log, from, to int) {
	for i := from; i < to; i++ {
		if _, err := l.Append(context.Background(), audittest.Event(i)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWitnessCosignsConsistentCheckpoints(t *testing.T) {
	ctx := context.Background()
	l := audittest.NewLog(t, audit.NewMemStore())
	w := newWitness(t)
	_, logV := audittest.SignerVerifier(t)
	srv := httptest.NewServer(w.Handler())
	defer srv.Close()
	anchor := &audit.HTTPAnchor{URL: srv.URL + "/add-checkpoint"}

	appendN(t, l, 0, 10)
	cp, err := l.AnchorCheckpoint(ctx, anchor, 0)
	if err != nil {
		t.Fatal(err)
	}
	got, ts, err := audit.VerifyCosigned(cp.Note, logV, "witness.example/w1", witnessKey().Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	if got.Size != 10 || ts.Unix() != 1700000000 {
		t.Fatalf("cosigned %d at %v", got.Size, ts)
	}
	// The log grew; the caller's idea of the witness's size is stale (0),
	// so the witness answers 409 and the client retries with its size.
	appendN(t, l, 10, 25)
	cp, err = l.AnchorCheckpoint(ctx, anchor, 0)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != 25 {
		t.Fatalf("size %d", cp.Size)
	}
	if _, _, err := audit.VerifyCosigned(cp.Note, logV, "witness.example/w1", witnessKey().Public().(ed25519.PublicKey)); err != nil {
		t.Fatal(err)
	}
	// A cosignature by another key does not count.
	if _, _, err := audit.VerifyCosigned(cp.Note, logV, "witness.example/w1", ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey)); err == nil {
		t.Fatal("cosignature of another key accepted")
	}
}

func TestWitnessRefusesFork(t *testing.T) {
	ctx := context.Background()
	honest := audittest.NewLog(t, audit.NewMemStore())
	forked := audittest.NewLog(t, audit.NewMemStore()) // same key, other history
	w := newWitness(t)
	appendN(t, honest, 0, 8)
	appendN(t, forked, 100, 108)
	if _, err := honest.AnchorCheckpoint(ctx, w, 0); err != nil {
		t.Fatal(err)
	}
	// Same size, other root: refused and recorded.
	_, err := forked.AnchorCheckpoint(ctx, w, 8)
	if !errors.Is(err, audit.ErrSplitView) {
		t.Fatalf("fork of one size: %v", err)
	}
	// Larger fork: the consistency proof cannot hold.
	appendN(t, forked, 108, 120)
	if _, err := forked.AnchorCheckpoint(ctx, w, 8); !errors.Is(err, audit.ErrSplitView) {
		t.Fatalf("larger fork: %v", err)
	}
	if n := len(w.SplitViews()); n != 2 {
		t.Fatalf("%d split views recorded", n)
	}
	latest, _ := w.Latest(ctx, audittest.Origin)
	if latest.Size != 8 {
		t.Fatal("fork moved the witness")
	}
	// The honest log keeps being cosigned.
	appendN(t, honest, 8, 9)
	if _, err := honest.AnchorCheckpoint(ctx, w, 8); err != nil {
		t.Fatal(err)
	}
	// The free detector sees the same split view from two notes.
	a, _ := honest.CheckpointAt(ctx, 8)
	b, _ := forked.CheckpointAt(ctx, 8)
	if err := audit.DetectSplitView(a, b, nil); !errors.Is(err, audit.ErrSplitView) {
		t.Fatalf("DetectSplitView: %v", err)
	}
	c, _ := honest.Checkpoint(ctx)
	p, _ := honest.ConsistencyProof(ctx, 8, c.Size)
	if err := audit.DetectSplitView(a, c, p); err != nil {
		t.Fatalf("consistent checkpoints flagged: %v", err)
	}
}

func TestWitnessHTTPErrors(t *testing.T) {
	w := newWitness(t)
	srv := httptest.NewServer(w.Handler())
	defer srv.Close()
	l := audittest.NewLog(t, audit.NewMemStore())
	appendN(t, l, 0, 3)
	cp, _ := l.Checkpoint(context.Background())
	other, _ := audit.NewNoteSigner("other.example/log", witnessKey())
	unknown, _ := audit.SignCheckpoint(audit.Checkpoint{Origin: "other.example/log", Size: 1}, other)
	tampered := bytes.Replace(cp.Note, []byte("\n3\n"), []byte("\n4\n"), 1)
	cases := map[string]struct {
		body []byte
		code int
	}{
		"ok":          {audit.FormatAddCheckpoint(0, nil, cp.Note), 200},
		"stale old":   {audit.FormatAddCheckpoint(0, nil, cp.Note), 409},
		"unknown log": {audit.FormatAddCheckpoint(0, nil, unknown.Note), 404},
		"bad sig":     {audit.FormatAddCheckpoint(3, nil, tampered), 403},
		"malformed":   {[]byte("old x\n\n"), 400},
	}
	for _, name := range []string{"ok", "stale old", "unknown log", "bad sig", "malformed"} {
		c := cases[name]
		resp, err := srv.Client().Post(srv.URL+"/add-checkpoint", "text/plain", bytes.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.code {
			t.Errorf("%s: status %d, want %d", name, resp.StatusCode, c.code)
		}
		if name == "stale old" && !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/x.tlog.size") {
			t.Errorf("409 content type %q", resp.Header.Get("Content-Type"))
		}
	}
}

func TestEvidenceBundle(t *testing.T) {
	ctx := context.Background()
	l := audittest.NewLog(t, audit.NewMemStore())
	for i := range 40 {
		e := audittest.Event(i)
		e.Meta["html"] = "<b>&</b>\u2028"
		if _, err := l.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := l.ExportBundle(ctx, 5, 25, audit.BundleOptions{RedactionLevel: "safe_default"})
	if err != nil {
		t.Fatal(err)
	}
	_, v := audittest.SignerVerifier(t)
	evs, cp, err := audit.VerifyBundle(raw, v)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 20 || evs[0].RequestID != "req-5" || cp.Size != 40 {
		t.Fatalf("%d events, size %d", len(evs), cp.Size)
	}
	// Removing an event, altering one, or swapping the checkpoint fails.
	var b audit.EvidenceBundle
	mustUnmarshal(t, raw, &b)
	b.Events = append(b.Events[:3], b.Events[4:]...)
	b.Integrity.TotalEvents--
	if _, _, err := audit.VerifyBundle(mustMarshal(t, b), v); err == nil {
		t.Fatal("gap accepted")
	}
	b = audit.EvidenceBundle{}
	mustUnmarshal(t, raw, &b)
	b.Events[2].Event = []byte(strings.Replace(string(b.Events[2].Event), "req-7", "req-x", 1))
	if _, _, err := audit.VerifyBundle(mustMarshal(t, b), v); err == nil {
		t.Fatal("altered event accepted")
	}
	b = audit.EvidenceBundle{}
	mustUnmarshal(t, raw, &b)
	other := audittest.NewLog(t, audit.NewMemStore())
	appendN(t, other, 0, 40)
	ocp, _ := other.Checkpoint(ctx)
	b.Transparency.Checkpoint = string(ocp.Note)
	if _, _, err := audit.VerifyBundle(mustMarshal(t, b), v); err == nil {
		t.Fatal("bundle against another tree accepted")
	}
}

func TestVerifyInclusionAllocs(t *testing.T) {
	ctx := context.Background()
	l := audittest.NewLog(t, audit.NewMemStore())
	var r audit.Receipt
	for i := range 100 {
		r, _ = l.Append(ctx, audittest.Event(i))
	}
	cp, _ := l.Checkpoint(ctx)
	p, err := l.InclusionProof(ctx, r.Index, cp.Size)
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		if err := audit.VerifyInclusion(p, cp, r.Index, r.LeafHash); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Fatalf("VerifyInclusion allocates %.1f times per call, want 0", n)
	}
}

type failingWitnessStore struct{}

func (failingWitnessStore) Latest(context.Context, string) ([]byte, error) {
	return nil, audit.StoreError("down", nil)
}
func (failingWitnessStore) Swap(context.Context, string, []byte, []byte) error {
	return audit.StoreError("down", nil)
}

func TestWitnessRememberAcrossRestart(t *testing.T) {
	ctx := context.Background()
	_, v := audittest.SignerVerifier(t)
	state := audit.NewMemWitnessStore()
	mk := func(st audit.WitnessStore) *audit.Witness {
		w, err := audit.NewWitness(audit.WitnessConfig{Name: "witness.example/w1", Signer: witnessKey(), Logs: []note.Verifier{v}, State: st})
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	honest := audittest.NewLog(t, audit.NewMemStore())
	forked := audittest.NewLog(t, audit.NewMemStore())
	appendN(t, honest, 0, 5)
	appendN(t, forked, 50, 55)
	if _, err := honest.AnchorCheckpoint(ctx, mk(state), 0); err != nil {
		t.Fatal(err)
	}
	// A new witness process over the same state still refuses the fork.
	if _, err := forked.AnchorCheckpoint(ctx, mk(state), 5); !errors.Is(err, audit.ErrSplitView) {
		t.Fatalf("restarted witness: %v", err)
	}
	// A witness whose state cannot be read cosigns nothing.
	if _, err := honest.AnchorCheckpoint(ctx, mk(failingWitnessStore{}), 0); err == nil {
		t.Fatal("witness without state cosigned")
	}
}
