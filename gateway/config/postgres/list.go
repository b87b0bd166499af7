package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/talosgo/talos/gateway/config"
)

var _ config.Lister = (*Store)(nil)

// List implements config.Lister: the latest version of each document
// after (afterKind, afterName), in byte order of kind then name (COLLATE
// "C", the order of config.MemStore), one indexed scan of the primary key.
func (s *Store) List(ctx context.Context, afterKind, afterName string, limit int) ([]config.Document, error) {
	var out []config.Document
	err := s.read(ctx, func(ctx context.Context, q Querier) error {
		rows, err := q.Query(ctx, `SELECT DISTINCT ON (kind COLLATE "C", name COLLATE "C") kind, name, version, digest, created_at FROM `+s.table+
			` WHERE (kind COLLATE "C", name COLLATE "C") > ($1::text COLLATE "C", $2::text COLLATE "C")`+
			` ORDER BY kind COLLATE "C", name COLLATE "C", version DESC LIMIT $3`, afterKind, afterName, limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (config.Document, error) {
			var d config.Document
			err := row.Scan(&d.Kind, &d.Name, &d.LatestVersion, &d.Digest, &d.UpdatedAt)
			d.UpdatedAt = d.UpdatedAt.UTC()
			return d, err
		})
		return err
	})
	if out == nil && err == nil {
		out = []config.Document{}
	}
	return out, err
}
