package a2a

import (
	"context"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/talosgo/talos/contracts"
)

// TaskState is an A2A v1 task state (the contract's TASK_STATE_* names).
type TaskState string

// The task states of schemas/a2a/v1/task_status.
const (
	TaskSubmitted     TaskState = "TASK_STATE_SUBMITTED"
	TaskWorking       TaskState = "TASK_STATE_WORKING"
	TaskCompleted     TaskState = "TASK_STATE_COMPLETED"
	TaskFailed        TaskState = "TASK_STATE_FAILED"
	TaskCanceled      TaskState = "TASK_STATE_CANCELED"
	TaskInputRequired TaskState = "TASK_STATE_INPUT_REQUIRED"
	TaskRejected      TaskState = "TASK_STATE_REJECTED"
	TaskAuthRequired  TaskState = "TASK_STATE_AUTH_REQUIRED"
)

// Terminal reports whether s is terminal: completed, failed, canceled or
// rejected. A terminal task never changes state again.
func (s TaskState) Terminal() bool {
	switch s {
	case TaskCompleted, TaskFailed, TaskCanceled, TaskRejected:
		return true
	}
	return false
}

// Valid reports whether s is one of the contract's states.
func (s TaskState) Valid() bool {
	switch s {
	case TaskSubmitted, TaskWorking, TaskCompleted, TaskFailed, TaskCanceled,
		TaskInputRequired, TaskRejected, TaskAuthRequired:
		return true
	}
	return false
}

// CanTransition reports whether a task may move from s to next: never out
// of a terminal state, never back to submitted, and only to known states.
func (s TaskState) CanTransition(next TaskState) bool {
	if !s.Valid() || !next.Valid() || s.Terminal() {
		return false
	}
	return next != TaskSubmitted
}

// A Part is one text part of a message or artifact (schemas/a2a/v1/text_part).
type Part struct {
	Text string `json:"text"`
}

// A Message is an A2A v1 message (schemas/a2a/v1/message).
type Message struct {
	MessageID string         `json:"messageId"`
	Role      string         `json:"role"`
	Parts     []Part         `json:"parts"`
	TaskID    string         `json:"taskId,omitempty"`
	ContextID string         `json:"contextId,omitempty"`
	Metadata  map[string]any `json:"metadata,omitempty"`
}

// An Artifact is a task output (schemas/a2a/v1/artifact).
type Artifact struct {
	ArtifactID string         `json:"artifactId"`
	Name       string         `json:"name,omitempty"`
	Parts      []Part         `json:"parts"`
	Metadata   map[string]any `json:"metadata,omitempty"`
}

// A TaskStatus is a task's state at a time (schemas/a2a/v1/task_status).
type TaskStatus struct {
	State     TaskState `json:"state"`
	Timestamp string    `json:"timestamp"`
	Message   *Message  `json:"message,omitempty"`
}

// A Task is an A2A v1 task as stored: the wire fields plus its owner and
// optimistic version, which the wire form carries in metadata.
type Task struct {
	ID        string
	ContextID string
	Status    TaskStatus
	History   []Message
	Artifacts []Artifact
	// Owner is the DID of the principal that created the task.
	Owner string
	// Version starts at 1 and grows by one with every stored change.
	Version int64
	// RequestID is the JSON-RPC id of the creating request.
	RequestID        string
	Created, Updated time.Time
}

// Clone returns a deep copy of t (metadata maps are shared read-only).
func (t *Task) Clone() *Task {
	c := *t
	c.History = slices.Clone(t.History)
	c.Artifacts = slices.Clone(t.Artifacts)
	if t.Status.Message != nil {
		m := *t.Status.Message
		c.Status.Message = &m
	}
	return &c
}

// A TaskFilter selects tasks for [TaskStore.ListTasks].
type TaskFilter struct {
	// Owner, if set, keeps only that principal's tasks.
	Owner string
	// ContextID and State, if set, keep only matching tasks.
	ContextID string
	State     TaskState
	// After is the ID of the last task of the previous page (exclusive).
	After string
	// Limit bounds the page; at least 1.
	Limit int
}

// A TaskStore keeps tasks with optimistic versions. Implementations must be
// safe for concurrent use; [github.com/talosgo/talos/gateway/a2a/a2atest]
// is the conformance suite every implementation passes.
type TaskStore interface {
	// CreateTask stores a new task at Version 1. A task with the same ID
	// is ErrVersionConflict.
	CreateTask(ctx context.Context, t *Task) error
	// GetTask returns a copy of the task, or ErrTaskNotFound.
	GetTask(ctx context.Context, id string) (*Task, error)
	// UpdateTask stores t if the stored version is t.Version-1
	// (compare-and-set), else ErrVersionConflict.
	UpdateTask(ctx context.Context, t *Task) error
	// ListTasks returns tasks ordered by ID, after filter.After, at most
	// filter.Limit, and the total number matching the filter (ignoring
	// After and Limit).
	ListTasks(ctx context.Context, filter TaskFilter) ([]*Task, int, error)
}

// Errors of TaskStore implementations.
var (
	ErrTaskNotFound    = contracts.NewSentinel(contracts.CodeNotFound, "a2a: task not found")
	ErrVersionConflict = contracts.NewSentinel(contracts.CodeStateSequenceGap, "a2a: task version conflict")
)

// MemTaskStore is an in-memory TaskStore.
type MemTaskStore struct {
	mu    sync.Mutex
	tasks map[string]*Task
}

// NewMemTaskStore returns an empty MemTaskStore.
func NewMemTaskStore() *MemTaskStore {
	return &MemTaskStore{tasks: map[string]*Task{}}
}

// CreateTask implements TaskStore.
func (s *MemTaskStore) CreateTask(_ context.Context, t *Task) error {
	if t.Version != 1 {
		return contracts.New(contracts.CodeInvalidInput, "a2a: a new task has Version 1")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tasks[t.ID]; ok {
		return ErrVersionConflict
	}
	s.tasks[t.ID] = t.Clone()
	return nil
}

// GetTask implements TaskStore.
func (s *MemTaskStore) GetTask(_ context.Context, id string) (*Task, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tasks[id]
	if !ok {
		return nil, ErrTaskNotFound
	}
	return t.Clone(), nil
}

// UpdateTask implements TaskStore.
func (s *MemTaskStore) UpdateTask(_ context.Context, t *Task) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.tasks[t.ID]
	if !ok {
		return ErrTaskNotFound
	}
	if old.Version != t.Version-1 {
		return ErrVersionConflict
	}
	s.tasks[t.ID] = t.Clone()
	return nil
}

// ListTasks implements TaskStore.
func (s *MemTaskStore) ListTasks(_ context.Context, f TaskFilter) ([]*Task, int, error) {
	if f.Limit < 1 {
		return nil, 0, contracts.New(contracts.CodeInvalidInput, "a2a: ListTasks limit must be at least 1")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var all []*Task
	for _, t := range s.tasks {
		if (f.Owner == "" || t.Owner == f.Owner) && (f.ContextID == "" || t.ContextID == f.ContextID) &&
			(f.State == "" || t.Status.State == f.State) {
			all = append(all, t)
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ID < all[j].ID })
	var page []*Task
	for _, t := range all {
		if f.After != "" && t.ID <= f.After {
			continue
		}
		if len(page) == f.Limit {
			break
		}
		page = append(page, t.Clone())
	}
	return page, len(all), nil
}
