package main

import (
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/internal/testenv"

	"github.com/talosgo/talos/gateway/config"
	"github.com/talosgo/talos/gateway/llm"
)

// twoUpstreams puts upstreams u1 and u2 (fake LLMs) and model group m1
// over both on ts.
func twoUpstreams(t *testing.T, ts *testServer) (*fakeLLM, *fakeLLM) {
	t.Helper()
	up1, up2 := newFakeLLM(t), newFakeLLM(t)
	for id, up := range map[string]*fakeLLM{"u1": up1, "u2": up2} {
		if st, v := adminJSON(t, ts, "PUT", "/v1/admin/llm/upstreams/"+id, ts.cred, `{"url":"`+up.srv.URL+`/v1"}`); st != 201 {
			t.Fatalf("put upstream %s: %d %v", id, st, v)
		}
	}
	if st, v := adminJSON(t, ts, "PUT", "/v1/admin/llm/model-groups/m1", ts.cred, `{"upstreams":["u1","u2"],"prompt_per_1k_micro_usd":1,"completion_per_1k_micro_usd":1}`); st != 201 {
		t.Fatalf("put group: %d %v", st, v)
	}
	return up1, up2
}

func putConfigPolicy(t *testing.T, ts *testServer, name, doc string) {
	t.Helper()
	var v map[string]any
	if st := decode(t, ts.do(t, "PUT", "/v1/config/policy/"+name, ts.cred, []byte(doc)), &v); st != http.StatusOK && st != http.StatusCreated {
		t.Fatalf("PUT config policy %s: %d %v", name, st, v)
	}
}

const m1Body = `{"model":"m1","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`

// chatN sends n chat completions for m1 and returns how many answered 200
// and how many were refused UPSTREAM_TIMEOUT.
func chatN(t *testing.T, a *agent, tok string, n int) (ok, timeouts int) {
	t.Helper()
	for range n {
		var eb struct{ Code string }
		switch st := a.chat(tok, m1Body, &eb); {
		case st == 200:
			ok++
		case eb.Code == string(contracts.CodeUpstreamTimeout):
			timeouts++
		default:
			t.Fatalf("chat: %d %+v", st, eb)
		}
	}
	return ok, timeouts
}

// TestConfigPolicyTakesEffect: a routing policy document PUT through
// /v1/config/policy/{name} changes the routing of the model group of the
// same name at once: no policy → every call on u1; round_robin → calls
// alternate; a version with a 200 ms timeout → the calls on a slow u1
// time out; a least_latency version → calls avoid the slow u1. A group's
// routing_policy_id names another policy instead.
func TestConfigPolicyTakesEffect(t *testing.T) {
	cfg := testConfig(t)
	cfg.UpstreamAllowLoopback = true
	ts := newTestServer(t, cfg)
	up1, up2 := twoUpstreams(t, ts)
	alice := newAgent(t, ts, "alice", "team-a")
	tok := issue(t, ts, alice.did, false, grant("llm", "m1", "m2")).Token

	if ok, _ := chatN(t, alice, tok, 4); ok != 4 || up1.calls.Load() != 4 || up2.calls.Load() != 0 {
		t.Fatalf("without a policy: %d ok, u1 %d u2 %d", ok, up1.calls.Load(), up2.calls.Load())
	}
	putConfigPolicy(t, ts, "m1", `{"id":"m1","version":1,"strategy":"round_robin","retries":{"max_attempts":1}}`)
	if p, ok := ts.core.llm.PolicyOf("m1"); !ok || p.Strategy != llm.StrategyRoundRobin {
		t.Fatalf("m1 follows %+v %v", p, ok)
	}
	if ok, _ := chatN(t, alice, tok, 6); ok != 6 || up1.calls.Load() != 7 || up2.calls.Load() != 3 {
		t.Fatalf("round robin: %d ok, u1 %d u2 %d", ok, up1.calls.Load(), up2.calls.Load())
	}

	up1.sleep.Store(int64(800 * time.Millisecond))
	putConfigPolicy(t, ts, "m1", `{"id":"m1","version":2,"strategy":"round_robin","timeout_ms":200,"retries":{"max_attempts":1}}`)
	if ok, timeouts := chatN(t, alice, tok, 2); ok != 1 || timeouts != 1 {
		t.Fatalf("200 ms timeout, u1 slow: %d ok, %d timeouts", ok, timeouts)
	}
	putConfigPolicy(t, ts, "m1", `{"id":"m1","version":3,"strategy":"least_latency","timeout_ms":200,"retries":{"max_attempts":1}}`)
	u1 := up1.calls.Load()
	if ok, _ := chatN(t, alice, tok, 4); ok != 4 || up1.calls.Load() != u1 {
		t.Fatalf("least latency: %d ok, u1 called %d more times", ok, up1.calls.Load()-u1)
	}

	// A group naming its policy follows it, not the one named as the group.
	putConfigPolicy(t, ts, "rr-shared", `{"id":"rr-shared","version":1,"strategy":"round_robin","retries":{"max_attempts":1}}`)
	if st, v := adminJSON(t, ts, "PUT", "/v1/admin/llm/model-groups/m1", ts.cred, `{"upstreams":["u1","u2"],"prompt_per_1k_micro_usd":1,"completion_per_1k_micro_usd":1,"routing_policy_id":"rr-shared"}`); st != 200 || v["routing_policy_id"] != "rr-shared" {
		t.Fatalf("put group with a policy id: %d %v", st, v)
	}
	if p, _ := ts.core.llm.PolicyOf("m1"); p.ID != "rr-shared" {
		t.Fatalf("m1 follows %q", p.ID)
	}
	for _, bad := range []string{
		`{"upstreams":["u1"],"prompt_per_1k_micro_usd":1,"completion_per_1k_micro_usd":1,"routing_policy_id":"Bad!"}`,
		`{"upstreams":["u1","u2"],"prompt_per_1k_micro_usd":1,"completion_per_1k_micro_usd":1,"weights":[1]}`,
		`{"upstreams":["u1"],"prompt_per_1k_micro_usd":1,"completion_per_1k_micro_usd":1,"weights":[-1]}`,
	} {
		if st, v := adminJSON(t, ts, "PUT", "/v1/admin/llm/model-groups/m2", ts.cred, bad); st != 400 {
			t.Fatalf("bad group %s: %d %v", bad, st, v)
		}
	}
	// A document valid under the contract but past the proxy's limits is
	// refused at PUT (every stored version is one in force): version 1
	// stays enforced.
	var refused map[string]any
	if st := decode(t, ts.do(t, "PUT", "/v1/config/policy/rr-shared", ts.cred, []byte(`{"id":"rr-shared","version":2,"strategy":"round_robin","retries":{"max_attempts":50}}`)), &refused); st < 400 || st >= 500 || refused["code"] != string(contracts.CodeSchemaValidationError) {
		t.Fatalf("a policy past the limits: %d %v", st, refused)
	}
	if p, ok := ts.core.llm.PolicyOf("m1"); !ok || p.ID != "rr-shared" || p.Version != 1 {
		t.Fatalf("after the refused version: %+v %v", p, ok)
	}
}

// TestConfigPolicyAcrossReplicas: on two replicas sharing PostgreSQL, a
// policy document PUT on a changes the routing on b within the
// propagation bound (calls through b alternate), a new version reaches b
// too, and a replica started afterwards enforces the stored version from
// its start.
func TestConfigPolicyAcrossReplicas(t *testing.T) {
	cfg := testConfig(t)
	cfg.PostgresURL = testenv.PostgresURL(t)
	cfg.tablePrefix = testenv.Unique(t) + "_"
	cfg.MasterKey = make([]byte, 32)
	cfg.UpstreamAllowLoopback = true
	cfg.UpstreamSync = 0 // only change propagation
	dropTablesAtEnd(t, cfg.PostgresURL, cfg.tablePrefix)
	dropReplicaTablesAtEnd(t, cfg.PostgresURL, cfg.tablePrefix)
	a := newTestServer(t, cfg)
	cfg2 := cfg
	cfg2.DataDir = t.TempDir() + "/replica"
	b := newTestServer(t, cfg2)
	b.cred = a.cred
	a.life.Start()
	b.life.Start()

	up1, up2 := twoUpstreams(t, a)
	waitPropagated(t, "b routes m1", func() bool { return b.core.llm != nil && len(b.core.llm.Routed()) == 1 })
	alice := newAgent(t, a, "alice", "team-p")
	tok := issue(t, a, alice.did, false, grant("llm", "m1")).Token
	onB := alice.on(b)

	start := time.Now()
	putConfigPolicy(t, a, "m1", `{"id":"m1","version":1,"strategy":"round_robin","retries":{"max_attempts":1}}`)
	d := waitUntil(t, "round_robin on b", start, func() bool {
		p, ok := b.core.llm.PolicyOf("m1")
		return ok && p.Version == 1
	})
	t.Logf("policy v1 enforced on b after %v", d)
	if ok, _ := chatN(t, onB, tok, 4); ok != 4 || up1.calls.Load() != 2 || up2.calls.Load() != 2 {
		t.Fatalf("round robin on b: %d ok, u1 %d u2 %d", ok, up1.calls.Load(), up2.calls.Load())
	}

	up1.sleep.Store(int64(800 * time.Millisecond))
	start = time.Now()
	putConfigPolicy(t, a, "m1", `{"id":"m1","version":2,"strategy":"round_robin","timeout_ms":200,"retries":{"max_attempts":1}}`)
	d = waitUntil(t, "version 2 on b", start, func() bool {
		p, ok := b.core.llm.PolicyOf("m1")
		return ok && p.Version == 2
	})
	t.Logf("policy v2 enforced on b after %v", d)
	if ok, timeouts := chatN(t, onB, tok, 2); ok != 1 || timeouts != 1 {
		t.Fatalf("200 ms timeout on b, u1 slow: %d ok, %d timeouts", ok, timeouts)
	}

	cfg3 := cfg
	cfg3.DataDir = t.TempDir() + "/replica3"
	c := newTestServer(t, cfg3)
	if p, ok := c.core.llm.PolicyOf("m1"); !ok || p.Version != 2 || p.Timeout != 200*time.Millisecond {
		t.Fatalf("a replica started afterwards follows %+v %v", p, ok)
	}
}

// FuzzPolicyName: a model group's routing_policy_id is accepted exactly
// when the config service would accept it as a document name.
func FuzzPolicyName(f *testing.F) {
	for _, s := range []string{"m1", "rr-shared", "a.b_c", "Bad", "-x", "", "x/y", "é"} {
		f.Add(s)
	}
	re := regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)
	f.Fuzz(func(t *testing.T, s string) {
		want := len(s) <= config.MaxNameLen && re.MatchString(s)
		if got := validPolicyName(s); got != want {
			t.Fatalf("validPolicyName(%q) = %v, want %v", s, got, want)
		}
		if err := checkGroupPolicy(s, nil, 1); (err == nil) != (want || s == "") || (err != nil && contracts.CodeOf(err) != contracts.CodeInvalidInput) {
			t.Fatalf("checkGroupPolicy(%q): %v", s, err)
		}
	})
}
