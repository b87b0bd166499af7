package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/contracts"

	llmgw "github.com/talosgo/talos/gateway/llm"
)

// fakeLLM is an OpenAI-compatible upstream. It answers with the usage
// given by usage (total tokens), or the status given by fail.
type fakeLLM struct {
	srv    *httptest.Server
	calls  atomic.Int64
	usage  atomic.Int64
	fail   atomic.Int64 // HTTP status to answer with, 0: success
	sleep  atomic.Int64 // nanoseconds to wait before answering
	gotKey atomic.Value
}

func newFakeLLM(t *testing.T) *fakeLLM {
	f := &fakeLLM{}
	f.usage.Store(100)
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.calls.Add(1)
		f.gotKey.Store(r.Header.Get("Authorization"))
		if r.URL.Path != "/v1/chat/completions" || r.Method != "POST" {
			http.NotFound(w, r)
			return
		}
		var req struct {
			Model string `json:"model"`
		}
		b, _ := io.ReadAll(r.Body)
		json.Unmarshal(b, &req)
		if d := f.sleep.Load(); d > 0 {
			select {
			case <-time.After(time.Duration(d)):
			case <-r.Context().Done():
				return
			}
		}
		if st := f.fail.Load(); st != 0 {
			w.WriteHeader(int(st))
			io.WriteString(w, `{"error":{"message":"upstream says no"}}`)
			return
		}
		u := f.usage.Load()
		fmt.Fprintf(w, `{"id":"c1","object":"chat.completion","model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`,
			req.Model, u/2, u-u/2, u)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// chat sends a chat completion through the proxy with token.
func (a *agent) chat(token, body string, v any) int {
	a.t.Helper()
	req, err := http.NewRequest("POST", a.base+"/v1/chat/completions", stringsReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(talos.HeaderCapability, token)
	resp, err := a.client.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	return decode(a.t, resp, v)
}

func TestLLMProxy(t *testing.T) {
	llm := newFakeLLM(t)
	cfg := testConfig(t)
	cfg.LLMUpstream = llm.srv.URL + "/v1"
	cfg.LLMAPIKey = secretBytes("sk-test-upstream")
	cfg.LLMPricePer1K = 10_000 // $0.01 per 1000 tokens: 10 micro-USD per token
	cfg.LLMTimeout = 300 * time.Millisecond
	ts := newTestServer(t, cfg)
	alice := newAgent(t, ts, "alice", "team-llm")
	tok := issue(t, ts, alice.did, false, grant("llm", "small-model"))

	// A key budget of $0.05 = 5000 tokens at this price.
	putBudget(t, ts, "key:"+alice.did, "0.05", "hard")

	var resp map[string]any
	body := `{"model":"small-model","max_tokens":200,"messages":[{"role":"user","content":"hello"}],"temperature":0.5}`
	if st := alice.chat(tok.Token, body, &resp); st != 200 || resp["model"] != "small-model" {
		t.Fatalf("chat: %d %v", st, resp)
	}
	if got := llm.gotKey.Load(); got != "Bearer sk-test-upstream" {
		t.Fatalf("upstream got Authorization %q", got)
	}
	// Settled by reported usage (100 tokens = 1000 micro-USD), not by the
	// reservation (200 max tokens + prompt estimate).
	u := getBudget(t, ts, "key:"+alice.did, "")
	if u.Used != "0.001" || u.Reserved != "0" {
		t.Fatalf("after one call: %+v", u)
	}

	// Another model is outside the grants: denied before the upstream.
	calls := llm.calls.Load()
	var eb errBody
	if st := alice.chat(tok.Token, `{"model":"big-model","messages":[]}`, &eb); st != http.StatusForbidden || eb.Code != string(contracts.CodeDenied) {
		t.Fatalf("model outside the grants: %d %+v", st, eb)
	}
	// A stream, like any call, needs max_tokens under a hard budget.
	if st := alice.chat(tok.Token, `{"model":"small-model","stream":true,"messages":[]}`, &eb); eb.Code != string(contracts.CodeInvalidInput) {
		t.Fatalf("stream: %d %+v", st, eb)
	}
	// A reservation larger than what is left is refused: max_tokens 5000
	// costs $0.05 plus the prompt, over the remaining $0.049.
	if st := alice.chat(tok.Token, `{"model":"small-model","max_tokens":5000,"messages":[]}`, &eb); st != http.StatusPaymentRequired && eb.Code != string(contracts.CodeBudgetExceeded) {
		t.Fatalf("over budget: %d %+v", st, eb)
	}
	if eb.Code != string(contracts.CodeBudgetExceeded) || eb.Retryable == nil || !*eb.Retryable {
		t.Fatalf("over budget body: %+v", eb)
	}
	if llm.calls.Load() != calls {
		t.Fatal("a refused request reached the upstream")
	}

	// Upstream failures map to UPSTREAM_5XX and UPSTREAM_TIMEOUT and charge
	// nothing.
	llm.fail.Store(503)
	if st := alice.chat(tok.Token, body, &eb); eb.Code != string(contracts.CodeUpstream5xx) || st != contracts.HTTPStatus(contracts.CodeUpstream5xx) {
		t.Fatalf("upstream 503: %d %+v", st, eb)
	}
	llm.fail.Store(0)
	llm.sleep.Store(int64(2 * time.Second))
	if st := alice.chat(tok.Token, body, &eb); eb.Code != string(contracts.CodeUpstreamTimeout) || st != contracts.HTTPStatus(contracts.CodeUpstreamTimeout) {
		t.Fatalf("upstream timeout: %d %+v", st, eb)
	}
	llm.sleep.Store(0)
	if u := getBudget(t, ts, "key:"+alice.did, ""); u.Used != "0.001" || u.Reserved != "0" {
		t.Fatalf("failed calls were charged: %+v", u)
	}
	// A warn-mode budget lets an over-budget call through, flagged.
	putBudget(t, ts, "key:"+alice.did, "0.001", "warn")
	req, _ := http.NewRequest("POST", alice.base+"/v1/chat/completions", stringsReader(body))
	req.Header.Set(talos.HeaderCapability, tok.Token)
	hr, err := alice.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	hr.Body.Close()
	if hr.StatusCode != 200 || hr.Header.Get(llmgw.HeaderBudgetWarning) != "exceeded" {
		t.Fatalf("warn-mode call: %d %q", hr.StatusCode, hr.Header.Get(llmgw.HeaderBudgetWarning))
	}
	putBudget(t, ts, "key:"+alice.did, "0.05", "hard")

	// An upstream without usage is charged the worst case.
	llm.usage.Store(-1)
	if st := alice.chat(tok.Token, body, &resp); st != 200 {
		t.Fatalf("chat without usage: %d", st)
	}
	if u := getBudget(t, ts, "key:"+alice.did, ""); u.Used == "0.002" {
		t.Fatalf("a success without usage was not charged: %+v", u)
	}
}
