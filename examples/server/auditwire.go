package main

import (
	"context"
	"path/filepath"

	"github.com/talosgo/talos/audit"
	auditfile "github.com/talosgo/talos/audit/file"
	auditpg "github.com/talosgo/talos/audit/postgres"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/auditapi"
)

// openAudit opens the audit log (its store per audit.storage_backend, signed
// with the server key) and the audit HTTP service (gateway/auditapi). A
// checkpoint is published at start, every CheckpointInterval while the log
// grows, and at shutdown (before the store closes: hooks run newest first),
// so tile clients see a fresh tree head without anyone calling GET
// /v1/audit/checkpoint. With the log in PostgreSQL the periodic
// publication runs once per interval across the replicas (replicas_jobs.go). Entry bytes go to admins with admin.audit read unless
// TALOS_AUDIT_PUBLIC.
func (c *core) openAudit(ctx context.Context, s *Server) error {
	signer, err := audit.NewNoteSigner(logOrigin, s.wallet.Signer())
	if err != nil {
		return err
	}
	if c.logVerifier, err = audit.NewVerifier(logOrigin, s.wallet.PublicKey()); err != nil {
		return err
	}
	if c.logStore, err = c.openAuditStore(ctx, s); err != nil {
		return err
	}
	// The Log appends through appendWaker, so the live audit stream
	// serves this replica's events at once (streamwire.go).
	c.logAppends = newAppendWaker(c.logStore)
	c.log, err = audit.New(ctx, audit.Config{Store: c.logAppends.store(), Signer: signer, Verifier: c.logVerifier, Meter: s.meter("github.com/talosgo/talos/audit")})
	if err != nil {
		return err
	}
	c.audit, err = auditapi.New(auditapi.Config{
		Log: c.log, Store: c.logStore, Public: s.cfg.AuditPublic, IsReader: s.isAdmin, Realm: "talos-admin",
	})
	if err != nil {
		return err
	}
	if err := c.audit.Publish(ctx); err != nil {
		return err
	}
	onErr := func(err error) {
		s.log.Warn("audit checkpoint publication failed; retrying at the next interval", "err", err)
	}
	switch {
	case s.cfg.CheckpointInterval <= 0:
	case s.db != nil && isPostgresAudit(c.logStore):
		// Replicas share the log: one of them publishes per interval
		// (replicas_jobs.go).
		j, err := newJobs(ctx, s.db.Primary(), s.cfg.tablePrefix)
		if err != nil {
			return err
		}
		s.Go("checkpoint-publisher", j.every("audit-checkpoint", s.cfg.CheckpointInterval, c.audit.Publish, onErr))
	default:
		s.Go("checkpoint-publisher", c.audit.Publisher(s.cfg.CheckpointInterval, onErr))
	}
	s.OnShutdown("audit-checkpoint", c.audit.Publish)
	return nil
}

// isPostgresAudit reports whether the log is in PostgreSQL (shared by the
// replicas).
func isPostgresAudit(st audit.Store) bool {
	_, ok := st.(*auditpg.Store)
	return ok
}

// openAuditStore opens the audit log's store per audit.storage_backend:
// "postgres" (the default when PostgreSQL is configured: replicas share one
// log), "memory" (not durable: tests and demos), and otherwise the durable
// file store in the data directory. Every store's C2SP tiles are served
// under /tlog/.
func (c *core) openAuditStore(ctx context.Context, s *Server) (audit.Store, error) {
	backend := s.cfg.AuditBackend
	if backend == "" && s.db != nil {
		backend = "postgres"
	}
	switch backend {
	case "postgres":
		if s.db == nil {
			return nil, contracts.New(contracts.CodeInvalidInput, "config: audit.storage_backend postgres needs a PostgreSQL URL")
		}
		// Event searches read the replica (readsplit.go); the tree the primary.
		ps, err := auditpg.New(auditpg.Config{DB: s.db.Primary(), TablePrefix: s.cfg.tablePrefix, Read: readSplit[auditpg.Querier](s.db)})
		if err != nil {
			return nil, err
		}
		if err := ps.Migrate(ctx); err != nil {
			return nil, err
		}
		return ps, nil
	case "memory":
		return audit.NewMemStore(), nil
	}
	fs, err := auditfile.Open(ctx, auditfile.Config{Dir: filepath.Join(s.cfg.DataDir, "audit")})
	if err != nil {
		return nil, err
	}
	s.OnShutdown("audit-log", func(context.Context) error { return fs.Close() })
	return fs, nil
}
