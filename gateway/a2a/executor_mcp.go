package a2a

import (
	"context"
	"strings"
	"sync"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/talosgo/talos/contracts"
)

// MCPToolExecutor runs each task as one MCP tool call on a connected
// client session: the task's user text is the argument named Argument
// (default "text"); the result's text content is the artifact, and a
// result with IsError fails the task.
type MCPToolExecutor struct {
	// Session is a connected MCP client session. Required.
	Session *mcp.ClientSession
	// Tool is the tool to call. Required.
	Tool string
	// Argument names the tool argument carrying the text. Default "text".
	Argument string
	cancels
}

// Execute implements Executor.
func (e *MCPToolExecutor) Execute(ctx context.Context, t *Task, _ Updater) ([]Artifact, error) {
	ctx, done := e.track(ctx, t.ID)
	defer done()
	arg := e.Argument
	if arg == "" {
		arg = "text"
	}
	res, err := e.Session.CallTool(ctx, &mcp.CallToolParams{Name: e.Tool, Arguments: map[string]any{arg: userText(t)}})
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeMCPProtocol, "a2a: MCP tool call failed", err)
	}
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	if res.IsError {
		return nil, contracts.New(contracts.CodeMCPProtocol, "a2a: MCP tool reported an error")
	}
	return []Artifact{{ArtifactID: t.ID + ":" + e.Tool, Name: e.Tool, Parts: []Part{{Text: b.String()}}}}, nil
}

// cancels tracks the cancel functions of running tasks.
type cancels struct {
	mu sync.Mutex
	m  map[string]context.CancelFunc
}

func (c *cancels) track(ctx context.Context, id string) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]context.CancelFunc{}
	}
	c.m[id] = cancel
	c.mu.Unlock()
	return ctx, func() {
		c.mu.Lock()
		delete(c.m, id)
		c.mu.Unlock()
		cancel()
	}
}

// Cancel implements Executor.
func (c *cancels) Cancel(id string) {
	c.mu.Lock()
	f := c.m[id]
	c.mu.Unlock()
	if f != nil {
		f()
	}
}
