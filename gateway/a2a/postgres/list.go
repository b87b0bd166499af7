package postgres

import (
	"context"
	"encoding/json"

	"github.com/jackc/pgx/v5"

	"github.com/talosgo/talos/gateway/a2a"
)

var _ a2a.Lister = (*Store)(nil)

// ListSessions implements a2a.Lister: one query, in byte order of id
// (COLLATE "C", the order of a2a.MemStore), each session with its chain
// head and its frame count.
func (s *Store) ListSessions(ctx context.Context, q a2a.ListQuery) ([]a2a.SessionInfo, error) {
	rows, err := s.listRows(ctx, "session", `(SELECT count(*) FROM `+s.frames+` f WHERE f.session_id = o.id)`, q)
	if err != nil {
		return nil, relayErr(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (a2a.SessionInfo, error) {
		var doc []byte
		var members []string
		var si a2a.SessionInfo
		if err := row.Scan(&doc, &members, &si.Head.Head, &si.Head.N, &si.Frames); err != nil {
			return si, err
		}
		si.Session = new(a2a.Session)
		return si, json.Unmarshal(doc, si.Session)
	})
	return out, relayErr(err)
}

// ListGroups implements a2a.Lister.
func (s *Store) ListGroups(ctx context.Context, q a2a.ListQuery) ([]a2a.GroupInfo, error) {
	rows, err := s.listRows(ctx, "group", `0::bigint`, q)
	if err != nil {
		return nil, relayErr(err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (a2a.GroupInfo, error) {
		var doc []byte
		var members []string
		var gi a2a.GroupInfo
		var frames int64
		if err := row.Scan(&doc, &members, &gi.Head.Head, &gi.Head.N, &frames); err != nil {
			return gi, err
		}
		g, err := groupFrom(doc, members)
		gi.Group = g
		return gi, err
	})
	return out, relayErr(err)
}

func (s *Store) listRows(ctx context.Context, kind, frames string, q a2a.ListQuery) (pgx.Rows, error) {
	sel := `SELECT o.doc, o.members, o.head, o.n, ` + frames + ` FROM ` + s.objects + ` o WHERE o.kind = $1`
	if q.ID != "" {
		return s.db.Query(ctx, sel+` AND o.id = $2`, kind, q.ID)
	}
	return s.db.Query(ctx, sel+` AND o.id COLLATE "C" > $2 ORDER BY o.id COLLATE "C" LIMIT $3`, kind, q.After, q.Limit)
}
