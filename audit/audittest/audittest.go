// Package audittest is the conformance suite of audit.Store
// implementations. Every back-end runs [Run] from its own tests:
//
//	func TestConformance(t *testing.T) {
//		audittest.Run(t, func(t *testing.T) audit.Store { return newStore(t) })
//	}
package audittest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/contracts"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Origin is the origin of the logs the suite builds.
const Origin = "example.com/audittest"

// Key returns the fixed Ed25519 key of the suite's logs.
func Key() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
}

// SignerVerifier returns the note signer and verifier of the suite's key.
func SignerVerifier(t testing.TB) (note.Signer, note.Verifier) {
	t.Helper()
	k := Key()
	s, err := audit.NewNoteSigner(Origin, k)
	if err != nil {
		t.Fatal(err)
	}
	v, err := audit.NewVerifier(Origin, k.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

// NewLog returns a Log over s with the suite's key.
func NewLog(t testing.TB, s audit.Store) *audit.Log {
	t.Helper()
	signer, verifier := SignerVerifier(t)
	l, err := audit.New(context.Background(), audit.Config{Store: s, Signer: signer, Verifier: verifier})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

var base = time.Date(2026, 1, 11, 18, 0, 0, 0, time.UTC)

// Event returns the i-th deterministic test event: a second apart, three
// principals and two surfaces in rotation.
func Event(i int) audit.Event {
	ts := base.Add(time.Duration(i) * time.Second)
	return audit.Event{
		SchemaID: audit.EventSchemaID, SchemaVersion: audit.EventSchemaVersion,
		EventID:   eventID(ts, i),
		TS:        ts.Format(audit.TimeFormat),
		RequestID: "req-" + strconv.Itoa(i),
		SurfaceID: []string{"llm.invoke", "admin.write"}[i%2],
		Outcome:   audit.OutcomeSuccess,
		Principal: audit.BearerPrincipal("p-"+strconv.Itoa(i%3), "t-1"),
		HTTP:      audit.HTTPInfo{Method: "POST", Path: "/v1/chat/completions", StatusCode: 200},
		Meta:      map[string]any{"n": i},
	}
}

// eventID is a deterministic UUIDv7 for (ts, i).
func eventID(ts time.Time, i int) string {
	ms := ts.UnixMilli()
	return fmt.Sprintf("%08x-%04x-7000-8000-%012x", ms>>16, ms&0xffff, i)
}

// Run runs the conformance suite. newStore returns a fresh, empty store
// for each subtest.
func Run(t *testing.T, newStore func(t *testing.T) audit.Store) {
	t.Run("Empty", func(t *testing.T) { testEmpty(t, newStore(t)) })
	t.Run("AppendProve", func(t *testing.T) { testAppendProve(t, newStore(t)) })
	t.Run("Concurrent", func(t *testing.T) { testConcurrent(t, newStore(t)) })
	t.Run("TwoLogsOneStore", func(t *testing.T) { testTwoLogs(t, newStore(t)) })
	t.Run("CheckpointMonotonic", func(t *testing.T) { testCheckpointMonotonic(t, newStore(t)) })
	t.Run("Query", func(t *testing.T) { testQuery(t, newStore(t)) })
	t.Run("BadBuild", func(t *testing.T) { testBadBuild(t, newStore(t)) })
}

func testEmpty(t *testing.T, s audit.Store) {
	ctx := context.Background()
	if n, err := s.Size(ctx); err != nil || n != 0 {
		t.Fatalf("Size = %d, %v", n, err)
	}
	if _, err := s.Checkpoint(ctx); !errors.Is(err, audit.ErrNotFound) {
		t.Fatalf("Checkpoint on empty store: %v", err)
	}
	if _, err := s.ReadEntries(ctx, 0, 1); !errors.Is(err, audit.ErrNotFound) {
		t.Fatalf("ReadEntries beyond the log: %v", err)
	}
	if _, err := s.ReadHashes(ctx, []int64{0}); !errors.Is(err, audit.ErrNotFound) {
		t.Fatalf("ReadHashes beyond the log: %v", err)
	}
	l := NewLog(t, s)
	cp, err := l.Checkpoint(ctx)
	if err != nil || cp.Size != 0 {
		t.Fatalf("empty checkpoint %+v %v", cp, err)
	}
}

func testAppendProve(t *testing.T, s audit.Store) {
	ctx := context.Background()
	l := NewLog(t, s)
	_, verifier := SignerVerifier(t)
	const n = 300
	var cps []audit.Checkpoint
	var receipts []audit.Receipt
	for i := range n {
		r, err := l.Append(ctx, Event(i))
		if err != nil {
			t.Fatal(err)
		}
		if r.Index != uint64(i) {
			t.Fatalf("receipt index %d, want %d", r.Index, i)
		}
		receipts = append(receipts, r)
		if i%37 == 0 || i == n-1 {
			cp, err := l.Checkpoint(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := audit.OpenCheckpoint(cp.Note, verifier); err != nil {
				t.Fatal(err)
			}
			cps = append(cps, cp)
		}
	}
	last := cps[len(cps)-1]
	if last.Size != n {
		t.Fatalf("checkpoint size %d", last.Size)
	}
	for i, r := range receipts {
		entry, err := l.Entry(ctx, r.Index)
		if err != nil {
			t.Fatal(err)
		}
		if audit.LeafHash(entry) != r.LeafHash {
			t.Fatalf("entry %d: leaf hash differs from receipt", i)
		}
		ev, err := audit.ParseEvent(entry)
		if err != nil || ev.EventHash != r.EventHash {
			t.Fatalf("entry %d: %v", i, err)
		}
		if i%7 != 0 {
			continue
		}
		p, err := l.InclusionProof(ctx, r.Index, last.Size)
		if err != nil {
			t.Fatal(err)
		}
		if err := audit.VerifyInclusion(p, last, r.Index, r.LeafHash); err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		if err := audit.VerifyInclusion(p, last, r.Index, audit.LeafHash([]byte("forged"))); err == nil {
			t.Fatal("forged leaf verified")
		}
	}
	for i := range cps {
		for j := i; j < len(cps); j++ {
			p, err := l.ConsistencyProof(ctx, cps[i].Size, cps[j].Size)
			if err != nil {
				t.Fatal(err)
			}
			if err := audit.VerifyConsistency(p, cps[i], cps[j]); err != nil {
				t.Fatalf("consistency %d→%d: %v", cps[i].Size, cps[j].Size, err)
			}
		}
	}
	if _, err := l.InclusionProof(ctx, 0, n+1); !errors.Is(err, audit.ErrNotFound) {
		t.Fatalf("proof beyond the log: %v", err)
	}
	if _, err := l.Verify(ctx); err != nil {
		t.Fatal(err)
	}
	// A reopened log trusts the stored checkpoint only after checking it.
	again := NewLog(t, s)
	cp, err := again.Checkpoint(ctx)
	if err != nil || cp.Hash != last.Hash {
		t.Fatalf("reopened log: %v", err)
	}
}

func testConcurrent(t *testing.T, s audit.Store) {
	ctx := context.Background()
	l := NewLog(t, s)
	const workers, each = 16, 40
	var wg sync.WaitGroup
	seen := make([]bool, workers*each)
	var mu sync.Mutex
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				r, err := l.Append(ctx, Event(w*each+i))
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				if r.Index >= uint64(len(seen)) || seen[r.Index] {
					mu.Unlock()
					errs <- fmt.Errorf("index %d given twice or out of range", r.Index)
					return
				}
				seen[r.Index] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	cp, err := l.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != workers*each {
		t.Fatalf("size %d", cp.Size)
	}
}

func testTwoLogs(t *testing.T, s audit.Store) {
	ctx := context.Background()
	a, b := NewLog(t, s), NewLog(t, s)
	var wg sync.WaitGroup
	for k, l := range []*audit.Log{a, b} {
		wg.Go(func() {
			for i := range 50 {
				if _, err := l.Append(ctx, Event(k*1000+i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	cpa, err := a.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cpb, err := b.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cpa.Size != 100 || cpa.Hash != cpb.Hash {
		t.Fatalf("two logs disagree: %d %d", cpa.Size, cpb.Size)
	}
	if _, err := a.Verify(ctx); err != nil {
		t.Fatal(err)
	}
}

func testCheckpointMonotonic(t *testing.T, s audit.Store) {
	ctx := context.Background()
	l := NewLog(t, s)
	for i := range 3 {
		if _, err := l.Append(ctx, Event(i)); err != nil {
			t.Fatal(err)
		}
	}
	cp3, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	old, err := l.CheckpointAt(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutCheckpoint(ctx, 1, old.Note); err != nil {
		t.Fatal(err)
	}
	got, err := s.Checkpoint(ctx)
	if err != nil || !bytes.Equal(got, cp3.Note) {
		t.Fatalf("a smaller checkpoint replaced a larger one: %v", err)
	}
}

func testQuery(t *testing.T, s audit.Store) {
	ctx := context.Background()
	l := NewLog(t, s)
	const n = 25
	for i := range n {
		if _, err := l.Append(ctx, Event(i)); err != nil {
			t.Fatal(err)
		}
	}
	// Page through everything, newest first.
	var got []int
	after := ""
	for {
		p, err := l.Query(ctx, audit.Query{After: after, Limit: 7})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range p.Entries {
			got = append(got, int(e.Index))
			if c := contracts.CheckCursorInvariant(mustTime(t, e.Event).Unix(), e.Event.EventID, e.Cursor); !c.OK {
				t.Fatalf("cursor invariant: %+v", c)
			}
		}
		if p.Next == "" {
			break
		}
		after = p.Next
	}
	if len(got) != n {
		t.Fatalf("paged %d entries, want %d", len(got), n)
	}
	for i, idx := range got {
		if idx != n-1-i {
			t.Fatalf("order %v", got)
		}
	}
	// Filters.
	p, err := l.Query(ctx, audit.Query{PrincipalID: "p-1", SurfaceID: "admin.write", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range p.Entries {
		if e.Event.Principal.PrincipalID != "p-1" || e.Event.SurfaceID != "admin.write" {
			t.Fatalf("filter leaked %+v", e.Event)
		}
	}
	if len(p.Entries) != 4 { // i ≡ 1 mod 3 and odd, i < 25: 1, 7, 13, 19
		t.Fatalf("filtered %d entries", len(p.Entries))
	}
	p, err = l.Query(ctx, audit.Query{Since: base.Add(10 * time.Second), Until: base.Add(15 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Entries) != 5 || p.Entries[0].Index != 14 || p.Entries[4].Index != 10 {
		t.Fatalf("time range: %d entries", len(p.Entries))
	}
	if _, err := l.Query(ctx, audit.Query{After: "not a cursor"}); !errors.Is(err, contracts.ErrInvalidInput) {
		t.Fatalf("bad cursor: %v", err)
	}
	if _, err := l.Query(ctx, audit.Query{Limit: audit.MaxQueryLimit + 1}); !errors.Is(err, contracts.ErrInvalidInput) {
		t.Fatalf("limit: %v", err)
	}
}

func mustTime(t *testing.T, e *audit.Event) time.Time {
	ts, err := e.Time()
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func testBadBuild(t *testing.T, s audit.Store) {
	ctx := context.Background()
	l := NewLog(t, s)
	if _, err := l.Append(ctx, Event(0)); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	_, err := s.Append(ctx, [][]byte{[]byte("x")}, func(uint64, tlog.HashReader) ([]audit.Hash, error) {
		return nil, boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("build error not returned: %v", err)
	}
	_, err = s.Append(ctx, [][]byte{[]byte("x")}, func(uint64, tlog.HashReader) ([]audit.Hash, error) {
		return []audit.Hash{{}, {}, {}}, nil
	})
	if err == nil {
		t.Fatal("wrong hash count accepted")
	}
	if n, _ := s.Size(ctx); n != 1 {
		t.Fatalf("failed appends changed the size to %d", n)
	}
	if _, err := l.Verify(ctx); err != nil {
		t.Fatal(err)
	}
}
