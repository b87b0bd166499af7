package main

import (
	"context"
	"errors"
	"path/filepath"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/config"
	configpg "github.com/talosgo/talos/gateway/config/postgres"
	"github.com/talosgo/talos/gateway/llm"
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
	return config.New(config.Config{Store: store, OnChange: hook, Principal: principalFrom, Kinds: enforcedKinds()})
}

// enforcedKinds are the contract's document kinds with the checks of what
// enforces them added: a document the server would refuse to enforce (a
// routing policy past the LLM proxy's limits, a budget whose max_usd is out
// of range) is refused at PUT, so an accepted version is always one in
// force.
func enforcedKinds() []config.Kind {
	kinds := config.DefaultKinds()
	for i, k := range kinds {
		check := k.Check
		var enforce func(doc []byte) error
		switch k.Name {
		case "policy":
			enforce = func(doc []byte) error { _, err := llm.ParseRoutingPolicy(doc); return err }
		case "budget":
			enforce = func(doc []byte) error { _, _, err := configBudgetScope(doc); return err }
		default:
			continue
		}
		kinds[i].Check = func(doc []byte, name string) error {
			if err := check(doc, name); err != nil {
				return err
			}
			if err := enforce(doc); err != nil {
				msg := "document cannot be enforced"
				var ce *contracts.Error
				if errors.As(err, &ce) {
					msg = ce.Message
				}
				return contracts.New(contracts.CodeSchemaValidationError, msg)
			}
			return nil
		}
	}
	return kinds
}
