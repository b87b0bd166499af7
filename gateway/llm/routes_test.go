package llm

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/contracts"
)

func (u *streamUpstream) hits() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.bodies)
}

// openAIAnswer answers chat completions, streamed or not, with usage
// prompt and completion, or with status fail when fail is set.
type openAIAnswer struct {
	mu                 sync.Mutex
	fail               int
	sleep              time.Duration
	prompt, completion int
	text               string
}

func (a *openAIAnswer) set(fail int, sleep time.Duration) {
	a.mu.Lock()
	a.fail, a.sleep = fail, sleep
	a.mu.Unlock()
}

func (a *openAIAnswer) script(w http.ResponseWriter, r *http.Request, body []byte) {
	a.mu.Lock()
	fail, sleep := a.fail, a.sleep
	a.mu.Unlock()
	if sleep > 0 {
		select {
		case <-time.After(sleep):
		case <-r.Context().Done():
			return
		}
	}
	if fail != 0 {
		w.WriteHeader(fail)
		io.WriteString(w, `{"error":{"message":"sk-upstream-SECRET"}}`)
		return
	}
	if strings.Contains(string(body), `"stream":true`) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":%q}}]}\n\n", a.text)
		fmt.Fprintf(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d}}\n\ndata: [DONE]\n\n",
			a.prompt, a.completion, a.prompt+a.completion)
		return
	}
	fmt.Fprintf(w, `{"object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":%q}}],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`,
		a.text, a.prompt, a.completion, a.prompt+a.completion)
}

// anthropicFake speaks Anthropic's messages API.
type anthropicFake struct {
	mu      sync.Mutex
	headers http.Header
	fail    int
	tail    string // raw events replacing the end of the stream
}

func (a *anthropicFake) script(w http.ResponseWriter, r *http.Request, body []byte) {
	a.mu.Lock()
	a.headers = r.Header.Clone()
	fail, tail := a.fail, a.tail
	a.mu.Unlock()
	if r.URL.Path != "/v1/messages" {
		http.NotFound(w, r)
		return
	}
	if fail != 0 {
		w.WriteHeader(fail)
		io.WriteString(w, `{"type":"error","error":{"type":"overloaded_error","message":"sk-ant-SECRET"}}`)
		return
	}
	var req anRequest
	json.Unmarshal(body, &req)
	if !req.Stream {
		io.WriteString(w, `{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text","text":"Hel"},{"type":"text","text":"lo"}],"stop_reason":"max_tokens","usage":{"input_tokens":12,"output_tokens":3}}`)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	io.WriteString(w, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\n"+
		"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n"+
		"event: ping\ndata: {\"type\":\"ping\"}\n\n"+
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}}\n\n"+
		"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"lo\"}}\n\n")
	if tail != "" {
		io.WriteString(w, tail)
		return
	}
	io.WriteString(w, "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n"+
		"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":3}}\n\n"+
		"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
}

type routed struct {
	f          *fixture
	a, b, c    *streamUpstream
	aAns, bAns *openAIAnswer
	claude     *anthropicFake
	clock      *time.Time
}

func routedFixture(t *testing.T) *routed {
	rf := &routed{a: newStreamUpstream(t), b: newStreamUpstream(t), c: newStreamUpstream(t),
		aAns: &openAIAnswer{prompt: 10, completion: 5, text: "from a"}, bAns: &openAIAnswer{prompt: 10, completion: 5, text: "from b"},
		claude: &anthropicFake{}}
	rf.a.set(rf.aAns.script)
	rf.b.set(rf.bAns.script)
	rf.c.set(rf.claude.script)
	rf.f = newFixture(t, func(c *Config) {
		c.Upstream = ""
		c.Upstreams = []Upstream{
			{Name: "a", URL: rf.a.srv.URL + "/v1", APIKey: "sk-a"},
			{Name: "b", Kind: KindOpenAI, URL: rf.b.srv.URL + "/v1", APIKey: "sk-b"},
			{Name: "claude", Kind: KindAnthropic, URL: rf.c.srv.URL + "/v1", APIKey: "sk-ant"},
		}
		c.Routes = []ModelRoute{
			{Model: "gpt", Upstreams: []string{"a", "b"}, PromptPer1K: 1000, CompletionPer1K: 4000},
			{Model: "claude-x", Upstreams: []string{"claude"}, PromptPer1K: 2000, CompletionPer1K: 8000},
		}
		c.Breaker = BreakerConfig{Failures: 2, Cooldown: time.Minute}
	})
	now := time.Unix(1_800_000_000, 0)
	rf.clock = &now
	rf.f.proxy.now = func() time.Time { return *rf.clock }
	return rf
}

// TestRoutesPricesFallback: models are routed to their upstreams and
// priced per model (prompt and completion apart); a 5xx or timeout falls
// back to the next upstream, a 4xx does not; an upstream failing twice is
// skipped until its cooldown has passed.
func TestRoutesPricesFallback(t *testing.T) {
	rf := routedFixture(t)
	f := rf.f
	alice := f.agent("gpt", "claude-x", "other")
	f.hardBudget(alice, 1_000_000, budget.ModeHard)
	body := `{"model":"gpt","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}`
	spent := int64(0)
	call := func(wantFrom string) {
		t.Helper()
		resp, raw, _ := alice.chat(body)
		if resp.StatusCode != 200 || !strings.Contains(string(raw), wantFrom) {
			t.Fatalf("chat: %d %s, want %s", resp.StatusCode, raw, wantFrom)
		}
		spent += 10*1 + 5*4 // 10 prompt at 1, 5 completion at 4 micro-USD
		if s, r := alice.spent(); s != spent || r != 0 {
			t.Fatalf("spent %d reserved %d, want %d", s, r, spent)
		}
	}
	call("from a")
	if e := f.lastEvent(); e.Meta[MetaUpstream] != "a" {
		t.Fatalf("audit event %+v", e)
	}
	if _, _, eb := alice.chat(`{"model":"other","max_tokens":20,"messages":[]}`); eb.Code != string(contracts.CodeModelNotAllowed) {
		t.Fatalf("unrouted model: %+v", eb)
	}
	// a fails: b answers; after two failures a is skipped.
	rf.aAns.set(503, 0)
	call("from b")
	if e := f.lastEvent(); e.Meta[MetaUpstream] != "b" {
		t.Fatalf("audit event of a fallback %+v", e)
	}
	rf.aAns.set(0, time.Second) // slower than Config.Timeout
	call("from b")
	hits := rf.a.hits()
	rf.aAns.set(0, 0)
	call("from b")
	if rf.a.hits() != hits {
		t.Fatal("an open breaker let a call through")
	}
	// Streams fall back the same way (before anything is sent).
	resp, evs, _ := alice.stream(`{"model":"gpt","stream":true,"max_tokens":20,"messages":[]}`)
	if text, _ := content(t, evs); resp.StatusCode != 200 || text != "from b" {
		t.Fatalf("stream: %q", text)
	}
	spent += 10 + 5*4
	// After the cooldown one call tries a again, and a success closes it.
	*rf.clock = rf.clock.Add(time.Minute + time.Second)
	call("from a")
	call("from a")
	// A 4xx does not fall back: the request was refused as sent.
	rf.aAns.set(400, 0)
	bh := rf.b.hits()
	if _, raw, eb := alice.chat(body); eb.Code != string(contracts.CodeInvalidInput) || strings.Contains(string(raw), "SECRET") {
		t.Fatalf("4xx: %s", raw)
	}
	if rf.b.hits() != bh {
		t.Fatal("a 4xx fell back")
	}
	// Both failing: UPSTREAM_5XX, nothing charged.
	rf.aAns.set(502, 0)
	rf.bAns.set(500, 0)
	if _, _, eb := alice.chat(body); eb.Code != string(contracts.CodeUpstream5xx) {
		t.Fatalf("all failing: %+v", eb)
	}
	if s, _ := alice.spent(); s != spent {
		t.Fatalf("spent %d, want %d", s, spent)
	}
}

// TestAnthropicUpstream: a model routed to Anthropic's messages API is
// translated both ways, streamed or not, and charged at its prices by the
// usage Anthropic reports (or the proxy's count when larger).
func TestAnthropicUpstream(t *testing.T) {
	rf := routedFixture(t)
	f := rf.f
	alice := f.agent("claude-x")
	f.hardBudget(alice, 1_000_000, budget.ModeHard)
	body := `{"model":"claude-x","max_tokens":30,"temperature":0.2,"stop":"END","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi"}]}]}`
	resp, raw, _ := alice.chat(body)
	var cc struct {
		Object  string `json:"object"`
		Model   string `json:"model"`
		Choices []struct {
			Message      oaChoiceMessage `json:"message"`
			FinishReason string          `json:"finish_reason"`
		} `json:"choices"`
		Usage oaUsage `json:"usage"`
	}
	if resp.StatusCode != 200 || json.Unmarshal(raw, &cc) != nil || cc.Object != "chat.completion" || cc.Model != "claude-x" ||
		len(cc.Choices) != 1 || cc.Choices[0].Message.Content != "Hello" || cc.Choices[0].FinishReason != "length" ||
		cc.Usage != (oaUsage{PromptTokens: 12, CompletionTokens: 3, TotalTokens: 15}) {
		t.Fatalf("chat: %d %s", resp.StatusCode, raw)
	}
	var sent anRequest
	if err := json.Unmarshal(rf.c.last(), &sent); err != nil || sent.Model != "claude-x" || sent.MaxTokens != 30 || sent.System != "be brief" ||
		len(sent.Messages) != 1 || sent.Messages[0].Role != "user" || sent.Messages[0].Content[0].Text != "hi" ||
		len(sent.StopSequences) != 1 || sent.StopSequences[0] != "END" || string(sent.Temperature) != "0.2" || sent.Stream {
		t.Fatalf("sent %s", rf.c.last())
	}
	rf.claude.mu.Lock()
	hdr := rf.claude.headers
	rf.claude.mu.Unlock()
	if hdr.Get("x-api-key") != "sk-ant" || hdr.Get("anthropic-version") != AnthropicVersion || hdr.Get("Authorization") != "" {
		t.Fatalf("headers %v", hdr)
	}
	want := int64(12*2 + 3*8)
	if s, _ := alice.spent(); s != want {
		t.Fatalf("spent %d, want %d", s, want)
	}

	// Streamed: Anthropic events become chat completion chunks.
	_, evs, _ := alice.stream(`{"model":"claude-x","stream":true,"max_tokens":30,"messages":[{"role":"user","content":"hi"}]}`)
	if text, _ := content(t, evs); text != "Hello" || evs[len(evs)-1].data != "[DONE]" {
		t.Fatalf("stream: %v", evs)
	}
	if !strings.Contains(evs[0].data, `"role":"assistant"`) || !strings.Contains(evs[len(evs)-2].data, `"finish_reason":"stop"`) {
		t.Fatalf("stream events: %v", evs)
	}
	want += 12*2 + 3*8
	if s, _ := alice.spent(); s != want {
		t.Fatalf("spent %d after the stream, want %d", s, want)
	}
	// A client asking for usage gets it as the last chunk.
	_, evs, _ = alice.stream(`{"model":"claude-x","stream":true,"stream_options":{"include_usage":true},"max_tokens":30,"messages":[{"role":"user","content":"hi"}]}`)
	if !strings.Contains(evs[len(evs)-2].data, `"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15}`) {
		t.Fatalf("usage chunk: %v", evs)
	}
	want += 12*2 + 3*8

	// An error event mid-stream ends it with UPSTREAM_5XX, charging what
	// was streamed (12 prompt tokens reported at the start, 2 counted).
	rf.claude.mu.Lock()
	rf.claude.tail = "event: error\ndata: {\"type\":\"error\",\"error\":{\"message\":\"sk-ant-SECRET\"}}\n\n"
	rf.claude.mu.Unlock()
	_, evs, _ = alice.stream(`{"model":"claude-x","stream":true,"max_tokens":30,"messages":[{"role":"user","content":"hi"}]}`)
	last := evs[len(evs)-1]
	if last.typ != "error" || !strings.Contains(last.data, string(contracts.CodeUpstream5xx)) || strings.Contains(last.data, "SECRET") {
		t.Fatalf("error event: %+v", last)
	}
	want += 12*2 + 2*8
	if s, _ := alice.spent(); s != want {
		t.Fatalf("spent %d after a failed stream, want %d", s, want)
	}
	rf.claude.mu.Lock()
	rf.claude.tail, rf.claude.fail = "", 529
	rf.claude.mu.Unlock()
	if _, raw, eb := alice.chat(body); eb.Code != string(contracts.CodeUpstream5xx) || strings.Contains(string(raw), "SECRET") {
		t.Fatalf("529: %s", raw)
	}

	// What the messages API cannot carry is refused, not dropped.
	for _, b := range []string{
		`{"model":"claude-x","max_tokens":5,"tools":[],"messages":[{"role":"user","content":"x"}]}`,
		`{"model":"claude-x","max_tokens":5,"n":2,"messages":[{"role":"user","content":"x"}]}`,
		`{"model":"claude-x","max_tokens":5,"messages":[{"role":"user","content":[{"type":"image_url","image_url":{}}]}]}`,
		`{"model":"claude-x","max_tokens":5,"messages":[{"role":"tool","content":"x"}]}`,
		`{"model":"claude-x","max_tokens":5,"messages":[]}`,
	} {
		if _, _, eb := alice.chat(b); eb.Code != string(contracts.CodeInvalidInput) {
			t.Fatalf("%s: %+v", b, eb)
		}
	}
}

func TestNewChecksRoutes(t *testing.T) {
	k := newFixture(t).proxy.cfg.Kernel
	up := []Upstream{{Name: "a", URL: "http://127.0.0.1:1/v1"}}
	for name, cfg := range map[string]Config{
		"unknown upstream": {Kernel: k, Upstreams: up, Routes: []ModelRoute{{Model: "m", Upstreams: []string{"b"}}}},
		"no upstreams":     {Kernel: k, Upstreams: up, Routes: []ModelRoute{{Model: "m"}}},
		"negative price":   {Kernel: k, Upstreams: up, Routes: []ModelRoute{{Model: "m", Upstreams: []string{"a"}, CompletionPer1K: -1}}},
		"duplicate model":  {Kernel: k, Upstreams: up, Routes: []ModelRoute{{Model: "m", Upstreams: []string{"a"}}, {Model: "m", Upstreams: []string{"a"}}}},
		"duplicate name":   {Kernel: k, Upstreams: append(up, up[0]), Routes: []ModelRoute{{Model: "m", Upstreams: []string{"a"}}}},
		"bad kind":         {Kernel: k, Upstreams: []Upstream{{Name: "a", Kind: "gemini", URL: "http://x/v1"}}, Routes: []ModelRoute{{Model: "m", Upstreams: []string{"a"}}}},
		"bad URL":          {Kernel: k, Upstreams: []Upstream{{Name: "a", URL: "file:///x"}}, Routes: []ModelRoute{{Model: "m", Upstreams: []string{"a"}}}},
		"no routes":        {Kernel: k, Upstreams: up},
	} {
		if _, err := New(cfg); contracts.CodeOf(err) != contracts.CodeInvalidInput {
			t.Errorf("%s: %v", name, err)
		}
	}
}
