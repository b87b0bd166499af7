package main

import (
	"context"
	"path/filepath"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/gateway/config"
	configpg "github.com/talosgo/talos/gateway/config/postgres"
	"github.com/talosgo/talos/gateway/pgsplit"
)

// opConfig is the audit surface of configuration changes.
const opConfig = config.DefaultAuditSurface

// configFileName holds the config versions without PostgreSQL.
const configFileName = "config-versions.jsonl"

// openConfigs opens the config service (gateway/config): versions in
// PostgreSQL when configured (reads through the replica split), otherwise
// in DataDir/config-versions.jsonl. Every change is audited inside the write
// (config.AuditHook over the core's log): if the log cannot record it, the
// version is not stored.
func openConfigs(ctx context.Context, s *Server, c *core) (*config.Service, error) {
	var store config.Store
	switch {
	case s.db != nil:
		db := s.db
		ps, err := configpg.New(configpg.Config{
			DB: db.Primary(), TablePrefix: s.cfg.tablePrefix,
			// The config lists read the replica (readsplit.go); the
			// documents decisions use, the primary.
			Read: func(ctx context.Context, fn func(context.Context, configpg.Querier) error) error {
				return db.ReadIfAllowed(ctx, func(ctx context.Context, q pgsplit.Querier) error { return fn(ctx, q) })
			},
		})
		if err != nil {
			return nil, err
		}
		if err := ps.Migrate(ctx); err != nil {
			return nil, err
		}
		store = ps
	default:
		fs, err := config.OpenFile(filepath.Join(s.cfg.DataDir, configFileName))
		if err != nil {
			return nil, err
		}
		s.OnShutdown("config store", func(context.Context) error { return fs.Close() })
		store = fs
	}
	hook, err := config.AuditHook(config.AuditHookConfig{
		Log: c.log, Events: c.events, Surface: opConfig,
		Principal: func(ch config.Change) audit.Principal {
			if ch.Principal != "" && ch.Principal != "admin-bootstrap" {
				return audit.BearerPrincipal(ch.Principal, "admin")
			}
			return audit.BearerPrincipal("admin", "admin")
		},
	})
	if err != nil {
		return nil, err
	}
	return config.New(config.Config{Store: store, OnChange: hook, Principal: principalFrom})
}
