// Package a2atest holds the conformance suites of gateway/a2a's stores:
// [TestTaskStore] for a2a.TaskStore (A2A v1 tasks) and [Run] for
// a2a.Store (the relay's sessions, frames, groups and event chains).
// Every implementation (the in-memory stores, gateway/a2a/postgres) runs
// them against fresh, empty stores.
package a2atest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/talosgo/talos/gateway/a2a"
)

// NewStore returns an empty store for one subtest.
type NewStore func(t *testing.T) a2a.TaskStore

func task(id, owner, ctxID string, state a2a.TaskState) *a2a.Task {
	now := time.Date(2026, 3, 13, 12, 0, 0, 0, time.UTC)
	return &a2a.Task{ID: id, ContextID: ctxID, Owner: owner, Version: 1, RequestID: "r-" + id, Created: now, Updated: now,
		Status:  a2a.TaskStatus{State: state, Timestamp: now.Format(time.RFC3339)},
		History: []a2a.Message{{MessageID: "m-" + id, Role: "user", Parts: []a2a.Part{{Text: "hi " + id}}, TaskID: id, ContextID: ctxID}}}
}

// TestTaskStore runs the conformance suite.
func TestTaskStore(t *testing.T, newStore NewStore) {
	ctx := context.Background()
	t.Run("CreateGet", func(t *testing.T) {
		s := newStore(t)
		in := task("t1", "did:key:a", "c1", a2a.TaskSubmitted)
		in.Artifacts = []a2a.Artifact{{ArtifactID: "a1", Name: "out.txt", Parts: []a2a.Part{{Text: "x"}}}}
		in.Status.Message = &a2a.Message{MessageID: "s", Role: "agent", Parts: []a2a.Part{{Text: "ok"}}}
		if err := s.CreateTask(ctx, in); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetTask(ctx, "t1")
		if err != nil {
			t.Fatal(err)
		}
		if got.Owner != in.Owner || got.ContextID != "c1" || got.Version != 1 || got.Status.State != a2a.TaskSubmitted ||
			len(got.History) != 1 || got.History[0].Parts[0].Text != "hi t1" || len(got.Artifacts) != 1 ||
			got.Artifacts[0].Name != "out.txt" || got.Status.Message == nil || got.Status.Message.Parts[0].Text != "ok" ||
			got.RequestID != "r-t1" || !got.Created.Equal(in.Created) {
			t.Fatalf("round trip: %+v", got)
		}
		if err := s.CreateTask(ctx, task("t1", "did:key:b", "c", a2a.TaskSubmitted)); !errors.Is(err, a2a.ErrVersionConflict) {
			t.Fatalf("duplicate create: %v", err)
		}
		if _, err := s.GetTask(ctx, "nope"); !errors.Is(err, a2a.ErrTaskNotFound) {
			t.Fatalf("missing task: %v", err)
		}
	})
	t.Run("CompareAndSet", func(t *testing.T) {
		s := newStore(t)
		if err := s.CreateTask(ctx, task("t1", "o", "c", a2a.TaskSubmitted)); err != nil {
			t.Fatal(err)
		}
		got, _ := s.GetTask(ctx, "t1")
		got.Version = 2
		got.Status.State = a2a.TaskWorking
		if err := s.UpdateTask(ctx, got); err != nil {
			t.Fatal(err)
		}
		stale := task("t1", "o", "c", a2a.TaskCompleted)
		stale.Version = 2
		if err := s.UpdateTask(ctx, stale); !errors.Is(err, a2a.ErrVersionConflict) {
			t.Fatalf("stale update: %v", err)
		}
		if err := s.UpdateTask(ctx, task("zz", "o", "c", a2a.TaskWorking)); err == nil {
			t.Fatal("update of a missing task succeeded")
		}
		got, _ = s.GetTask(ctx, "t1")
		if got.Version != 2 || got.Status.State != a2a.TaskWorking {
			t.Fatalf("after CAS: %+v", got)
		}
	})
	t.Run("ConcurrentCAS", func(t *testing.T) {
		s := newStore(t)
		if err := s.CreateTask(ctx, task("t1", "o", "c", a2a.TaskSubmitted)); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		wins := 0
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tk := task("t1", "o", "c", a2a.TaskWorking)
				tk.Version = 2
				if err := s.UpdateTask(ctx, tk); err == nil {
					mu.Lock()
					wins++
					mu.Unlock()
				} else if !errors.Is(err, a2a.ErrVersionConflict) {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if wins != 1 {
			t.Fatalf("%d writers won the same version", wins)
		}
	})
	t.Run("List", func(t *testing.T) {
		s := newStore(t)
		for i := range 5 {
			owner, st := "a", a2a.TaskCompleted
			if i%2 == 1 {
				owner, st = "b", a2a.TaskWorking
			}
			if err := s.CreateTask(ctx, task(fmt.Sprintf("t%d", i), owner, "c", st)); err != nil {
				t.Fatal(err)
			}
		}
		page, total, err := s.ListTasks(ctx, a2a.TaskFilter{Owner: "a", Limit: 2})
		if err != nil || total != 3 || len(page) != 2 || page[0].ID != "t0" || page[1].ID != "t2" {
			t.Fatalf("page 1: %v %d %v", ids(page), total, err)
		}
		page, _, _ = s.ListTasks(ctx, a2a.TaskFilter{Owner: "a", Limit: 2, After: "t2"})
		if len(page) != 1 || page[0].ID != "t4" {
			t.Fatalf("page 2: %v", ids(page))
		}
		page, total, _ = s.ListTasks(ctx, a2a.TaskFilter{State: a2a.TaskWorking, Limit: 10})
		if total != 2 || len(page) != 2 {
			t.Fatalf("by state: %v %d", ids(page), total)
		}
		if _, _, err := s.ListTasks(ctx, a2a.TaskFilter{Limit: 0}); err == nil {
			t.Fatal("limit 0 accepted")
		}
	})
}

func ids(ts []*a2a.Task) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.ID)
	}
	return out
}
