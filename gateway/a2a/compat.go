package a2a

import (
	"context"
	"encoding/json"
	"time"

	"github.com/talosgo/talos/contracts"
)

// The legacy compat profile (schemas/a2a/profile).
var compatProfile = map[string]any{"profile_id": "a2a-compat", "profile_version": "0.1", "spec_source": "a2a-protocol"}

type compatMessage struct {
	Role    string `json:"role"`
	Name    string `json:"name,omitempty"`
	Content []struct {
		Text *string `json:"text"`
	} `json:"content"`
}

// dispatchCompat serves tasks.send/get/list/cancel in the legacy shapes:
// params and results are translated to and from the v1 task model.
func (h *RPCHandler) dispatchCompat(ctx context.Context, name string, c *callCtx) (any, error) {
	switch name {
	case "tasks.send":
		var p struct {
			Profile struct {
				ProfileID      string   `json:"profile_id"`
				ProfileVersion string   `json:"profile_version"`
				SpecSource     string   `json:"spec_source"`
				CompatNotes    []string `json:"compat_notes"`
			} `json:"profile"`
			Input    []compatMessage `json:"input"`
			ToolCall json.RawMessage `json:"tool_call"`
		}
		if err := decodeParams(c.params, &p); err != nil {
			return nil, err
		}
		if p.Profile.ProfileID != "a2a-compat" || p.Profile.ProfileVersion != "0.1" || p.Profile.SpecSource != "a2a-protocol" || len(p.Input) == 0 {
			return nil, invalidParams()
		}
		var parts []Part
		for _, m := range p.Input {
			if m.Role != "user" {
				return nil, invalidParams()
			}
			for _, ct := range m.Content {
				if ct.Text == nil {
					return nil, contracts.New(contracts.CodeInvalidInput, "a2a: only text parts are supported")
				}
				parts = append(parts, Part{Text: *ct.Text})
			}
		}
		if len(parts) == 0 {
			return nil, invalidParams()
		}
		v1, _ := json.Marshal(map[string]any{"message": Message{MessageID: contracts.NewUUIDv7(), Role: "user", Parts: parts}})
		cc := *c
		cc.params = v1
		t, err := h.send(ctx, &cc, nil)
		if err != nil {
			return nil, err
		}
		return legacyTask(t), nil
	case "tasks.get", "tasks.cancel":
		var p struct {
			TaskID string `json:"task_id"`
		}
		if err := decodeParams(c.params, &p); err != nil || p.TaskID == "" {
			return nil, invalidParams()
		}
		get := h.visibleTask
		if name == "tasks.cancel" {
			get = h.ownTask
		}
		t, err := get(ctx, c, p.TaskID)
		if err != nil {
			return nil, err
		}
		if name == "tasks.cancel" {
			if t, err = h.transition(ctx, p.TaskID, TaskCanceled, "Task canceled", nil); err != nil {
				return nil, err
			}
			h.cfg.Executor.Cancel(p.TaskID)
		}
		return legacyTask(t), nil
	default: // tasks.list
		f := TaskFilter{Limit: 100}
		if !c.listAll {
			f.Owner = c.principal
		}
		tasks, _, err := h.cfg.Tasks.ListTasks(ctx, f)
		if err != nil {
			return nil, err
		}
		out := make([]map[string]any, 0, len(tasks))
		for _, t := range tasks {
			out = append(out, legacyTask(t))
		}
		return map[string]any{"tasks": out}, nil
	}
}

func legacyState(s TaskState) string {
	switch s {
	case TaskSubmitted:
		return "queued"
	case TaskCompleted:
		return "completed"
	case TaskFailed, TaskRejected:
		return "failed"
	case TaskCanceled:
		return "canceled"
	}
	return "running"
}

// legacyTask is t in the shape of schemas/a2a/task.
func legacyTask(t *Task) map[string]any {
	input := []map[string]any{}
	for _, m := range t.History {
		if m.Role != "user" {
			continue
		}
		content := []map[string]any{}
		for _, p := range m.Parts {
			content = append(content, map[string]any{"text": p.Text})
		}
		input = append(input, map[string]any{"role": "user", "content": content})
	}
	arts := []map[string]any{}
	for _, a := range t.Artifacts {
		for _, p := range a.Parts {
			am := map[string]any{"artifact_id": a.ArtifactID, "type": "text", "content": map[string]any{"text": p.Text}}
			if a.Name != "" {
				am["name"] = a.Name
			}
			arts = append(arts, am)
		}
	}
	return map[string]any{
		"profile": compatProfile, "task_id": t.ID, "status": legacyState(t.Status.State),
		"created_at": t.Created.UTC().Format(time.RFC3339), "updated_at": t.Updated.UTC().Format(time.RFC3339),
		"input": input, "artifacts": arts,
	}
}
