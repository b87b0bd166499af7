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
