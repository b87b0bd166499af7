package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/talosgo/talos"
)

// newStreamingLLM is an OpenAI-compatible upstream that streams contents
// as chunks, then (when asked for it) a usage chunk reporting prompt and
// len(contents) completion tokens, then [DONE].
func newStreamingLLM(t *testing.T, prompt int, contents ...string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if r.URL.Path != "/v1/chat/completions" || !strings.Contains(string(b), `"stream_options":{"include_usage":true}`) {
			http.Error(w, "want a streamed request asking for usage", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for _, c := range contents {
			fmt.Fprintf(w, "data: {\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":%q}}]}\n\n", c)
			w.(http.Flusher).Flush()
		}
		fmt.Fprintf(w, "data: {\"object\":\"chat.completion.chunk\",\"choices\":[],\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d}}\n\n",
			prompt, len(contents), prompt+len(contents))
		io.WriteString(w, "data: [DONE]\n\n")
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestLLMStreamSpent: a streamed completion through the server moves the
// caller's budget by exactly what was streamed (LiteLLM's tracker leaves
// streamed spend uncounted), and the client gets the chunks and [DONE].
func TestLLMStreamSpent(t *testing.T) {
	up := newStreamingLLM(t, 6, "a", "b", "c", "d")
	cfg := testConfig(t)
	cfg.LLMUpstream = up.URL + "/v1"
	cfg.LLMPricePer1K = 10_000 // 10 micro-USD per token
	cfg.LLMTimeout = 5 * time.Second
	ts := newTestServer(t, cfg)
	alice := newAgent(t, ts, "alice", "team-llm")
	tok := issue(t, ts, alice.did, false, grant("llm", "m"))
	putBudget(t, ts, "key:"+alice.did, "0.05", "hard")

	req, _ := http.NewRequest("POST", alice.base+"/v1/chat/completions", stringsReader(`{"model":"m","stream":true,"max_tokens":20,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(talos.HeaderCapability, tok.Token)
	resp, err := alice.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		raw, _ := io.ReadAll(resp.Body)
		t.Fatalf("stream: %d %s", resp.StatusCode, raw)
	}
	var data []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			data = append(data, d)
		} else if sc.Text() != "" {
			t.Fatalf("unexpected line %q", sc.Text())
		}
	}
	if len(data) != 5 || data[4] != "[DONE]" {
		t.Fatalf("client got %q", data)
	}
	// 6 prompt + 4 completion tokens at 10 micro-USD.
	if u := getBudget(t, ts, "key:"+alice.did, ""); u.Used != "0.0001" || u.Reserved != "0" {
		t.Fatalf("after a streamed call: %+v", u)
	}
	// Audited once, with how the stream ended and who answered.
	ev := newAuditor(t, ts).verifyIncluded(auditSize(t, ts) - 1)
	if ev.SurfaceID != opLLM || ev.Meta["stream_end"] != "done" || ev.Meta["upstream"] != "default" || ev.Meta["cost_micros"] == nil {
		t.Fatalf("audit event %+v", ev)
	}
}

// TestLLMModels: GET /v1/models lists the configured models the caller's
// token grants, one audit event per listing; other models are refused.
func TestLLMModels(t *testing.T) {
	up := newStreamingLLM(t, 1, "x")
	cfg := testConfig(t)
	cfg.LLMUpstream = up.URL + "/v1"
	if err := parseLLMModels(&cfg.LLMModels, " m1, m2 ,m3,"); err != nil {
		t.Fatal(err)
	}
	ts := newTestServer(t, cfg)
	alice := newAgent(t, ts, "alice", "team-llm")
	tok := issue(t, ts, alice.did, false, grant("llm", "m1", "m3", "m9"))
	list := func(token string) (int, []byte) {
		req, _ := http.NewRequest("GET", alice.base+"/v1/models", nil)
		req.Header.Set(talos.HeaderCapability, token)
		resp, err := alice.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, raw
	}
	before := auditSize(t, ts)
	st, raw := list(tok.Token)
	if st != 200 || string(raw) != `{"object":"list","data":[{"id":"m1","object":"model","owned_by":"talos"},{"id":"m3","object":"model","owned_by":"talos"}]}`+"\n" {
		t.Fatalf("list: %d %s", st, raw)
	}
	if n := auditSize(t, ts); n != before+1 {
		t.Fatalf("a listing appended %d audit events", n-before)
	}
	if st, raw := list("not-a-token"); st < 400 || strings.Contains(string(raw), "m1") {
		t.Fatalf("list with a bad token: %d %s", st, raw)
	}
	var eb errBody
	if alice.chat(tok.Token, `{"model":"m9","max_tokens":1,"messages":[]}`, &eb); eb.Code != "MODEL_NOT_ALLOWED" {
		t.Fatalf("unserved model: %+v", eb)
	}
	if err := parseLLMModels(&cfg.LLMModels, "a b"); err == nil {
		t.Fatal("a model name with a space was accepted")
	}
	if err := parseLLMStreamTimeout(&cfg.LLMStreamTimeout, "2h"); err == nil {
		t.Fatal("a 2h stream timeout was accepted")
	}
}

// TestLLMRoutes: TALOS_LLM_UPSTREAMS and TALOS_LLM_ROUTES route models to
// several upstreams (here a failing default falling back to a second
// OpenAI-compatible one, and Anthropic's messages API), priced per model;
// the keys come from TALOS_LLM_API_KEY_<NAME> and never print.
func TestLLMRoutes(t *testing.T) {
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "overloaded sk-default-SECRET", http.StatusServiceUnavailable)
	}))
	t.Cleanup(failing.Close)
	backup := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer sk-backup" {
			http.Error(w, "bad key", http.StatusUnauthorized)
			return
		}
		io.WriteString(w, `{"object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"from backup"}}],"usage":{"prompt_tokens":100,"completion_tokens":50,"total_tokens":150}}`)
	}))
	t.Cleanup(backup.Close)
	claude := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/messages" || r.Header.Get("x-api-key") != "sk-claude" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		io.WriteString(w, `{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"from claude"}],"stop_reason":"end_turn","usage":{"input_tokens":10,"output_tokens":20}}`)
	}))
	t.Cleanup(claude.Close)

	vars := map[string]string{
		"TALOS_DATA_DIR":                t.TempDir(),
		"TALOS_LLM_UPSTREAM":            failing.URL + "/v1",
		"TALOS_LLM_UPSTREAMS":           "backup=" + backup.URL + "/v1, claude=anthropic+" + claude.URL + "/v1",
		"TALOS_LLM_ROUTES":              "gpt=default>backup@0.01:0.02, claude-x=claude@0.1:0.2",
		"TALOS_LLM_API_KEY_BACKUP":      "sk-backup",
		"TALOS_LLM_API_KEY_CLAUDE":      " sk-claude ",
		"TALOS_LLM_API_KEY":             "sk-default-SECRET",
		"TALOS_LLM_PRICE_PER_1K_TOKENS": "5",
	}
	loaded, _, err := LoadConfig(nil, env(vars))
	if err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprintf("%v %+v %#v", loaded, loaded, loaded); strings.Contains(s, "sk-backup") || strings.Contains(s, "sk-claude") {
		t.Fatal("an upstream key printed with the config")
	}
	if len(loaded.LLMRoutes) != 2 || loaded.LLMRoutes[0].PromptPer1K != 10_000 || loaded.LLMRoutes[0].CompletionPer1K != 20_000 ||
		len(loaded.LLMRoutes[0].Upstreams) != 2 || loaded.LLMUpstreams[1].Kind != "anthropic" {
		t.Fatalf("routes %+v upstreams %+v", loaded.LLMRoutes, loaded.LLMUpstreams)
	}
	cfg := testConfig(t)
	cfg.LLMUpstream, cfg.LLMAPIKey = loaded.LLMUpstream, loaded.LLMAPIKey
	cfg.LLMUpstreams, cfg.LLMRoutes = loaded.LLMUpstreams, loaded.LLMRoutes
	ts := newTestServer(t, cfg)
	alice := newAgent(t, ts, "alice", "team-llm")
	tok := issue(t, ts, alice.did, false, grant("llm", "gpt", "claude-x", "other"))
	putBudget(t, ts, "key:"+alice.did, "10", "hard")

	var resp map[string]any
	if st := alice.chat(tok.Token, `{"model":"gpt","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`, &resp); st != 200 || !strings.Contains(fmt.Sprint(resp), "from backup") {
		t.Fatalf("gpt: %d %v", st, resp)
	}
	// 100 prompt at $0.01/1k + 50 completion at $0.02/1k = $0.002.
	if u := getBudget(t, ts, "key:"+alice.did, ""); u.Used != "0.002" {
		t.Fatalf("after gpt: %+v", u)
	}
	if st := alice.chat(tok.Token, `{"model":"claude-x","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`, &resp); st != 200 || !strings.Contains(fmt.Sprint(resp), "from claude") {
		t.Fatalf("claude-x: %d %v", st, resp)
	}
	// + 10 prompt at $0.1/1k + 20 completion at $0.2/1k = $0.005.
	if u := getBudget(t, ts, "key:"+alice.did, ""); u.Used != "0.007" {
		t.Fatalf("after claude-x: %+v", u)
	}
	var eb errBody
	if alice.chat(tok.Token, `{"model":"other","max_tokens":1,"messages":[]}`, &eb); eb.Code != "MODEL_NOT_ALLOWED" {
		t.Fatalf("unrouted model: %+v", eb)
	}
	for _, bad := range []string{"gpt", "gpt=a@1", "gpt=a b@1:2", "gpt=a@x:1"} {
		var r []llmRoute
		if parseLLMRoutes(&r, bad) == nil {
			t.Errorf("route %q accepted", bad)
		}
	}
	for _, bad := range []string{"x", "a=ftp://h", "default=http://h", "a=http://h,a=http://i"} {
		var u []llmUpstream
		if parseLLMUpstreams(&u, bad) == nil {
			t.Errorf("upstreams %q accepted", bad)
		}
	}
}
