package main

// This file reads the config file (contract talos.config v1) and holds the
// small parsers the settings table uses.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/talosgo/talos/contracts"
)

// fileConfig is the talos.config v1 document (contracts
// config/v1/talos.config). Unknown fields are rejected.
type fileConfig struct {
	ConfigVersion    string `json:"config_version"`
	ContractsVersion string `json:"contracts_version,omitempty"`
	Global           *struct {
		Env      string `json:"env,omitempty"`
		Region   string `json:"region,omitempty"`
		LogLevel string `json:"log_level,omitempty"`
	} `json:"global"`
	Gateway *struct {
		Port           *int   `json:"port,omitempty"`
		Host           string `json:"host,omitempty"`
		DatabaseURLRef string `json:"database_url_ref,omitempty"`
		DisableAuth    bool   `json:"disable_auth,omitempty"`
	} `json:"gateway,omitempty"`
	Audit *struct {
		StorageBackend string `json:"storage_backend,omitempty"`
		DatabaseURLRef string `json:"database_url_ref,omitempty"`
		RetentionDays  *int   `json:"retention_days,omitempty"`
	} `json:"audit,omitempty"`
	MCPConnector *struct {
		AllowedServers []string `json:"allowed_servers,omitempty"`
		SigningKeyRef  string   `json:"signing_key_ref,omitempty"`
	} `json:"mcp_connector,omitempty"`
	Extensions map[string]json.RawMessage `json:"extensions,omitempty"`
}

// applyConfigFile validates raw against the contract schema and applies it.
func applyConfigFile(cfg *Config, raw []byte, getenv func(string) string) ([]string, error) {
	if err := contracts.Validate("config/v1/talos.config", raw); err != nil {
		return nil, err
	}
	var fc fileConfig
	// Field names case-sensitive, no two keys equal under case folding, no
	// unknown fields, no trailing data (contracts.UnmarshalFieldsKnown).
	if err := contracts.UnmarshalFieldsKnown(raw, &fc); err != nil {
		return nil, contracts.Wrap(contracts.CodeSchemaValidationError, "config: config file does not match config/v1/talos.config", err)
	}
	bad := func(msg string) error { return contracts.New(contracts.CodeSchemaValidationError, "config: "+msg) }
	if fc.ConfigVersion != "1.0" || fc.Global == nil {
		return nil, bad(`config_version must be "1.0" and global is required`)
	}
	var warnings []string
	switch fc.Global.Env {
	case "", "local", "dev", "test":
	case "prod":
		cfg.Production = true
	default:
		return nil, bad("global.env must be local, dev, test or prod")
	}
	cfg.Region = fc.Global.Region
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	switch fc.Global.LogLevel {
	case "", "DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL":
		cfg.LogLevel = fc.Global.LogLevel
	default:
		return nil, bad("global.log_level must be DEBUG, INFO, WARNING, ERROR or CRITICAL")
	}
	if g := fc.Gateway; g != nil {
		if g.Port != nil || g.Host != "" {
			host, port, _ := net.SplitHostPort(cfg.Listen)
			if g.Host != "" {
				host = g.Host
			}
			if g.Port != nil {
				if *g.Port < 1024 || *g.Port > 65535 {
					return nil, bad("gateway.port must be in [1024, 65535]")
				}
				port = strconv.Itoa(*g.Port)
			}
			cfg.Listen = net.JoinHostPort(host, port)
		}
		if g.DatabaseURLRef != "" {
			v, err := resolveRef(g.DatabaseURLRef, getenv)
			if err != nil {
				return nil, bad("gateway.database_url_ref: " + err.Error())
			}
			cfg.PostgresURL = v
		}
		if g.DisableAuth {
			if cfg.Production {
				return nil, bad("gateway.disable_auth is refused in production")
			}
			warnings = append(warnings, "gateway.disable_auth is ignored: this server never disables authentication")
		}
	}
	if a := fc.Audit; a != nil {
		switch a.StorageBackend {
		case "", "postgres", "sqlite", "memory":
			cfg.AuditBackend = a.StorageBackend
		default:
			return nil, bad("audit.storage_backend must be postgres, sqlite or memory")
		}
		if a.RetentionDays != nil {
			if *a.RetentionDays < 1 {
				return nil, bad("audit.retention_days must be at least 1")
			}
			cfg.AuditRetentionDays = *a.RetentionDays
		}
		if a.DatabaseURLRef != "" {
			v, err := resolveRef(a.DatabaseURLRef, getenv)
			if err != nil {
				return nil, bad("audit.database_url_ref: " + err.Error())
			}
			if cfg.PostgresURL != "" && cfg.PostgresURL != v {
				return nil, bad("audit.database_url_ref names a different database than gateway.database_url_ref; one PostgreSQL primary is supported")
			}
			cfg.PostgresURL = v
		}
	}
	if m := fc.MCPConnector; m != nil {
		for _, s := range m.AllowedServers {
			if u, err := url.Parse(s); err != nil || u.Scheme == "" {
				return nil, bad("mcp_connector.allowed_servers entries must be URIs")
			}
		}
		cfg.MCPAllowedServers = m.AllowedServers
		if m.SigningKeyRef != "" {
			warnings = append(warnings, "mcp_connector.signing_key_ref is ignored: tool calls are signed with the server identity")
		}
	}
	return warnings, nil
}

// resolveRef resolves a secret reference. Only "env:NAME" is supported: the
// value of the environment variable NAME, which must be set.
func resolveRef(ref string, getenv func(string) string) (string, error) {
	name, ok := strings.CutPrefix(ref, "env:")
	if !ok || name == "" {
		return "", errors.New(`only "env:NAME" references are supported`)
	}
	v := getenv(name)
	if v == "" {
		return "", fmt.Errorf("environment variable %s is not set", name)
	}
	return v, nil
}

// readLimited reads at most limit bytes of path, failing when it is longer.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("file larger than %d bytes", limit)
	}
	return b, nil
}

func parseBool(dst *bool, v string) error {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return errors.New("not a boolean")
	}
	*dst = b
	return nil
}

func parseInt(dst *int, v string) error {
	n, err := strconv.Atoi(v)
	if err != nil {
		return errors.New("not an integer")
	}
	*dst = n
	return nil
}

func parseDuration(dst *time.Duration, v string) error {
	d, err := time.ParseDuration(v)
	if err != nil {
		return errors.New("not a duration (e.g. 30s, 5m, 24h)")
	}
	*dst = d
	return nil
}

// settingsMarkdown renders the configuration table of the README.
func settingsMarkdown() string {
	var b strings.Builder
	b.WriteString("| setting | flag | environment | default | meaning |\n|---|---|---|---|---|\n")
	for _, s := range settings {
		fmt.Fprintf(&b, "| %s | `-%s` | `%s` | %s | %s |\n", s.name, s.flag, s.env, s.def, s.meaning)
	}
	fmt.Fprintf(&b, "| master key | (none) | `%s` | (generated, DataDir/master.key) | 32-byte KEK, unpadded base64url, that seals the server's KEKs; required in production. |\n", masterKeyEnv)
	fmt.Fprintf(&b, "| LLM API key | (none) | `%s` | (none) | Bearer key sent to the LLM upstream; never logged. |\n", llmAPIKeyEnv)
	return b.String()
}
