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
}
