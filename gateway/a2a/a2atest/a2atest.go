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

	"github.com/talosgo/talos/contracts"
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

// NewPushStore returns an empty push config store for one subtest.
type NewPushStore func(t *testing.T) a2a.PushConfigStore

// TestPushConfigStore runs the conformance suite of a2a.PushConfigStore.
func TestPushConfigStore(t *testing.T, newStore NewPushStore) {
	ctx := context.Background()
	cfg := func(task, id, url string) a2a.PushConfig {
		return a2a.PushConfig{ID: id, TaskID: task, URL: url, Token: "tok-" + id,
			Authentication: &a2a.PushAuthConfig{Scheme: "Bearer", Credentials: "secret-" + id}}
	}
	t.Run("PutListDelete", func(t *testing.T) {
		s := newStore(t)
		if got, err := s.ListPushConfigs(ctx, "t1"); err != nil || len(got) != 0 {
			t.Fatalf("empty: %v %v", got, err)
		}
		for _, id := range []string{"c2", "c1", "c3"} {
			if err := s.PutPushConfig(ctx, cfg("t1", id, "https://r.example/"+id), 3); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.PutPushConfig(ctx, cfg("t1", "c4", "https://r.example/c4"), 3); contracts.CodeOf(err) != contracts.CodeInvalidInput {
			t.Fatalf("fourth config with max 3: %v", err)
		}
		// Replacing an existing config is not a new one.
		if err := s.PutPushConfig(ctx, cfg("t1", "c1", "https://r.example/new"), 3); err != nil {
			t.Fatalf("replace at the bound: %v", err)
		}
		if err := s.PutPushConfig(ctx, cfg("t2", "c1", "https://other.example/"), 3); err != nil {
			t.Fatal(err)
		}
		got, err := s.ListPushConfigs(ctx, "t1")
		if err != nil || len(got) != 3 || got[0].ID != "c2" || got[1].ID != "c1" || got[2].ID != "c3" {
			t.Fatalf("list (creation order): %+v %v", got, err)
		}
		if got[1].URL != "https://r.example/new" || got[1].Token != "tok-c1" || got[1].Authentication == nil ||
			got[1].Authentication.Credentials != "secret-c1" || got[1].TaskID != "t1" {
			t.Fatalf("round trip: %+v", got[1])
		}
		got[1].Authentication.Credentials = "changed" // returned configs are copies
		if again, _ := s.ListPushConfigs(ctx, "t1"); again[1].Authentication.Credentials != "secret-c1" {
			t.Fatal("the store shares its configs")
		}
		if ok, err := s.DeletePushConfig(ctx, "t1", "c1"); !ok || err != nil {
			t.Fatalf("delete: %v %v", ok, err)
		}
		if ok, err := s.DeletePushConfig(ctx, "t1", "c1"); ok || err != nil {
			t.Fatalf("second delete: %v %v", ok, err)
		}
		if got, _ := s.ListPushConfigs(ctx, "t1"); len(got) != 2 {
			t.Fatalf("after delete: %+v", got)
		}
		if got, _ := s.ListPushConfigs(ctx, "t2"); len(got) != 1 || got[0].URL != "https://other.example/" {
			t.Fatalf("other task: %+v", got)
		}
	})
	t.Run("ConcurrentBound", func(t *testing.T) {
		s := newStore(t)
		var wg sync.WaitGroup
		for i := range 10 {
			wg.Go(func() {
				_ = s.PutPushConfig(ctx, cfg("t1", fmt.Sprint("c", i), "https://r.example/"), 4)
			})
		}
		wg.Wait()
		if got, err := s.ListPushConfigs(ctx, "t1"); err != nil || len(got) != 4 {
			t.Fatalf("racing creates under max 4: %d configs, %v", len(got), err)
		}
	})
}
