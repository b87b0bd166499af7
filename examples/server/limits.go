package main

import "time"

// Limits of the server, in one place.
const (
	// maxConfigFileSize bounds the JSON config file.
	maxConfigFileSize = 1 << 20
	// The config service's limits are gateway/config's (MaxBody 256 KiB,
	// names of 64 bytes, pages of 1000), the secrets' gateway/secrets'.
	// readyCheckTimeout bounds each readiness check.
	readyCheckTimeout = 2 * time.Second
	// readHeaderTimeout, readTimeout (headers and body) and idleTimeout
	// bound slow clients. There is no write timeout: proxied LLM and MCP
	// responses may stream for minutes.
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 60 * time.Second
	idleTimeout       = 120 * time.Second
)
