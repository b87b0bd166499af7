package a2a

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/talosgo/talos/contracts"
)

func userTask(text string) *Task {
	return &Task{ID: "t1", ContextID: "c", History: []Message{{MessageID: "m", Role: "user", Parts: []Part{{Text: text}}}}}
}

func TestChatCompletionsExecutor(t *testing.T) {
	const key = "sk-secret-key-value"
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/chat/completions" || r.Header.Get("Authorization") != "Bearer "+key {
			w.WriteHeader(401)
			return
		}
		var req struct {
			Model    string `json:"model"`
			Messages []struct{ Role, Content string }
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		last := req.Messages[len(req.Messages)-1].Content
		switch last {
		case "dup":
			w.Write([]byte(`{"choices":[{"message":{"content":"a","Content":"b"}}]}`))
		case "empty":
			w.Write([]byte(`{"choices":[]}`))
		default:
			json.NewEncoder(w).Encode(map[string]any{"choices": []any{map[string]any{"message": map[string]any{"role": "assistant", "content": req.Model + " says " + last}}}})
		}
	}))
	defer upstream.Close()
	e := &ChatCompletionsExecutor{BaseURL: upstream.URL + "/v1", Model: "m1", APIKey: key}
	arts, err := e.Execute(context.Background(), userTask("hi"), nil)
	if err != nil || len(arts) != 1 || arts[0].Parts[0].Text != "m1 says hi" {
		t.Fatalf("%v %v", arts, err)
	}
	for _, in := range []string{"dup", "empty"} {
		_, err := e.Execute(context.Background(), userTask(in), nil)
		if contracts.CodeOf(err) != contracts.CodeSchemaMismatch {
			t.Errorf("%s: %v", in, err)
		}
	}
	bad := &ChatCompletionsExecutor{BaseURL: upstream.URL + "/v1", Model: "m1", APIKey: "wrong-" + key}
	if _, err := bad.Execute(context.Background(), userTask("x"), nil); err == nil || strings.Contains(err.Error(), key) {
		t.Fatalf("unauthorized upstream: %v", err)
	}
}

func TestMCPToolExecutor(t *testing.T) {
	ctx := context.Background()
	srv := mcp.NewServer(&mcp.Implementation{Name: "echo", Version: "1"}, nil)
	type in struct {
		Text string `json:"text"`
	}
	mcp.AddTool(srv, &mcp.Tool{Name: "upper", Description: "upper-cases text"}, func(_ context.Context, _ *mcp.CallToolRequest, a in) (*mcp.CallToolResult, any, error) {
		if a.Text == "fail" {
			return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: "no"}}}, nil, nil
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: strings.ToUpper(a.Text)}}}, nil, nil
	})
	st, ct := mcp.NewInMemoryTransports()
	ss, err := srv.Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "a2a", Version: "1"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	e := &MCPToolExecutor{Session: cs, Tool: "upper"}
	arts, err := e.Execute(ctx, userTask("hello"), nil)
	if err != nil || arts[0].Parts[0].Text != "HELLO" {
		t.Fatalf("%v %v", arts, err)
	}
	if _, err := e.Execute(ctx, userTask("fail"), nil); contracts.CodeOf(err) != contracts.CodeMCPProtocol {
		t.Fatalf("tool error: %v", err)
	}
	if _, err := (&MCPToolExecutor{Session: cs, Tool: "nope"}).Execute(ctx, userTask("x"), nil); err == nil {
		t.Fatal("unknown tool succeeded")
	}
}

func FuzzParseCompletion(f *testing.F) {
	for _, s := range []string{`{"choices":[{"message":{"content":"x"}}]}`, `{"choices":[{"message":{"content":null}}]}`,
		`{"choices":[{"message":{"content":"a","CONTENT":"b"}}]}`, `{"choices":{}}`, `[]`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		text, err := parseCompletion(b)
		if err != nil {
			if contracts.CodeOf(err) != contracts.CodeSchemaMismatch {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		// What is accepted has no case-folded duplicate keys.
		if contracts.CheckCaseFold(b) != nil {
			t.Fatalf("accepted %q (%q)", b, text)
		}
	})
}
