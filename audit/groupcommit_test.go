package audit_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/audit/audittest"
)

// gateStore holds its first Append until release is closed and records
// the size of every batch.
type gateStore struct {
	*audit.MemStore
	release chan struct{}
	once    sync.Once
	mu      sync.Mutex
	batches []int
}

func (g *gateStore) Append(ctx context.Context, entries [][]byte, build audit.BuildFunc) (uint64, error) {
	g.once.Do(func() { <-g.release })
	g.mu.Lock()
	g.batches = append(g.batches, len(entries))
	g.mu.Unlock()
	return g.MemStore.Append(ctx, entries, build)
}

// TestGroupCommitBatches: callers that arrive while a commit runs are
// committed together in groups of at most MaxBatch, and each receipt names
// the index and leaf hash of its own event.
func TestGroupCommitBatches(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		gs := &gateStore{MemStore: audit.NewMemStore(), release: make(chan struct{})}
		signer, verifier := audittest.SignerVerifier(t)
		l, err := audit.New(ctx, audit.Config{Store: gs, Signer: signer, Verifier: verifier, MaxBatch: 4})
		if err != nil {
			t.Fatal(err)
		}
		const n = 11
		receipts := make([]audit.Receipt, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		wg.Go(func() { receipts[0], errs[0] = l.Append(ctx, audittest.Event(0)) })
		synctest.Wait() // the first caller commits alone and waits at the gate
		for i := 1; i < n; i++ {
			wg.Go(func() { receipts[i], errs[i] = l.Append(ctx, audittest.Event(i)) })
		}
		synctest.Wait() // the others wait for their group
		close(gs.release)
		wg.Wait()
		if want := []int{1, 4, 4, 2}; len(gs.batches) != len(want) {
			t.Fatalf("batches %v, want %v", gs.batches, want)
		} else {
			for i := range want {
				if gs.batches[i] != want[i] {
					t.Fatalf("batches %v, want %v", gs.batches, want)
				}
			}
		}
		seen := map[uint64]bool{}
		for i, r := range receipts {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			if seen[r.Index] || r.Index >= n {
				t.Fatalf("receipt %d: index %d repeated or out of range", i, r.Index)
			}
			seen[r.Index] = true
			entry, err := l.Entry(ctx, r.Index)
			if err != nil {
				t.Fatal(err)
			}
			e := audittest.Event(i)
			sealed, err := e.Seal()
			if err != nil {
				t.Fatal(err)
			}
			if string(entry) != string(sealed) || audit.LeafHash(entry) != r.LeafHash || r.EventHash != e.EventHash {
				t.Fatalf("receipt %d does not describe its event", i)
			}
		}
	})
}

// gatedStore holds batch i's Append until gates[i] is closed.
type gatedStore struct {
	*audit.MemStore
	gates []chan struct{}
	mu    sync.Mutex
	n     int
}

func (g *gatedStore) Append(ctx context.Context, entries [][]byte, build audit.BuildFunc) (uint64, error) {
	g.mu.Lock()
	gate := g.gates[g.n]
	g.n++
	g.mu.Unlock()
	<-gate
	return g.MemStore.Append(ctx, entries, build)
}

// TestGroupCommitLeaderReturns: the caller that commits its own group gets
// its receipt once that group is durable, not after the groups that formed
// behind it; those are still committed, in order.
func TestGroupCommitLeaderReturns(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx := context.Background()
		gs := &gatedStore{MemStore: audit.NewMemStore(), gates: []chan struct{}{make(chan struct{}), make(chan struct{})}}
		signer, verifier := audittest.SignerVerifier(t)
		l, err := audit.New(ctx, audit.Config{Store: gs, Signer: signer, Verifier: verifier})
		if err != nil {
			t.Fatal(err)
		}
		type result struct {
			r   audit.Receipt
			err error
		}
		a, b := make(chan result, 1), make(chan result, 1)
		go func() { r, err := l.Append(ctx, audittest.Event(0)); a <- result{r, err} }()
		synctest.Wait() // A commits batch 1 and waits at its gate
		go func() { r, err := l.Append(ctx, audittest.Event(1)); b <- result{r, err} }()
		synctest.Wait() // B's group is queued behind it
		close(gs.gates[0])
		synctest.Wait() // batch 1 is durable; batch 2 waits at its gate
		select {
		case res := <-a:
			if res.err != nil || res.r.Index != 0 {
				t.Fatalf("leader: %+v", res)
			}
		default:
			t.Fatal("the leader is still waiting, for a batch after its own")
		}
		select {
		case res := <-b:
			t.Fatalf("B returned before its batch was durable: %+v", res)
		default:
		}
		close(gs.gates[1])
		if res := <-b; res.err != nil || res.r.Index != 1 {
			t.Fatalf("second caller: %+v", res)
		}
	})
}
