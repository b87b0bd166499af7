package main

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/talosgo/talos/internal/testenv"
)

// TestJobOncePerInterval: three processes' pools racing to run one job
// run it at most once per interval (by the database's clock), and it
// keeps running while they tick.
func TestJobOncePerInterval(t *testing.T) {
	url := testenv.PostgresURL(t)
	prefix := testenv.Unique(t) + "_"
	dropReplicaTablesAtEnd(t, url, prefix)
	const interval = 150 * time.Millisecond
	var (
		mu   sync.Mutex
		runs []time.Time
		fns  int
	)
	ctx, cancel := context.WithCancel(t.Context())
	var wg sync.WaitGroup
	for range 3 {
		pool, err := pgxpool.New(t.Context(), url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		j, err := newJobs(t.Context(), pool, prefix)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				ran, at, err := j.runIfDue(ctx, "checkpoint", interval, func(context.Context) error {
					mu.Lock()
					fns++
					mu.Unlock()
					return nil
				})
				if err != nil && ctx.Err() == nil {
					t.Error(err)
					return
				}
				if ran {
					mu.Lock()
					runs = append(runs, at)
					n := len(runs)
					mu.Unlock()
					if n == 5 {
						cancel()
					}
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	cancel()
	if len(runs) < 5 || fns != len(runs) {
		t.Fatalf("%d recorded runs, %d calls", len(runs), fns)
	}
	sort.Slice(runs, func(i, k int) bool { return runs[i].Before(runs[k]) })
	for i := 1; i < len(runs); i++ {
		if d := runs[i].Sub(runs[i-1]); d < interval {
			t.Fatalf("runs %d and %d only %v apart (interval %v): %v", i-1, i, d, interval, runs)
		}
	}
	// A failing run records nothing: the next caller runs it.
	pool, err := pgxpool.New(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	j, _ := newJobs(t.Context(), pool, prefix)
	if ran, _, err := j.runIfDue(t.Context(), "fails", time.Hour, func(context.Context) error { return context.DeadlineExceeded }); ran || err == nil {
		t.Fatalf("failing run: %v %v", ran, err)
	}
	if ran, _, err := j.runIfDue(t.Context(), "fails", time.Hour, func(context.Context) error { return nil }); !ran || err != nil {
		t.Fatalf("run after a failure: %v %v", ran, err)
	}
	if ran, _, err := j.runIfDue(t.Context(), "fails", time.Hour, func(context.Context) error { return nil }); ran || err != nil {
		t.Fatalf("run within the interval: %v %v", ran, err)
	}
}
