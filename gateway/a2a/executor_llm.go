package a2a

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"

	"github.com/talosgo/talos/contracts"
)

// ChatCompletionsExecutor runs each task as one OpenAI-compatible chat
// completion (POST {BaseURL}/chat/completions): the task's user text is
// the user message; the first choice's content is the artifact.
type ChatCompletionsExecutor struct {
	// BaseURL is the API root, e.g. "https://api.openai.com/v1". Required.
	BaseURL string
	// Model is the model name sent. Required.
	Model string
	// System, if set, is sent as the system message.
	System string
	// APIKey, if set, is sent as a bearer token; it never appears in errors.
	APIKey string
	// Client is the HTTP client. If nil, http.DefaultClient.
	Client *http.Client
	// MaxResponse bounds the response body read (default 4 MiB).
	MaxResponse int64
	cancels
}

// Execute implements Executor.
func (e *ChatCompletionsExecutor) Execute(ctx context.Context, t *Task, _ Updater) ([]Artifact, error) {
	ctx, done := e.track(ctx, t.ID)
	defer done()
	msgs := []map[string]string{}
	if e.System != "" {
		msgs = append(msgs, map[string]string{"role": "system", "content": e.System})
	}
	msgs = append(msgs, map[string]string{"role": "user", "content": userText(t)})
	body, err := json.Marshal(map[string]any{"model": e.Model, "messages": msgs})
	if err != nil {
		return nil, contracts.New(contracts.CodeInternal, "a2a: completion request unencodable")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(e.BaseURL, "/")+"/chat/completions", bytes.NewReader(body))
	if err != nil {
		return nil, contracts.New(contracts.CodeInvalidInput, "a2a: bad completions BaseURL")
	}
	req.Header.Set("Content-Type", "application/json")
	if e.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+e.APIKey)
	}
	c := e.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeTransportError, "a2a: completion request failed", err)
	}
	defer resp.Body.Close()
	limit := e.MaxResponse
	if limit <= 0 {
		limit = 4 << 20
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil || int64(len(raw)) > limit {
		return nil, contracts.New(contracts.CodeMCPProtocol, "a2a: completion response unreadable or too large")
	}
	if resp.StatusCode != http.StatusOK {
		return nil, contracts.New(contracts.CodeTransportError, "a2a: completion endpoint answered "+resp.Status)
	}
	text, err := parseCompletion(raw)
	if err != nil {
		return nil, err
	}
	return []Artifact{{ArtifactID: t.ID + ":completion", Name: "completion.txt", Parts: []Part{{Text: text}}}}, nil
}

// parseCompletion takes the first choice's message content of a chat
// completion response; anything else is a *contracts.Error.
func parseCompletion(raw []byte) (string, error) {
	if err := contracts.CheckCaseFold(raw); err != nil {
		return "", contracts.Wrap(contracts.CodeSchemaMismatch, "a2a: completion response is not acceptable JSON", err)
	}
	var r struct {
		Choices []struct {
			Message struct {
				Content *string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(raw, &r); err != nil || len(r.Choices) == 0 || r.Choices[0].Message.Content == nil {
		return "", contracts.New(contracts.CodeSchemaMismatch, "a2a: completion response has no choice content")
	}
	return *r.Choices[0].Message.Content, nil
}

// userText joins the text parts of the task's user messages.
func userText(t *Task) string {
	var b strings.Builder
	for _, m := range t.History {
		if m.Role != "user" {
			continue
		}
		for _, p := range m.Parts {
			if b.Len() > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(p.Text)
		}
	}
	return b.String()
}
