package llm

import (
	"encoding/json"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/talosgo/talos/contracts"
)

const gptBody = `{"model":"gpt","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}`

// rr is a round_robin policy making one attempt, with no breaker to speak
// of (a threshold no test reaches).
func rrPolicy(id string) RoutingPolicy {
	return RoutingPolicy{ID: id, Version: 1, Strategy: StrategyRoundRobin, MaxAttempts: 1,
		Cooldown: BreakerConfig{Failures: MaxPolicyFailureThreshold, Window: time.Minute, Cooldown: time.Minute}}
}

func setPolicies(t *testing.T, p *Proxy, ps ...RoutingPolicy) {
	t.Helper()
	m := map[string]RoutingPolicy{}
	for _, x := range ps {
		m[x.ID] = x
	}
	if err := p.SetPolicies(m); err != nil {
		t.Fatal(err)
	}
}

// soloRoute adds model "solo" served by upstream a alone.
func soloRoute(t *testing.T, rf *routed) {
	t.Helper()
	if err := rf.f.proxy.SetRouting(nil, []ModelRoute{{Model: "solo", Upstreams: []string{"a"}, PromptPer1K: 1000, CompletionPer1K: 1000}}); err != nil {
		t.Fatal(err)
	}
}

const soloBody = `{"model":"solo","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}`

// TestPolicyRoundRobin: under a round_robin policy named as the model,
// calls alternate between the group's upstreams; removing the policy
// returns to the configured order (a first).
func TestPolicyRoundRobin(t *testing.T) {
	rf := routedFixture(t)
	alice := rf.f.agent("gpt")
	setPolicies(t, rf.f.proxy, rrPolicy("gpt"))
	if p, ok := rf.f.proxy.PolicyOf("gpt"); !ok || p.Strategy != StrategyRoundRobin {
		t.Fatalf("PolicyOf(gpt) = %+v, %v", p, ok)
	}
	var seq []any
	for range 6 {
		if resp, raw, _ := alice.chat(gptBody); resp.StatusCode != 200 {
			t.Fatalf("chat: %d %s", resp.StatusCode, raw)
		}
		seq = append(seq, rf.f.lastEvent().Meta[MetaUpstream])
	}
	for i := 1; i < len(seq); i++ {
		if seq[i] == seq[i-1] {
			t.Fatalf("round robin answered by %v", seq)
		}
	}
	if rf.a.hits() != 3 || rf.b.hits() != 3 {
		t.Fatalf("hits a %d b %d, want 3 and 3", rf.a.hits(), rf.b.hits())
	}
	setPolicies(t, rf.f.proxy)
	for range 3 {
		alice.chat(gptBody)
	}
	if rf.a.hits() != 6 || rf.b.hits() != 3 {
		t.Fatalf("without a policy: hits a %d b %d, want 6 and 3", rf.a.hits(), rf.b.hits())
	}
}

// TestPolicyWeightedHash: one principal keeps its upstream; principals
// spread over both; weights drain an upstream; a route's Policy names
// the policy it follows instead of the one named as its model.
func TestPolicyWeightedHash(t *testing.T) {
	rf := routedFixture(t)
	f := rf.f
	wh := RoutingPolicy{ID: "sticky", Version: 1, Strategy: StrategyWeightedHash, MaxAttempts: 1}
	if err := f.proxy.SetRouting(nil, []ModelRoute{{Model: "wgt", Upstreams: []string{"a", "b"}, Policy: "sticky"}}); err != nil {
		t.Fatal(err)
	}
	// A policy named as the model, overridden by the route's Policy.
	setPolicies(t, f.proxy, wh, rrPolicy("wgt"))
	if p, _ := f.proxy.PolicyOf("wgt"); p.ID != "sticky" {
		t.Fatalf("wgt follows %q", p.ID)
	}
	body := `{"model":"wgt","max_tokens":20,"messages":[]}`
	byAgent := map[any]int{}
	for range 32 {
		ag := f.agent("wgt")
		var first any
		for i := range 3 {
			if resp, raw, _ := ag.chat(body); resp.StatusCode != 200 {
				t.Fatalf("chat: %d %s", resp.StatusCode, raw)
			}
			got := f.lastEvent().Meta[MetaUpstream]
			if i == 0 {
				first = got
			} else if got != first {
				t.Fatalf("one principal answered by %v then %v", first, got)
			}
		}
		byAgent[first]++
	}
	if byAgent["a"] == 0 || byAgent["b"] == 0 {
		t.Fatalf("32 principals all on one upstream: %v", byAgent)
	}
	// Weight 0 drains an upstream.
	for _, w := range [][]int{{0, 100}, {100, 0}} {
		if err := f.proxy.SetRouting(nil, []ModelRoute{{Model: "wgt", Upstreams: []string{"a", "b"}, Policy: "sticky", Weights: w}}); err != nil {
			t.Fatal(err)
		}
		want := "b"
		if w[0] > 0 {
			want = "a"
		}
		for range 8 {
			f.agent("wgt").chat(body)
			if got := f.lastEvent().Meta[MetaUpstream]; got != want {
				t.Fatalf("weights %v: answered by %v", w, got)
			}
		}
	}
	for _, bad := range []ModelRoute{
		{Model: "wgt", Upstreams: []string{"a"}, Weights: []int{1, 2}},
		{Model: "wgt", Upstreams: []string{"a"}, Weights: []int{-1}},
		{Model: "wgt", Upstreams: []string{"a"}, Weights: []int{MaxRouteWeight + 1}},
	} {
		if err := f.proxy.SetRouting(nil, []ModelRoute{bad}); contracts.CodeOf(err) != contracts.CodeInvalidInput {
			t.Fatalf("route %+v: %v", bad, err)
		}
	}
}

// TestPolicyLeastLatency: once both upstreams are measured, calls go to
// the faster one.
func TestPolicyLeastLatency(t *testing.T) {
	rf := routedFixture(t)
	alice := rf.f.agent("gpt")
	setPolicies(t, rf.f.proxy, RoutingPolicy{ID: "gpt", Version: 1, Strategy: StrategyLeastLatency, MaxAttempts: 1, Timeout: 5 * time.Second})
	rf.aAns.set(0, 150*time.Millisecond) // a is slow
	// Unmeasured upstreams first, in order: a, then b.
	for _, want := range []string{"a", "b"} {
		alice.chat(gptBody)
		if got := rf.f.lastEvent().Meta[MetaUpstream]; got != want {
			t.Fatalf("warm-up answered by %v, want %s", got, want)
		}
	}
	for range 5 {
		alice.chat(gptBody)
	}
	if rf.a.hits() != 1 || rf.b.hits() != 6 {
		t.Fatalf("hits a %d b %d, want 1 and 6", rf.a.hits(), rf.b.hits())
	}
}

// failFirst answers status for the first n calls, then as ans does.
func failFirst(n int64, status int, ans *openAIAnswer) (func(http.ResponseWriter, *http.Request, []byte), *atomic.Int64) {
	var calls atomic.Int64
	return func(w http.ResponseWriter, r *http.Request, b []byte) {
		if calls.Add(1) <= n {
			w.WriteHeader(status)
			return
		}
		ans.script(w, r, b)
	}, &calls
}

// TestPolicyRetries: a policy retries a 5xx or a timeout up to
// max_attempts (the same upstream again when it is alone), waiting the
// backoff between attempts, never a 4xx or 429, and never once a stream
// has started.
func TestPolicyRetries(t *testing.T) {
	rf := routedFixture(t)
	soloRoute(t, rf)
	alice := rf.f.agent("solo")
	pol := rrPolicy("solo")
	pol.MaxAttempts = 3
	setPolicies(t, rf.f.proxy, pol)

	rf.aAns.set(503, 0)
	if _, _, eb := alice.chat(soloBody); eb.Code != string(contracts.CodeUpstream5xx) {
		t.Fatalf("all attempts failing: %+v", eb)
	}
	if rf.a.hits() != 3 {
		t.Fatalf("%d attempts, want 3", rf.a.hits())
	}
	for _, st := range []int{400, 429} {
		h := rf.a.hits()
		rf.aAns.set(st, 0)
		alice.chat(soloBody)
		if rf.a.hits() != h+1 {
			t.Fatalf("status %d retried: %d attempts", st, rf.a.hits()-h)
		}
	}
	// Two failures, then an answer within three attempts.
	rf.aAns.set(0, 0)
	script, calls := failFirst(2, 502, rf.aAns)
	rf.a.set(script)
	if resp, raw, _ := alice.chat(soloBody); resp.StatusCode != 200 || calls.Load() != 3 {
		t.Fatalf("after two failures: %d %s, %d calls", resp.StatusCode, raw, calls.Load())
	}
	// The same for a stream that has not started.
	script, calls = failFirst(1, 500, rf.aAns)
	rf.a.set(script)
	resp, evs, _ := alice.stream(`{"model":"solo","stream":true,"max_tokens":20,"messages":[]}`)
	if text, _ := content(t, evs); resp.StatusCode != 200 || text != "from a" || calls.Load() != 2 {
		t.Fatalf("stream after a failure: %d %q, %d calls", resp.StatusCode, text, calls.Load())
	}
	// A stream that started and then broke is not sent again.
	var broken atomic.Int64
	rf.a.set(func(w http.ResponseWriter, r *http.Request, b []byte) {
		broken.Add(1)
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"par\"}}]}\n\ndata: {not json\n\n")
	})
	resp, evs, _ = alice.stream(`{"model":"solo","stream":true,"max_tokens":20,"messages":[]}`)
	if resp.StatusCode != 200 || broken.Load() != 1 {
		t.Fatalf("broken stream: %d, %d calls (%v)", resp.StatusCode, broken.Load(), evs)
	}
	// Backoff: 50 ms, then 100 ms before the third attempt.
	pol.Backoff, pol.BackoffMultiplier = 50*time.Millisecond, 2
	setPolicies(t, rf.f.proxy, pol)
	script, calls = failFirst(2, 503, rf.aAns)
	rf.a.set(script)
	start := time.Now()
	if resp, _, _ := alice.chat(soloBody); resp.StatusCode != 200 || calls.Load() != 3 {
		t.Fatalf("with backoff: %d, %d calls", resp.StatusCode, calls.Load())
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Fatalf("three attempts with 50 and 100 ms backoff took %v", d)
	}
}

// TestPolicyTimeout: the policy's timeout bounds each attempt instead of
// Config.Timeout, and a new version with a longer one lets the same slow
// upstream answer.
func TestPolicyTimeout(t *testing.T) {
	rf := routedFixture(t)
	soloRoute(t, rf)
	alice := rf.f.agent("solo")
	rf.aAns.set(0, 600*time.Millisecond)
	pol := rrPolicy("solo")
	pol.Timeout = 100 * time.Millisecond
	pol.MaxAttempts = 2
	setPolicies(t, rf.f.proxy, pol)
	if _, _, eb := alice.chat(soloBody); eb.Code != string(contracts.CodeUpstreamTimeout) {
		t.Fatalf("slower than the policy's timeout: %+v", eb)
	}
	if rf.a.hits() != 2 {
		t.Fatalf("%d attempts, want 2 (a timeout is retried)", rf.a.hits())
	}
	pol.Version, pol.Timeout, pol.MaxAttempts = 2, 5*time.Second, 1
	setPolicies(t, rf.f.proxy, pol)
	if resp, raw, _ := alice.chat(soloBody); resp.StatusCode != 200 {
		t.Fatalf("within the new timeout (Config.Timeout is shorter): %d %s", resp.StatusCode, raw)
	}
}

// TestPolicyCooldown: failure_threshold failures within the window open
// an upstream's breaker for the cooldown (calls are refused without
// reaching it), a trial after the cooldown closes it; failures further
// apart than the window do not open it.
func TestPolicyCooldown(t *testing.T) {
	rf := routedFixture(t)
	soloRoute(t, rf)
	alice := rf.f.agent("solo", "gpt")
	pol := rrPolicy("solo")
	pol.Cooldown = BreakerConfig{Failures: 2, Window: 10 * time.Second, Cooldown: time.Minute}
	setPolicies(t, rf.f.proxy, pol)
	rf.aAns.set(503, 0)
	// Apart by more than the window: never two within it.
	for i := range 3 {
		if i > 0 {
			*rf.clock = rf.clock.Add(11 * time.Second)
		}
		alice.chat(soloBody)
	}
	if rf.a.hits() != 3 {
		t.Fatalf("%d hits, want 3 (failures outside the window)", rf.a.hits())
	}
	alice.chat(soloBody) // second failure within 10 s of the last: open
	if _, _, eb := alice.chat(soloBody); eb.Code != string(contracts.CodeUpstream5xx) || rf.a.hits() != 4 {
		t.Fatalf("open breaker: %+v, %d hits", eb, rf.a.hits())
	}
	*rf.clock = rf.clock.Add(30 * time.Second)
	alice.chat(soloBody)
	if rf.a.hits() != 4 {
		t.Fatal("a call reached the upstream during its cooldown")
	}
	*rf.clock = rf.clock.Add(31 * time.Second)
	rf.aAns.set(0, 0)
	if resp, _, _ := alice.chat(soloBody); resp.StatusCode != 200 || rf.a.hits() != 5 {
		t.Fatalf("trial after the cooldown: %d, %d hits", resp.StatusCode, rf.a.hits())
	}
	// Under a round-robin policy over a and b, an open a is skipped.
	g := rrPolicy("gpt")
	g.Cooldown = BreakerConfig{Failures: 1, Window: time.Minute, Cooldown: time.Minute}
	setPolicies(t, rf.f.proxy, g, pol)
	rf.aAns.set(500, 0)
	for range 4 {
		alice.chat(gptBody)
	}
	if rf.a.hits() != 6 {
		t.Fatalf("a hit %d times, want 6 (opened by its first failure)", rf.a.hits())
	}
}

// TestSetPolicies: a refused set changes nothing.
func TestSetPolicies(t *testing.T) {
	rf := routedFixture(t)
	setPolicies(t, rf.f.proxy, rrPolicy("gpt"))
	for _, bad := range []map[string]RoutingPolicy{
		{"other": rrPolicy("gpt")},
		{"gpt": {ID: "gpt", Strategy: "random"}},
		{"gpt": {ID: "gpt", Strategy: StrategyRoundRobin, MaxAttempts: MaxPolicyAttempts + 1}},
		{"gpt": {ID: "gpt", Strategy: StrategyRoundRobin, BackoffMultiplier: 0.5}},
		{"": {Strategy: StrategyRoundRobin}},
	} {
		if err := rf.f.proxy.SetPolicies(bad); contracts.CodeOf(err) != contracts.CodeInvalidInput {
			t.Fatalf("SetPolicies(%v): %v", bad, err)
		}
	}
	if got := rf.f.proxy.Policies(); len(got) != 1 || got["gpt"].Strategy != StrategyRoundRobin {
		t.Fatalf("policies after refused sets: %v", got)
	}
}

// TestParseRoutingPolicy: the contract's defaults fill what a document
// leaves out; documents outside the contract or the limits are refused.
func TestParseRoutingPolicy(t *testing.T) {
	p, err := ParseRoutingPolicy([]byte(`{"id":"p","version":1,"strategy":"weighted_hash"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := RoutingPolicy{ID: "p", Version: 1, Strategy: StrategyWeightedHash, Timeout: 30 * time.Second, MaxAttempts: 3,
		Backoff: 500 * time.Millisecond, BackoffMultiplier: 2, Cooldown: BreakerConfig{Failures: 3, Window: time.Minute, Cooldown: 5 * time.Minute}}
	if p != want {
		t.Fatalf("defaults: %+v", p)
	}
	p, err = ParseRoutingPolicy([]byte(`{"id":"p","version":7,"strategy":"round_robin","timeout_ms":250,"retries":{"max_attempts":0,"backoff_ms":0,"backoff_multiplier":1.5},"cooldown":{"failure_threshold":1,"window_seconds":2,"cooldown_seconds":3}}`))
	if err != nil {
		t.Fatal(err)
	}
	want = RoutingPolicy{ID: "p", Version: 7, Strategy: StrategyRoundRobin, Timeout: 250 * time.Millisecond, MaxAttempts: 0,
		Backoff: 0, BackoffMultiplier: 1.5, Cooldown: BreakerConfig{Failures: 1, Window: 2 * time.Second, Cooldown: 3 * time.Second}}
	if p != want {
		t.Fatalf("full document: %+v", p)
	}
	for _, bad := range []string{
		``, `null`, `[]`, `{}`,
		`{"id":"p","strategy":"round_robin"}`,
		`{"id":"p","version":0,"strategy":"round_robin"}`,
		`{"id":"p","version":1.5,"strategy":"round_robin"}`,
		`{"id":"p","version":1}`,
		`{"id":"p","version":1,"strategy":"random"}`,
		`{"id":"","version":1,"strategy":"round_robin"}`,
		`{"id":"p","version":1,"strategy":"round_robin","extra":1}`,
		`{"id":"p","Version":1,"strategy":"round_robin"}`,
		`{"id":"p","version":1,"version":2,"strategy":"round_robin"}`,
		`{"id":"p","version":1,"strategy":"round_robin"} {}`,
		`{"id":"p","version":1,"strategy":"round_robin","timeout_ms":99}`,
		`{"id":"p","version":1,"strategy":"round_robin","timeout_ms":3600001}`,
		`{"id":"p","version":1,"strategy":"round_robin","timeout_ms":9223372036854775807}`,
		`{"id":"p","version":1,"strategy":"round_robin","retries":{"max_attempts":11}}`,
		`{"id":"p","version":1,"strategy":"round_robin","retries":{"max_attempts":-1}}`,
		`{"id":"p","version":1,"strategy":"round_robin","retries":{"backoff_ms":60001}}`,
		`{"id":"p","version":1,"strategy":"round_robin","retries":{"backoff_multiplier":0.9}}`,
		`{"id":"p","version":1,"strategy":"round_robin","retries":{"backoff_multiplier":11}}`,
		`{"id":"p","version":1,"strategy":"round_robin","retries":{"jitter":1}}`,
		`{"id":"p","version":1,"strategy":"round_robin","cooldown":{"failure_threshold":0}}`,
		`{"id":"p","version":1,"strategy":"round_robin","cooldown":{"window_seconds":86401}}`,
		`{"id":"p","version":1,"strategy":"round_robin","cooldown":{"cooldown_seconds":0}}`,
	} {
		if _, err := ParseRoutingPolicy([]byte(bad)); contracts.CodeOf(err) != contracts.CodeInvalidInput {
			t.Errorf("ParseRoutingPolicy(%s): %v", bad, err)
		}
	}
}

// policyJSON encodes p as a routing_policy document with every field set.
func policyJSON(p RoutingPolicy) []byte {
	b, _ := json.Marshal(map[string]any{
		"id": p.ID, "version": p.Version, "strategy": p.Strategy, "timeout_ms": p.Timeout.Milliseconds(),
		"retries": map[string]any{"max_attempts": p.MaxAttempts, "backoff_ms": p.Backoff.Milliseconds(), "backoff_multiplier": p.BackoffMultiplier},
		"cooldown": map[string]any{"failure_threshold": p.Cooldown.Failures, "window_seconds": int64(p.Cooldown.Window / time.Second),
			"cooldown_seconds": int64(p.Cooldown.Cooldown / time.Second)},
	})
	return b
}

// FuzzParseRoutingPolicy: an accepted document is within the limits, and
// encoding the policy again (every field explicit) parses to the same
// policy: what is enforced is what the document says.
func FuzzParseRoutingPolicy(f *testing.F) {
	for _, s := range []string{
		`{"id":"p","version":1,"strategy":"weighted_hash"}`,
		`{"id":"gpt-4o","version":3,"strategy":"least_latency","timeout_ms":1000,"retries":{"max_attempts":2,"backoff_ms":100,"backoff_multiplier":2},"cooldown":{"failure_threshold":5,"window_seconds":60,"cooldown_seconds":300}}`,
		`{"id":"p","version":1,"strategy":"round_robin","retries":{}}`,
		`{"id":"p","version":1,"strategy":"round_robin","timeout_ms":1e3}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		p, err := ParseRoutingPolicy(doc)
		if err != nil {
			if contracts.CodeOf(err) != contracts.CodeInvalidInput {
				t.Fatalf("error %v (%T) is not TALOS_INVALID_INPUT", err, err)
			}
			return
		}
		if p.Check() != nil || p.Timeout < 100*time.Millisecond || p.Cooldown.Failures < 1 || p.Cooldown.Window < time.Second {
			t.Fatalf("accepted out of range: %+v", p)
		}
		again, err := ParseRoutingPolicy(policyJSON(p))
		if err != nil || again != p {
			t.Fatalf("re-encoded %s: %+v, %v; want %+v", policyJSON(p), again, err, p)
		}
	})
}
