package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/sdk/trace"

	"github.com/talosgo/talos/contracts"
)

// Config is every setting of the server. Zero values are not defaults: use
// [DefaultConfig] and [LoadConfig], which apply, in increasing precedence,
// the defaults, the JSON config file, the environment and the flags.
type Config struct {
	DataDir            string        // data directory (keys, secrets, audit log)
	Listen             string        // HTTP listen address
	RedisURL           string        // Redis URL; empty: in-memory limits and sessions
	RedisClusterAddrs  []string      // Redis Cluster seeds (replicas.go); credentials, TLS from RedisURL
	RedisSentinelAddrs []string      // Redis Sentinels (replicas.go)
	RedisSentinelName  string        // the master the Sentinels watch
	PostgresURL        string        // PostgreSQL primary DSN; empty: embedded stores
	PostgresReplicaURL string        // PostgreSQL read replica DSN; empty: reads go to the primary
	ConfigFile         string        // talos.config v1 JSON file
	Production         bool          // production mode: fail closed, no key file, no stdout traces
	SingleNode         bool          // one replica: production may keep limits and replay stores per process
	OTLPEndpoint       string        // OTLP/HTTP traces endpoint URL
	TraceExporter      string        // auto | otlp | stdout | none
	ShutdownTimeout    time.Duration // drain deadline on SIGTERM
	KEKRotation        time.Duration // KEK rotation interval; 0 disables the worker
	BreakerFailures    int           // replica breaker: consecutive failures that open it
	BreakerOpen        time.Duration // replica breaker: open duration before half-open probes
	BreakerProbes      int           // replica breaker: half-open probes that close it
	WriteTimeout       time.Duration // deadline for writing a response (gateway calls extend it)
	AuditPublic        bool          // serve audit entry bytes to anyone (a public log)
	CheckpointInterval time.Duration // audit checkpoint publication interval; 0: at start and shutdown only

	// From the config file only.
	Region             string   // global.region
	LogLevel           string   // global.log_level
	AuditBackend       string   // audit.storage_backend (postgres | sqlite | memory)
	AuditRetentionDays int      // audit.retention_days
	MCPAllowedServers  []string // mcp_connector.allowed_servers

	// Gateway, LLM proxy and limits (parsed and checked in coreconfig.go).
	MCPUpstreams    []mcpUpstream      // name=URL of each upstream MCP server
	MCPToolRegistry string             // tool registry file; empty: from the upstreams' annotations
	MCPCallCost     int64              // micro-USD charged per MCP tool call
	LLMUpstream     string             // OpenAI-compatible base URL, e.g. http://127.0.0.1:9000/v1
	LLMPricePer1K   int64              // micro-USD per 1000 tokens
	LLMTimeout      time.Duration      // upstream deadline per chat completion
	RateLimits      map[string]rateSet // per-surface overrides of the default rate limits

	// LLM streaming and model listing (parsed in gateway.go).
	LLMStreamTimeout time.Duration // deadline of a whole streamed chat completion
	LLMModels        []string      // models served (listed at GET /v1/models); empty: every model granted
	LLMUpstreams     []llmUpstream // further upstreams (TALOS_LLM_UPSTREAMS); keys from TALOS_LLM_API_KEY_<NAME>
	LLMRoutes        []llmRoute    // model routes (TALOS_LLM_ROUTES); empty: every model to LLMUpstream

	// A2A v1 (a2a.go).
	A2AExecutor         string // echo | llm | none
	A2ALLMModel         string // model of the llm executor
	A2APushAllowPrivate bool   // push destinations on loopback/private addresses and http://
	A2ATaskCost         int64  // micro-USD reserved per A2A v1 task (SendMessage, SendStreamingMessage, tasks.send)

	// OAuth 2.1 resource server on POST /mcp (TALOS_OAUTH_*, oauth.go).
	OAuth oauthSettings

	// Governed writes and runtime upstream administration (governed.go,
	// upstreamadmin.go).
	MCPSupervisor         string        // "" (off) | approve | human
	MCPApprovalTimeout    time.Duration // how long a governed write waits for a human
	UpstreamAllowLoopback bool          // admin-added upstream URLs may be on loopback
	UpstreamAllowPrivate  bool          // admin-added upstream URLs may be on private addresses
	UpstreamSync          time.Duration // how often replicas re-read the admin upstream sets

	// LLMAPIKey is sent to the LLM upstream as a bearer token, from
	// TALOS_LLM_API_KEY only (never a flag, never logged).
	LLMAPIKey secretBytes

	// MasterKey is the master key-encryption key, from TALOS_MASTER_KEY
	// only (never a flag: flags are visible in the process list). Empty:
	// generated on first start and kept in DataDir/master.key (refused in
	// production mode).
	MasterKey secretBytes

	// Test hooks (not settings).
	spanExporter trace.SpanExporter // replaces the configured exporter
	tablePrefix  string             // PostgreSQL table name prefix; default "talos_"
	streamPoll   time.Duration      // audit stream poll interval; 0: gateway/auditapi's default
	stdout       io.Writer          // where first-start information is printed
}

// secretBytes never prints its value.
type secretBytes []byte

func (secretBytes) String() string               { return "[REDACTED]" }
func (secretBytes) GoString() string             { return "[REDACTED]" }
func (s secretBytes) Format(f fmt.State, _ rune) { io.WriteString(f, s.String()) }

// setting describes one configuration setting: the README table is
// generated from this list (see settingsMarkdown), so it cannot drift.
type setting struct {
	name, flag, env, def, meaning string
	set                           func(c *Config, v string) error
}

var settings = []setting{
	{"data directory", "data", "TALOS_DATA_DIR", "./talos-data",
		"Directory for the master key file (when TALOS_MASTER_KEY is unset), sealed secrets and the file audit log; created 0700.",
		func(c *Config, v string) error { c.DataDir = v; return nil }},
	{"listen address", "listen", "TALOS_LISTEN", "127.0.0.1:8080",
		"HTTP listen address (host:port).",
		func(c *Config, v string) error { c.Listen = v; return nil }},
	{"Redis", "redis", "TALOS_REDIS_URL", "(none: in memory)",
		"Redis URL (redis://host:port/db) for budgets, rate limits and replay stores; checked by /health/ready.",
		func(c *Config, v string) error { c.RedisURL = v; return nil }},
	{"Redis Cluster", "redis-cluster", "TALOS_REDIS_CLUSTER_ADDRS", "(none)",
		"Comma-separated host:port seeds of a Redis Cluster, used instead of TALOS_REDIS_URL's host for the same state (username, password and rediss:// TLS still come from TALOS_REDIS_URL when it is set).",
		func(c *Config, v string) error { return parseAddrList(&c.RedisClusterAddrs, v) }},
	{"Redis Sentinel", "redis-sentinel", "TALOS_REDIS_SENTINEL_ADDRS", "(none)",
		"Comma-separated host:port of Redis Sentinels; the server follows the master named by TALOS_REDIS_SENTINEL_MASTER (credentials, TLS and database from TALOS_REDIS_URL when set).",
		func(c *Config, v string) error { return parseAddrList(&c.RedisSentinelAddrs, v) }},
	{"Redis Sentinel master", "redis-sentinel-master", "TALOS_REDIS_SENTINEL_MASTER", "(none; required with TALOS_REDIS_SENTINEL_ADDRS)",
		"Name of the master the Sentinels watch.",
		func(c *Config, v string) error { c.RedisSentinelName = v; return nil }},
	{"PostgreSQL primary", "postgres", "TALOS_POSTGRES_URL", "(none: embedded stores)",
		"PostgreSQL DSN for writes (secrets, config versions); enables advisory-lock rotation.",
		func(c *Config, v string) error { c.PostgresURL = v; return nil }},
	{"PostgreSQL replica", "postgres-replica", "TALOS_POSTGRES_REPLICA_URL", "(none: reads on the primary)",
		"PostgreSQL DSN for reads, behind a circuit breaker that falls back to the primary.",
		func(c *Config, v string) error { c.PostgresReplicaURL = v; return nil }},
	{"config file", "config", "TALOS_CONFIG_FILE", "(none)",
		"JSON file validated against the contract schema config/v1/talos.config; flags and environment override it.",
		func(c *Config, v string) error { c.ConfigFile = v; return nil }},
	{"production mode", "production", "TALOS_PRODUCTION", "false",
		"Fail closed: requires TALOS_MASTER_KEY, no stdout trace exporter, disable_auth refused.",
		func(c *Config, v string) error { return parseBool(&c.Production, v) }},
	{"single node", "single-node", "TALOS_SINGLE_NODE", "false",
		"This is the only replica: lets production mode start without Redis and PostgreSQL, with revocations, replay protection, rate limits, budgets and admin/A2A state per process (logged at start-up; /health/ready lists them).",
		func(c *Config, v string) error { return parseBool(&c.SingleNode, v) }},
	{"OTLP endpoint", "otlp-endpoint", "TALOS_OTLP_ENDPOINT", "(none)",
		"OTLP/HTTP trace collector URL, e.g. http://127.0.0.1:4318; spans are redacted before export.",
		func(c *Config, v string) error { c.OTLPEndpoint = v; return nil }},
	{"trace exporter", "trace-exporter", "TALOS_TRACE_EXPORTER", "auto",
		"auto (otlp when an endpoint is set, else none), otlp, stdout (span JSON on standard output) or none.",
		func(c *Config, v string) error { c.TraceExporter = v; return nil }},
	{"shutdown timeout", "shutdown-timeout", "TALOS_SHUTDOWN_TIMEOUT", "20s",
		"On SIGTERM/SIGINT: how long in-flight requests may drain before connections are closed; flush hooks share it.",
		func(c *Config, v string) error { return parseDuration(&c.ShutdownTimeout, v) }},
	{"KEK rotation interval", "kek-rotation", "TALOS_KEK_ROTATION", "168h",
		"How often a new key-encryption key is added and every stored secret rewrapped; 0 disables.",
		func(c *Config, v string) error { return parseDuration(&c.KEKRotation, v) }},
	{"replica breaker threshold", "pg-breaker-failures", "TALOS_PG_BREAKER_FAILURES", "5",
		"Consecutive replica failures that open the breaker.",
		func(c *Config, v string) error { return parseInt(&c.BreakerFailures, v) }},
	{"replica breaker open time", "pg-breaker-open", "TALOS_PG_BREAKER_OPEN", "10s",
		"How long the open breaker sends every read to the primary before probing the replica.",
		func(c *Config, v string) error { return parseDuration(&c.BreakerOpen, v) }},
	{"replica breaker probes", "pg-breaker-probes", "TALOS_PG_BREAKER_PROBES", "1",
		"Successful half-open probes that close the breaker.",
		func(c *Config, v string) error { return parseInt(&c.BreakerProbes, v) }},
	{"write timeout", "write-timeout", "TALOS_WRITE_TIMEOUT", "30s",
		"Deadline for writing each response (http.Server.WriteTimeout); MCP and LLM gateway calls extend it by their upstream deadline. Must be positive.",
		func(c *Config, v string) error { return parseDuration(&c.WriteTimeout, v) }},
	{"public audit log", "audit-public", "TALOS_AUDIT_PUBLIC", "false",
		"Publish the audit log: entry bundles (/tlog/tile/entries/...), entries and inclusion proofs' entry_b64u to anyone. Off: only to admins allowed to read audit events (admin.audit read); checkpoints, hash tiles and proofs are public either way.",
		func(c *Config, v string) error { return parseBool(&c.AuditPublic, v) }},
	{"checkpoint interval", "checkpoint-interval", "TALOS_AUDIT_CHECKPOINT_INTERVAL", "10s",
		"How often a signed checkpoint of the audit log is published (/tlog/checkpoint, GET /v1/audit/checkpoint) when the log grew; also at start and shutdown. 0: at start and shutdown only.",
		func(c *Config, v string) error { return parseDuration(&c.CheckpointInterval, v) }},
	{"MCP upstreams", "mcp-upstreams", "TALOS_MCP_UPSTREAMS", "(none: no MCP gateway)",
		"Comma-separated name=URL of upstream MCP servers (streamable HTTP); their tools are served at POST /mcp as name.tool.",
		func(c *Config, v string) error { return parseUpstreams(&c.MCPUpstreams, v) }},
	{"MCP tool registry", "mcp-tool-registry", "TALOS_MCP_TOOL_REGISTRY", "(none: from tool annotations)",
		"Contract tool registry file classifying each upstream tool as read or write; unlisted tools are denied.",
		func(c *Config, v string) error { c.MCPToolRegistry = v; return nil }},
	{"MCP call cost", "mcp-call-cost", "TALOS_MCP_CALL_COST_USD", "0.001",
		"USD charged to the caller's key and team budgets per MCP tool call.",
		func(c *Config, v string) error { return parseUSDSetting(&c.MCPCallCost, v) }},
	{"LLM upstream", "llm-upstream", "TALOS_LLM_UPSTREAM", "(none: no LLM proxy)",
		"OpenAI-compatible base URL (…/v1); chat completions are proxied at POST /v1/chat/completions. The bearer key comes from TALOS_LLM_API_KEY only.",
		func(c *Config, v string) error { c.LLMUpstream = v; return nil }},
	{"LLM price", "llm-price-per-1k-tokens", "TALOS_LLM_PRICE_PER_1K_TOKENS", "0.002",
		"USD per 1000 tokens: reserved for the prompt estimate plus max_tokens, settled by reported usage.",
		func(c *Config, v string) error { return parseUSDSetting(&c.LLMPricePer1K, v) }},
	{"LLM timeout", "llm-timeout", "TALOS_LLM_TIMEOUT", "120s",
		"Deadline of one upstream chat completion (UPSTREAM_TIMEOUT after it).",
		func(c *Config, v string) error { return parseDuration(&c.LLMTimeout, v) }},
	{"LLM stream timeout", "llm-stream-timeout", "TALOS_LLM_STREAM_TIMEOUT", "10m",
		"Deadline of a whole streamed chat completion (stream: true); TALOS_LLM_TIMEOUT bounds the wait for each chunk. At most 1h.",
		func(c *Config, v string) error { return parseLLMStreamTimeout(&c.LLMStreamTimeout, v) }},
	{"LLM models", "llm-models", "TALOS_LLM_MODELS", "(none: every model granted)",
		"Comma-separated models served: GET /v1/models lists those the caller's token grants, and chat completions for other models are refused (MODEL_NOT_ALLOWED). Without it the listing asks the upstream's GET /models.",
		func(c *Config, v string) error { return parseLLMModels(&c.LLMModels, v) }},
	{"LLM upstreams", "llm-upstreams", "TALOS_LLM_UPSTREAMS", "(none)",
		"Comma-separated name=URL of further LLM upstreams for TALOS_LLM_ROUTES, the URL prefixed anthropic+ for Anthropic's messages API (e.g. claude=anthropic+https://api.anthropic.com/v1); each key from TALOS_LLM_API_KEY_ and the name in upper case, - as _ (environment only). TALOS_LLM_UPSTREAM is the upstream named default.",
		func(c *Config, v string) error { return parseLLMUpstreams(&c.LLMUpstreams, v) }},
	{"LLM routes", "llm-routes", "TALOS_LLM_ROUTES", "(none: every model to TALOS_LLM_UPSTREAM)",
		"Comma-separated model=upstream>fallback…@prompt:completion USD per 1000 tokens (e.g. gpt-4o=default>backup@0.0025:0.01): upstreams tried in order on a 5xx or timeout, with a circuit breaker; with routes only the routed models are served.",
		func(c *Config, v string) error { return parseLLMRoutes(&c.LLMRoutes, v) }},
	{"rate limits", "rate-limits", "TALOS_RATE_LIMITS", "(built-in)",
		"Per-principal rate limits per surface, e.g. kernel.authorize=200/s,mcp.gateway=50/s,llm=20/s,a2a=100/s (also /m, /h).",
		func(c *Config, v string) error { return parseRateLimits(&c.RateLimits, v) }},
	{"A2A executor", "a2a-executor", "TALOS_A2A_EXECUTOR", "echo",
		"Agent behind A2A v1 (POST /rpc): echo (answers the message text), llm (one chat completion on TALOS_LLM_UPSTREAM with TALOS_A2A_LLM_MODEL) or none (A2A v1 and the agent card not served; the relay stays).",
		func(c *Config, v string) error { return parseA2AExecutor(&c.A2AExecutor, v) }},
	{"A2A LLM model", "a2a-llm-model", "TALOS_A2A_LLM_MODEL", "(none)",
		"Model name the llm A2A executor sends.",
		func(c *Config, v string) error { c.A2ALLMModel = v; return nil }},
	{"A2A push to private addresses", "a2a-push-allow-private", "TALOS_A2A_PUSH_ALLOW_PRIVATE", "false",
		"Allow A2A push destinations on loopback, private and link-local addresses and over http:// (closed networks and tests only; otherwise https to public addresses only).",
		func(c *Config, v string) error { return parseBool(&c.A2APushAllowPrivate, v) }},
	{"A2A task cost", "a2a-task-cost", "TALOS_A2A_TASK_COST_USD", "0.001",
		"USD charged to the caller's key and team budgets per A2A v1 task created (SendMessage, SendStreamingMessage, compat tasks.send).",
		func(c *Config, v string) error { return parseUSDSetting(&c.A2ATaskCost, v) }},
	{"OAuth issuer", "oauth-issuer", "TALOS_OAUTH_ISSUER", "(none: attested requests only)",
		"Authorization server whose JWT access tokens POST /mcp accepts (Authorization: Bearer), for stock MCP clients: exact iss, keys from its JWKS (RFC 8414 or OpenID discovery); the protected resource metadata is served at /.well-known/oauth-protected-resource[/mcp].",
		func(c *Config, v string) error { c.OAuth.Issuer = v; return nil }},
	{"OAuth resource", "oauth-resource", "TALOS_OAUTH_RESOURCE", "(none; required with TALOS_OAUTH_ISSUER)",
		"Canonical URI of POST /mcp as clients reach it, e.g. https://gateway.example.com/mcp: every token's aud must contain it (RFC 8707).",
		func(c *Config, v string) error { c.OAuth.Resource = v; return nil }},
	{"OAuth JWKS URL", "oauth-jwks-url", "TALOS_OAUTH_JWKS_URL", "(none: the issuer's jwks_uri)",
		"Where the issuer's signing keys are fetched, instead of its metadata's jwks_uri.",
		func(c *Config, v string) error { c.OAuth.JWKSURL = v; return nil }},
	{"OAuth principal claim", "oauth-principal-claim", "TALOS_OAUTH_PRINCIPAL_CLAIM", "sub",
		"Token claim naming the principal (sub or client_id); its value maps to the principal's OAuth did:key (GET /v1/admin/oauth/principals/{value}).",
		func(c *Config, v string) error { return parseOAuthClaim(&c.OAuth.Claim, v) }},
	{"OAuth scopes", "oauth-scopes", "TALOS_OAUTH_SCOPES", defaultOAuthScopes,
		"Comma-separated scope=selector+selector…: the capability grants each token scope gives, selectors read (every read tool), write (every write tool), <upstream> or <upstream>.<tool>.",
		func(c *Config, v string) error { return parseOAuthScopes(&c.OAuth.Scopes, v) }},
	{"OAuth principals", "oauth-principals", "TALOS_OAUTH_PRINCIPALS", "(none: principals registered through the admin API)",
		"Comma-separated value=team: principal claim values registered from the configuration, in that team; other values must be registered with POST /v1/principals.",
		func(c *Config, v string) error { return parseOAuthPrincipals(&c.OAuth.Principals, v) }},
	{"MCP supervisor", "mcp-supervisor", "TALOS_MCP_SUPERVISOR", "off",
		"Governed writes (TGA): every MCP write-tool call is recorded as action_request, supervisor_decision, tool_call and tool_effect, each persisted before the next step and recovered after a crash. approve: approved by policy; human: waits for an admin at /v1/admin/approvals; off: not governed.",
		func(c *Config, v string) error { return parseSupervisor(&c.MCPSupervisor, v) }},
	{"MCP approval timeout", "mcp-approval-timeout", "TALOS_MCP_APPROVAL_TIMEOUT", "15m",
		"How long a governed write waits for an admin's decision (human supervisor) before it is denied; the caller's tools/call waits as long. 1s to 24h.",
		func(c *Config, v string) error { return parseApprovalTimeout(&c.MCPApprovalTimeout, v) }},
	{"admin upstreams on loopback", "upstream-allow-loopback", "TALOS_UPSTREAM_ALLOW_LOOPBACK", "false",
		"Allow MCP servers and LLM upstreams added through the admin API on loopback addresses (tests, a sidecar). Off: refused, on the URL and on every dial.",
		func(c *Config, v string) error { return parseBool(&c.UpstreamAllowLoopback, v) }},
	{"admin upstreams on private addresses", "upstream-allow-private", "TALOS_UPSTREAM_ALLOW_PRIVATE", "false",
		"Allow MCP servers and LLM upstreams added through the admin API on private (RFC 1918, RFC 4193, 100.64/10) addresses. Link-local, unspecified and multicast addresses are always refused.",
		func(c *Config, v string) error { return parseBool(&c.UpstreamAllowPrivate, v) }},
	{"admin upstream sync", "upstream-sync", "TALOS_UPSTREAM_SYNC", "5s",
		"How often each replica re-reads the MCP servers, LLM upstreams and model groups set through the admin API (shared config store) and applies a new version: the fallback of change propagation, which applies an edit on every replica within about a second. 0: only at start, on this replica's own changes and on change messages.",
		func(c *Config, v string) error { return parseDuration(&c.UpstreamSync, v) }},
}

// flagValue is a string flag that can also be given alone (-production)
// when its setting is a boolean.
type flagValue struct {
	v      string
	isBool bool
}

func (f *flagValue) String() string     { return f.v }
func (f *flagValue) Set(v string) error { f.v = v; return nil }
func (f *flagValue) IsBoolFlag() bool   { return f.isBool }

// masterKeyEnv holds the base64url (unpadded) 32-byte master KEK.
const masterKeyEnv = "TALOS_MASTER_KEY"

// DefaultConfig returns the embedded defaults.
func DefaultConfig() Config {
	var c Config
	for _, s := range settings {
		if strings.HasPrefix(s.def, "(") {
			continue
		}
		if err := s.set(&c, s.def); err != nil {
			panic("config: bad default for " + s.name + ": " + err.Error()) // a bug in the table
		}
	}
	return c
}

// LoadConfig builds the configuration from args (without the program name)
// and getenv: defaults, then the config file, then the environment, then the
// flags. Errors are *contracts.Error values with code TALOS_INVALID_INPUT (or
// SCHEMA_VALIDATION_ERROR for a config file that does not match the schema);
// warnings are returned for settings that were accepted but ignored.
func LoadConfig(args []string, getenv func(string) string) (Config, []string, error) {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("talos-server", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	vals := make(map[string]*flagValue, len(settings))
	for _, s := range settings {
		v := &flagValue{isBool: s.def == "false" || s.def == "true"}
		vals[s.flag] = v
		fs.Var(v, s.flag, s.meaning+" (env "+s.env+", default "+s.def+")")
	}
	if err := fs.Parse(args); err != nil {
		return cfg, nil, contracts.Wrap(contracts.CodeInvalidInput, "config: "+err.Error(), err)
	}
	if fs.NArg() > 0 {
		return cfg, nil, contracts.New(contracts.CodeInvalidInput, "config: unexpected argument "+strconv.Quote(fs.Arg(0)))
	}
	setFlags := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { setFlags[f.Name] = true })

	file := getenv("TALOS_CONFIG_FILE")
	if setFlags["config"] {
		file = vals["config"].v
	}
	var warnings []string
	if file != "" {
		raw, err := readLimited(file, maxConfigFileSize)
		if err != nil {
			return cfg, nil, contracts.Wrap(contracts.CodeInvalidInput, "config: reading the config file", err)
		}
		w, err := applyConfigFile(&cfg, raw, getenv)
		if err != nil {
			return cfg, nil, err
		}
		warnings = w
	}
	for _, s := range settings {
		if v := getenv(s.env); v != "" {
			if err := s.set(&cfg, v); err != nil {
				return cfg, nil, contracts.New(contracts.CodeInvalidInput, "config: "+s.env+": "+err.Error())
			}
		}
	}
	for _, s := range settings {
		if setFlags[s.flag] {
			if err := s.set(&cfg, vals[s.flag].v); err != nil {
				return cfg, nil, contracts.New(contracts.CodeInvalidInput, "config: -"+s.flag+": "+err.Error())
			}
		}
	}
	if v := getenv(masterKeyEnv); v != "" {
		k, err := contracts.DecodeBase64URL(strings.TrimSpace(v))
		if err != nil || len(k) != 32 {
			// Never echo the value.
			return cfg, nil, contracts.New(contracts.CodeInvalidInput, "config: "+masterKeyEnv+" must be 32 bytes in unpadded base64url")
		}
		cfg.MasterKey = k
	}
	if v := getenv(llmAPIKeyEnv); v != "" {
		cfg.LLMAPIKey = secretBytes(strings.TrimSpace(v))
	}
	for i, u := range cfg.LLMUpstreams {
		if v := getenv(llmUpstreamKeyEnv(u.Name)); v != "" {
			cfg.LLMUpstreams[i].APIKey = secretBytes(strings.TrimSpace(v))
		}
	}
	if err := cfg.validate(); err != nil {
		return cfg, nil, err
	}
	return cfg, warnings, nil
}

// validate checks the settings that can be checked without I/O.
func (c *Config) validate() error {
	bad := func(msg string) error { return contracts.New(contracts.CodeInvalidInput, "config: "+msg) }
	if c.DataDir == "" {
		return bad("data directory is empty")
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return bad("listen address must be host:port")
	}
	if c.WriteTimeout <= 0 {
		return bad("write timeout must be positive")
	}
	if c.CheckpointInterval < 0 {
		return bad("checkpoint interval must not be negative")
	}
	switch c.TraceExporter {
	case "auto", "otlp", "stdout", "none":
	default:
		return bad("trace exporter must be auto, otlp, stdout or none")
	}
	if c.TraceExporter == "otlp" && c.OTLPEndpoint == "" {
		return bad("trace exporter otlp needs an OTLP endpoint")
	}
	if c.OTLPEndpoint != "" {
		u, err := url.Parse(c.OTLPEndpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("OTLP endpoint must be an http:// or https:// URL")
		}
	}
	if c.RedisURL != "" {
		if u, err := url.Parse(c.RedisURL); err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
			return bad("Redis URL must be redis://, rediss:// or unix://")
		}
	}
	if err := c.validateRedis(); err != nil {
		return err
	}
	if c.PostgresReplicaURL != "" && c.PostgresURL == "" {
		return bad("a PostgreSQL replica needs a primary")
	}
	if c.ShutdownTimeout <= 0 {
		return bad("shutdown timeout must be positive")
	}
	if c.KEKRotation < 0 || (c.KEKRotation > 0 && c.KEKRotation < time.Minute) {
		return bad("KEK rotation interval must be 0 (off) or at least 1m")
	}
	if c.BreakerFailures < 1 || c.BreakerProbes < 1 || c.BreakerOpen <= 0 {
		return bad("breaker settings must be positive")
	}
	if c.Production && len(c.MasterKey) == 0 {
		return bad("production mode requires " + masterKeyEnv + " (the master key is never written to disk in production)")
	}
	if c.Production && c.TraceExporter == "stdout" {
		return bad("production mode does not export traces to stdout")
	}
	if err := c.OAuth.validate(); err != nil {
		return err
	}
	return c.validateCore()
}
