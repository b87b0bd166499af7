package a2a

import (
	"context"
	"time"

	"github.com/talosgo/talos/contracts"
)

// An Executor runs tasks. Execute is called once per task, in its own
// goroutine, with the task as submitted; it reports progress through u and
// returns the final artifacts (the task then completes) or an error (the
// task fails). ctx is canceled when the task is canceled.
type Executor interface {
	Execute(ctx context.Context, t *Task, u Updater) ([]Artifact, error)
	// Cancel asks a running task to stop; it may be a no-op once done.
	Cancel(taskID string)
}

// An Updater lets an executor publish intermediate updates.
type Updater interface {
	// Status moves the task to a non-terminal state with a message.
	Status(state TaskState, text string) error
	// Artifact appends an artifact to the task.
	Artifact(a Artifact) error
}

// AgentFunc is the work of a user-provided agent.
type AgentFunc func(ctx context.Context, t *Task, u Updater) ([]Artifact, error)

// FuncExecutor adapts an AgentFunc to an Executor with cancellation.
type FuncExecutor struct {
	Agent AgentFunc
	cancels
}

// Execute implements Executor.
func (e *FuncExecutor) Execute(ctx context.Context, t *Task, u Updater) ([]Artifact, error) {
	ctx, done := e.track(ctx, t.ID)
	defer done()
	return e.Agent(ctx, t, u)
}

// send creates a task from the message of c's params and starts it; with
// sub set, the subscription is registered before the task can change.
func (h *RPCHandler) send(ctx context.Context, c *callCtx, sub *subscription) (*Task, error) {
	var p struct {
		Message       *Message       `json:"message"`
		Configuration map[string]any `json:"configuration"`
		Metadata      map[string]any `json:"metadata"`
	}
	if err := decodeParams(c.params, &p); err != nil {
		return nil, err
	}
	if p.Message == nil || p.Message.MessageID == "" || p.Message.Role != "user" || len(p.Message.Parts) == 0 {
		return nil, invalidParams()
	}
	if p.Message.TaskID != "" {
		return nil, contracts.New(contracts.CodeInvalidInput, "a2a: continuing a task is not supported; send without taskId")
	}
	now := h.cfg.Now()
	id := contracts.NewUUIDv7()
	ctxID := p.Message.ContextID
	if ctxID == "" {
		ctxID = contracts.NewUUIDv7()
	}
	msg := *p.Message
	msg.TaskID, msg.ContextID = id, ctxID
	t := &Task{ID: id, ContextID: ctxID, Owner: c.principal, Version: 1, RequestID: c.requestID(),
		Created: now, Updated: now, History: []Message{msg},
		Status: TaskStatus{State: TaskSubmitted, Timestamp: stamp(now)}}
	if err := h.cfg.Tasks.CreateTask(ctx, t); err != nil {
		return nil, err
	}
	if sub != nil {
		h.hub.add(id, sub)
	}
	ret, _ := p.Configuration["returnImmediately"].(bool)
	done := make(chan struct{})
	go h.run(t.Clone(), done)
	if !ret && sub == nil {
		select {
		case <-done:
		case <-ctx.Done():
		}
	}
	return h.cfg.Tasks.GetTask(context.WithoutCancel(ctx), id)
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// run executes a task to its end, independent of the request's lifetime.
func (h *RPCHandler) run(t *Task, done chan struct{}) {
	defer close(done)
	ctx := context.Background()
	if _, err := h.transition(ctx, t.ID, TaskWorking, "Task in progress", nil); err != nil {
		return
	}
	arts, err := h.cfg.Executor.Execute(ctx, t, &updater{h: h, id: t.ID})
	if err != nil {
		_, _ = h.transition(ctx, t.ID, TaskFailed, "Task failed", nil)
		return
	}
	_, _ = h.transition(ctx, t.ID, TaskCompleted, "Task completed", arts)
}

type updater struct {
	h  *RPCHandler
	id string
}

func (u *updater) Status(s TaskState, text string) error {
	if s.Terminal() {
		return contracts.New(contracts.CodeStateInvalidTransition, "a2a: executors end tasks by returning")
	}
	_, err := u.h.transition(context.Background(), u.id, s, text, nil)
	return err
}

func (u *updater) Artifact(a Artifact) error {
	_, err := u.h.mutate(context.Background(), u.id, func(t *Task) (bool, error) {
		t.Artifacts = append(t.Artifacts, a)
		return true, nil
	}, &Event{Artifact: &a})
	return err
}

// transition moves a task to state (compare-and-set, retried on conflict)
// and publishes the update.
func (h *RPCHandler) transition(ctx context.Context, id string, state TaskState, text string, arts []Artifact) (*Task, error) {
	return h.mutate(ctx, id, func(t *Task) (bool, error) {
		if !t.Status.State.CanTransition(state) {
			return false, contracts.New(contracts.CodeStateInvalidTransition, "a2a: task is "+string(t.Status.State))
		}
		t.Status = TaskStatus{State: state, Timestamp: stamp(h.cfg.Now()), Message: &Message{
			MessageID: t.ID + ":status:" + string(state), Role: "agent", TaskID: t.ID, ContextID: t.ContextID, Parts: []Part{{Text: text}}}}
		t.Artifacts = append(t.Artifacts, arts...)
		return true, nil
	}, nil)
}

// mutate applies f under optimistic concurrency and publishes an event.
func (h *RPCHandler) mutate(ctx context.Context, id string, f func(*Task) (bool, error), ev *Event) (*Task, error) {
	for range 16 {
		t, err := h.cfg.Tasks.GetTask(ctx, id)
		if err != nil {
			return nil, err
		}
		if ok, err := f(t); err != nil || !ok {
			return nil, err
		}
		t.Version++
		t.Updated = h.cfg.Now()
		if err := h.cfg.Tasks.UpdateTask(ctx, t); err == ErrVersionConflict {
			continue
		} else if err != nil {
			return nil, err
		}
		e := Event{Task: t}
		if ev != nil {
			e.Artifact = ev.Artifact
		}
		h.hub.publish(e)
		if h.cfg.Push != nil {
			h.cfg.Push.Notify(ctx, t)
		}
		return t, nil
	}
	return nil, ErrVersionConflict
}

// Recover ends the tasks a previous process left unfinished (submitted,
// working): their executors died with it, so each is moved to failed with
// the message "interrupted by restart" and its subscribers and push
// destinations are told. Call it once at start-up, before serving, when
// the TaskStore is durable; it returns how many tasks it ended.
func (h *RPCHandler) Recover(ctx context.Context) (int, error) {
	n := 0
	for _, st := range []TaskState{TaskSubmitted, TaskWorking} {
		after := ""
		for {
			page, _, err := h.cfg.Tasks.ListTasks(ctx, TaskFilter{State: st, After: after, Limit: 100})
			if err != nil {
				return n, err
			}
			for _, t := range page {
				if _, err := h.transition(ctx, t.ID, TaskFailed, "interrupted by restart", nil); err == nil {
					n++
				} else if contracts.CodeOf(err) != contracts.CodeStateInvalidTransition {
					return n, err
				}
			}
			if len(page) < 100 {
				break
			}
			after = page[len(page)-1].ID
		}
	}
	return n, nil
}
