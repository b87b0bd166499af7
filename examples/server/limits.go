package main

import "time"

// Limits of the server, in one place.
const (
	// maxConfigFileSize bounds the JSON config file.
	maxConfigFileSize = 1 << 20
	// maxConfigBody bounds a PUT /v1/config/{kind}/{name} body (the
	// reference configuration service's 256 KB cap).
	maxConfigBody = 256 << 10
	// maxConfigNameLen bounds a config document name.
	maxConfigNameLen = 64
	// maxVersionsPage bounds one page of GET .../versions.
	maxVersionsPage = 1000
	// defaultVersionsPage is the page size when ?limit is absent.
	defaultVersionsPage = 100
	// maxConfigVersions bounds the stored versions of one document; a PUT
	// beyond it is refused.
	maxConfigVersions = 100_000
	// maxSecretSize bounds one sealed server secret.
	maxSecretSize = 64 << 10
	// maxSecretsFile bounds the embedded secrets file.
	maxSecretsFile = 16 << 20
	// readyCheckTimeout bounds each readiness check.
	readyCheckTimeout = 2 * time.Second
	// readHeaderTimeout, readTimeout (headers and body) and idleTimeout
	// bound slow clients. There is no write timeout: proxied LLM and MCP
	// responses may stream for minutes.
	readHeaderTimeout = 10 * time.Second
	readTimeout       = 60 * time.Second
	idleTimeout       = 120 * time.Second
)
