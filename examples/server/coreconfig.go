package main

import (
	"errors"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/contracts"
)

// llmAPIKeyEnv holds the LLM upstream's bearer key (environment only).
const llmAPIKeyEnv = "TALOS_LLM_API_KEY"

// maxUpstreams bounds TALOS_MCP_UPSTREAMS.
const maxUpstreams = 64

// An mcpUpstream is one upstream MCP server of the gateway.
type mcpUpstream struct {
	Name string
	URL  string
}

// A rateSet is one surface's rate limit from TALOS_RATE_LIMITS.
type rateSet = budget.Limit

// parseUpstreams reads "name=URL,name=URL". Names are the capability tool
// names of the upstream's tools: letters, digits, '-' and '_'.
func parseUpstreams(dst *[]mcpUpstream, v string) error {
	var out []mcpUpstream
	seen := map[string]bool{}
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, u, ok := strings.Cut(item, "=")
		if !ok || !validUpstreamName(name) {
			return errors.New("each upstream is name=URL with a name of letters, digits, - and _")
		}
		if seen[name] {
			return errors.New("upstream " + name + " is given twice")
		}
		seen[name] = true
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return errors.New("upstream " + name + " needs an http:// or https:// URL")
		}
		out = append(out, mcpUpstream{Name: name, URL: u})
	}
	if len(out) > maxUpstreams {
		return errors.New("too many upstreams")
	}
	*dst = out
	return nil
}

func validUpstreamName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// parseUSDSetting reads a non-negative USD decimal into micro-USD.
func parseUSDSetting(dst *int64, v string) error {
	n, err := budget.ParseUSD(v)
	if err != nil || n < 0 {
		return errors.New("not a non-negative USD amount (e.g. 0.002)")
	}
	*dst = n
	return nil
}

// parseRateLimits reads "surface=N/s,surface=N/m,surface=N/h".
func parseRateLimits(dst *map[string]rateSet, v string) error {
	out := map[string]rateSet{}
	for _, item := range strings.Split(v, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		surface, rate, ok := strings.Cut(item, "=")
		if _, known := defaultRates[surface]; !ok || !known {
			return errors.New("each rate is surface=N/s (or /m, /h) for a surface among " + rateSurfaces())
		}
		num, unit, ok := strings.Cut(rate, "/")
		n, err := strconv.ParseInt(num, 10, 64)
		if !ok || err != nil || n < 1 || n > 1_000_000_000 {
			return errors.New("rate of " + surface + " must be a positive N/s, N/m or N/h")
		}
		var lim budget.Limit
		switch unit {
		case "s":
			lim = budget.PerSecond(n)
		case "m":
			lim = budget.PerMinute(n)
		case "h":
			lim = budget.PerHour(n)
		default:
			return errors.New("rate of " + surface + " must be per s, m or h")
		}
		out[surface] = lim
	}
	*dst = out
	return nil
}

func rateSurfaces() string {
	return strings.Join([]string{opAuthorize, opMCPGateway, rateLLM, opA2A, opA2AV1, opA2ACompat}, ", ")
}

// validateCore checks the gateway, LLM and limit settings.
func (c *Config) validateCore() error {
	if c.LLMUpstream != "" {
		u, err := url.Parse(c.LLMUpstream)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return badConfig("LLM upstream must be an http:// or https:// URL")
		}
		if c.LLMTimeout <= 0 || c.LLMTimeout > 10*time.Minute {
			return badConfig("LLM timeout must be positive and at most 10m")
		}
	}
	if len(c.MCPAllowedServers) > 0 {
		allowed := map[string]bool{}
		for _, s := range c.MCPAllowedServers {
			allowed[s] = true
		}
		for _, u := range c.MCPUpstreams {
			if !allowed[u.Name] {
				return badConfig("MCP upstream " + u.Name + " is not in mcp_connector.allowed_servers")
			}
		}
	}
	return nil
}

func badConfig(msg string) error {
	return contracts.New(contracts.CodeInvalidInput, "config: "+msg)
}

// maxToolRegistryFile bounds the MCP tool registry file.
const maxToolRegistryFile = 4 << 20
