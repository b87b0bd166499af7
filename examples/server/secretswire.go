package main

import (
	"context"
	"errors"
	"path/filepath"

	"github.com/talosgo/talos/gateway/secrets"
	secretspg "github.com/talosgo/talos/gateway/secrets/postgres"
)

// openSecrets opens the sealed secret store (gateway/secrets): a PostgreSQL
// table when configured (KEK rotation under an advisory lock, once across
// the replicas), otherwise DataDir/secrets.json. Every plaintext read is
// registered with the trace redactor.
func openSecrets(ctx context.Context, s *Server, master []byte) (*secrets.Vault, error) {
	var store secrets.Store
	if s.db != nil {
		ps, err := secretspg.New(secretspg.Config{DB: s.db.Primary(), TablePrefix: s.cfg.tablePrefix})
		if err != nil {
			return nil, err
		}
		if err := ps.Migrate(ctx); err != nil {
			return nil, err
		}
		store = ps
	} else {
		fs, err := secrets.OpenFile(filepath.Join(s.cfg.DataDir, secretsFileName))
		if err != nil {
			return nil, err
		}
		store = fs
	}
	v, err := secrets.Open(ctx, secrets.Config{Store: store, MasterKey: master, Logger: s.log, OnReveal: s.redactor.AddSecretBytes})
	if errors.Is(err, secrets.ErrWrongMasterKey) {
		return nil, errors.New("secrets: the master key does not open the stored KEKs (every replica needs the same " + masterKeyEnv + ")")
	}
	return v, err
}
