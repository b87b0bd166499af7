package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/talosgo/talos/contracts"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestLoadConfigDefaults(t *testing.T) {
	cfg, warnings, err := LoadConfig(nil, env(nil))
	if err != nil || len(warnings) != 0 {
		t.Fatalf("LoadConfig: %v %v", err, warnings)
	}
	if cfg.DataDir != "./talos-data" || cfg.Listen != "127.0.0.1:8080" || cfg.Production || cfg.TraceExporter != "auto" ||
		cfg.ShutdownTimeout != 20*time.Second || cfg.KEKRotation != 168*time.Hour || cfg.BreakerFailures != 5 ||
		cfg.BreakerOpen != 10*time.Second || cfg.BreakerProbes != 1 || cfg.PostgresURL != "" || cfg.RedisURL != "" {
		t.Fatalf("defaults: %+v", cfg)
	}
}

func TestLoadConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "talos.json")
	doc := `{"config_version":"1.0","global":{"env":"dev","region":"eu-west-1","log_level":"DEBUG"},
		"gateway":{"port":9001,"database_url_ref":"env:MY_DB"},"audit":{"storage_backend":"memory","retention_days":30},
		"mcp_connector":{"allowed_servers":["http://127.0.0.1:7000/mcp"]},"extensions":{"anything":{"goes":true}}}`
	if err := os.WriteFile(file, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	e := map[string]string{"TALOS_CONFIG_FILE": file, "MY_DB": "postgres://db/x"}
	cfg, _, err := LoadConfig(nil, env(e))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:9001" || cfg.PostgresURL != "postgres://db/x" || cfg.Region != "eu-west-1" ||
		cfg.LogLevel != "DEBUG" || cfg.AuditBackend != "memory" || cfg.AuditRetentionDays != 30 || len(cfg.MCPAllowedServers) != 1 {
		t.Fatalf("from file: %+v", cfg)
	}
	// The environment overrides the file, a flag overrides the environment.
	e["TALOS_LISTEN"] = "127.0.0.1:9002"
	e["TALOS_POSTGRES_URL"] = "postgres://env/x"
	cfg, _, err = LoadConfig([]string{"-listen", "127.0.0.1:9003", "-production=false", "-kek-rotation", "0"}, env(e))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:9003" || cfg.PostgresURL != "postgres://env/x" || cfg.KEKRotation != 0 {
		t.Fatalf("precedence: %+v", cfg)
	}
}

func TestLoadConfigMasterKey(t *testing.T) {
	key := contracts.EncodeBase64URL([]byte("0123456789abcdef0123456789abcdef"))
	cfg, _, err := LoadConfig([]string{"-production"}, env(map[string]string{masterKeyEnv: key}))
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Production || string(cfg.MasterKey) != "0123456789abcdef0123456789abcdef" {
		t.Fatalf("production config: %+v", cfg)
	}
	if s := fmt.Sprintf("%v %+v %#v %s", cfg, cfg, cfg, cfg.MasterKey); strings.Contains(s, "0123456789abcdef") {
		t.Fatalf("master key printed: %s", s)
	}
	for _, bad := range []string{key + "=", "AAAA", "not base64!"} {
		_, _, err := LoadConfig(nil, env(map[string]string{masterKeyEnv: bad}))
		if !errors.Is(err, contracts.ErrInvalidInput) || strings.Contains(err.Error(), bad) {
			t.Fatalf("master key %q: %v", bad, err)
		}
	}
	if _, _, err := LoadConfig([]string{"-production"}, env(nil)); err == nil || !strings.Contains(err.Error(), masterKeyEnv) {
		t.Fatalf("production without a master key: %v", err)
	}
}

func TestLoadConfigRejects(t *testing.T) {
	dir := t.TempDir()
	write := func(doc string) string {
		f := filepath.Join(dir, fmt.Sprintf("c%d.json", len(doc)))
		if err := os.WriteFile(f, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	for name, tc := range map[string]struct {
		args []string
		env  map[string]string
		code string
	}{
		"unknown flag":        {args: []string{"-nope"}, code: string(contracts.CodeInvalidInput)},
		"positional argument": {args: []string{"extra"}, code: string(contracts.CodeInvalidInput)},
		"bad listen":          {args: []string{"-listen", "8080"}, code: string(contracts.CodeInvalidInput)},
		"bad duration":        {args: []string{"-shutdown-timeout", "soon"}, code: string(contracts.CodeInvalidInput)},
		"bad bool env":        {env: map[string]string{"TALOS_PRODUCTION": "maybe"}, code: string(contracts.CodeInvalidInput)},
		"replica alone":       {args: []string{"-postgres-replica", "postgres://r/x"}, code: string(contracts.CodeInvalidInput)},
		"otlp without url":    {args: []string{"-trace-exporter", "otlp"}, code: string(contracts.CodeInvalidInput)},
		"bad otlp url":        {args: []string{"-otlp-endpoint", "collector:4318"}, code: string(contracts.CodeInvalidInput)},
		"bad redis url":       {args: []string{"-redis", "http://x"}, code: string(contracts.CodeInvalidInput)},
		"rotation too often":  {args: []string{"-kek-rotation", "1s"}, code: string(contracts.CodeInvalidInput)},
		"missing file":        {args: []string{"-config", filepath.Join(dir, "none.json")}, code: string(contracts.CodeInvalidInput)},
		"schema: unknown field": {args: []string{"-config", write(`{"config_version":"1.0","global":{},"extra":1}`)},
			code: string(contracts.CodeSchemaValidationError)},
		"schema: wrong version": {args: []string{"-config", write(`{"config_version":"2.0","global":{}}`)},
			code: string(contracts.CodeSchemaValidationError)},
		"schema: missing global": {args: []string{"-config", write(`{"config_version":"1.0"}`)},
			code: string(contracts.CodeSchemaValidationError)},
		"schema: low port": {args: []string{"-config", write(`{"config_version":"1.0","global":{},"gateway":{"port":80}}`)},
			code: string(contracts.CodeSchemaValidationError)},
		"not JSON": {args: []string{"-config", write(`{"config_version":`)}, code: string(contracts.CodeInvalidInput)},
		"unset ref": {args: []string{"-config", write(`{"config_version":"1.0","global":{},"gateway":{"database_url_ref":"env:UNSET_VAR"}}`)},
			code: string(contracts.CodeSchemaValidationError)},
		"disable_auth in prod": {args: []string{"-config", write(`{"config_version":"1.0","global":{"env":"prod"},"gateway":{"disable_auth":true}}`)},
			env: map[string]string{masterKeyEnv: contracts.EncodeBase64URL(make([]byte, 32))}, code: string(contracts.CodeSchemaValidationError)},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := LoadConfig(tc.args, env(tc.env))
			if got := contracts.CodeOf(err); string(got) != tc.code {
				t.Fatalf("error %v (code %q), want code %s", err, got, tc.code)
			}
		})
	}
}

func TestLoadConfigDisableAuthWarnsInDev(t *testing.T) {
	f := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(f, []byte(`{"config_version":"1.0","global":{"env":"dev"},"gateway":{"disable_auth":true}}`), 0o600)
	_, warnings, err := LoadConfig([]string{"-config", f}, env(nil))
	if err != nil || len(warnings) != 1 || !strings.Contains(warnings[0], "disable_auth") {
		t.Fatalf("%v %v", warnings, err)
	}
}

func TestLoadConfigHelp(t *testing.T) {
	if _, _, err := LoadConfig([]string{"-h"}, env(nil)); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
}

// TestSettingsTable keeps the README table complete: every setting has a
// flag, an environment variable, a default and a meaning, and appears once.
func TestSettingsTable(t *testing.T) {
	md := settingsMarkdown()
	seenFlag, seenEnv := map[string]bool{}, map[string]bool{}
	for _, s := range settings {
		if s.name == "" || s.flag == "" || s.env == "" || s.def == "" || s.meaning == "" {
			t.Errorf("incomplete setting %+v", s)
		}
		if seenFlag[s.flag] || seenEnv[s.env] {
			t.Errorf("duplicate flag or env for %s", s.name)
		}
		seenFlag[s.flag], seenEnv[s.env] = true, true
		if !strings.Contains(md, "`-"+s.flag+"`") || !strings.Contains(md, "`"+s.env+"`") {
			t.Errorf("%s missing from the table", s.name)
		}
	}
	if !strings.Contains(md, masterKeyEnv) {
		t.Error("master key missing from the table")
	}
}

// FuzzConfigFile: a config file is either rejected with a contract error or
// accepted only when the contract schema accepts it; never a panic.
func FuzzConfigFile(f *testing.F) {
	f.Add([]byte(`{"config_version":"1.0","global":{"env":"dev"},"gateway":{"port":9001,"host":"127.0.0.1"}}`))
	f.Add([]byte(`{"config_version":"1.0","global":{},"audit":{"storage_backend":"memory","retention_days":3}}`))
	f.Add([]byte(`{"config_version":"1.0","global":{},"extensions":{"x":[1,2,{"y":null}]}}`))
	f.Add([]byte(`{"config_version":"1.0","global":{"env":"prod"},"gateway":{"disable_auth":true}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		cfg := DefaultConfig()
		_, err := applyConfigFile(&cfg, raw, env(map[string]string{"DB": "postgres://db/x"}))
		if err != nil {
			var ce *contracts.Error
			if !errors.As(err, &ce) {
				t.Fatalf("non-contract error %T: %v", err, err)
			}
			return
		}
		if verr := contracts.Validate("config/v1/talos.config", raw); verr != nil {
			t.Fatalf("accepted a file the schema rejects: %v", verr)
		}
		if _, _, perr := net.SplitHostPort(cfg.Listen); perr != nil {
			t.Fatalf("accepted file produced listen address %q", cfg.Listen)
		}
	})
}
