package main

import (
	"strings"
	"testing"
	"time"

	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/contracts"
)

func TestCoreSettings(t *testing.T) {
	env := func(kv map[string]string) func(string) string {
		return func(k string) string { return kv[k] }
	}
	base := map[string]string{"TALOS_DATA_DIR": t.TempDir()}
	with := func(k, v string) func(string) string {
		m := map[string]string{k: v}
		for a, b := range base {
			m[a] = b
		}
		return env(m)
	}

	cfg, _, err := LoadConfig(nil, env(base))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MCPCallCost != 1000 || cfg.LLMPricePer1K != 2000 || cfg.LLMTimeout != 120*time.Second || len(cfg.MCPUpstreams) != 0 || cfg.LLMUpstream != "" {
		t.Fatalf("defaults: %+v", cfg)
	}

	cfg, _, err = LoadConfig([]string{"-mcp-upstreams", "files=http://127.0.0.1:9000/mcp, search=https://mcp.example/x"}, env(base))
	if err != nil || len(cfg.MCPUpstreams) != 2 || cfg.MCPUpstreams[1] != (mcpUpstream{"search", "https://mcp.example/x"}) {
		t.Fatalf("upstreams: %+v %v", cfg.MCPUpstreams, err)
	}
	cfg, _, err = LoadConfig(nil, with("TALOS_RATE_LIMITS", "kernel.authorize=5/s,llm=10/m,a2a=7/h"))
	if err != nil || cfg.RateLimits[opAuthorize] != budget.PerSecond(5) || cfg.RateLimits[rateLLM] != budget.PerMinute(10) || cfg.RateLimits[opA2A] != budget.PerHour(7) {
		t.Fatalf("rates: %+v %v", cfg.RateLimits, err)
	}
	cfg, _, err = LoadConfig(nil, with("TALOS_LLM_API_KEY", " sk-secret "))
	if err != nil || string(cfg.LLMAPIKey) != "sk-secret" {
		t.Fatalf("api key: %v", err)
	}
	if s := cfg.LLMAPIKey.String(); strings.Contains(s, "secret") {
		t.Fatalf("the API key prints: %s", s)
	}
	if strings.Contains(settingsMarkdown(), "-llm-api-key") {
		t.Fatal("the API key is a flag")
	}

	for _, bad := range []struct{ k, v string }{
		{"TALOS_MCP_UPSTREAMS", "files"},
		{"TALOS_MCP_UPSTREAMS", "fi.les=http://x/mcp"},
		{"TALOS_MCP_UPSTREAMS", "files=ftp://x/mcp"},
		{"TALOS_MCP_UPSTREAMS", "files=http://a/mcp,files=http://b/mcp"},
		{"TALOS_MCP_CALL_COST_USD", "-1"},
		{"TALOS_MCP_CALL_COST_USD", "lots"},
		{"TALOS_LLM_PRICE_PER_1K_TOKENS", "0.0000001"},
		{"TALOS_LLM_UPSTREAM", "not a url"},
		{"TALOS_LLM_TIMEOUT", "soon"},
		{"TALOS_RATE_LIMITS", "kernel.authorize=5"},
		{"TALOS_RATE_LIMITS", "kernel.authorize=0/s"},
		{"TALOS_RATE_LIMITS", "unknown=5/s"},
		{"TALOS_RATE_LIMITS", "llm=5/d"},
	} {
		if _, _, err := LoadConfig(nil, with(bad.k, bad.v)); contracts.CodeOf(err) != contracts.CodeInvalidInput {
			t.Errorf("%s=%q: %v", bad.k, bad.v, err)
		}
	}
	// An LLM upstream needs a sane timeout.
	if _, _, err := LoadConfig([]string{"-llm-upstream", "http://127.0.0.1:1/v1", "-llm-timeout", "0s"}, env(base)); err == nil {
		t.Error("zero LLM timeout accepted")
	}
}
