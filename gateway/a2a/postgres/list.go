package postgres

import (
	"context"
	"encoding/json"

	"github.com/jackc/pgx/v5"

	"github.com/talosgo/talos/gateway/a2a"
)

var _ a2a.Lister = (*Store)(nil)

// listRow is one object row of a listing, decoded after the read.
type listRow struct {
	doc     []byte
	members []string
	head    string
	n       int
	frames  int64
}

// ListSessions implements a2a.Lister: one query, in byte order of id
// (COLLATE "C", the order of a2a.MemStore), each session with its chain
// head and its frame count.
func (s *Store) ListSessions(ctx context.Context, q a2a.ListQuery) ([]a2a.SessionInfo, error) {
	rows, err := s.listRows(ctx, "session", `(SELECT count(*) FROM `+s.frames+` f WHERE f.session_id = o.id)`, q)
	if err != nil {
		return nil, relayErr(err)
	}
	var out []a2a.SessionInfo
	for _, r := range rows {
		si := a2a.SessionInfo{Session: new(a2a.Session), Frames: r.frames}
		si.Head.Head, si.Head.N = r.head, r.n
		if err := json.Unmarshal(r.doc, si.Session); err != nil {
			return nil, relayErr(err)
		}
		out = append(out, si)
	}
	return out, nil
}

// ListGroups implements a2a.Lister.
func (s *Store) ListGroups(ctx context.Context, q a2a.ListQuery) ([]a2a.GroupInfo, error) {
	rows, err := s.listRows(ctx, "group", `0::bigint`, q)
	if err != nil {
		return nil, relayErr(err)
	}
	var out []a2a.GroupInfo
	for _, r := range rows {
		var gi a2a.GroupInfo
		gi.Head.Head, gi.Head.N = r.head, r.n
		g, err := groupFrom(r.doc, r.members)
		if err != nil {
			return nil, relayErr(err)
		}
		gi.Group = g
		out = append(out, gi)
	}
	return out, nil
}

// listRows reads the rows of a listing through the store's read function.
func (s *Store) listRows(ctx context.Context, kind, frames string, q a2a.ListQuery) ([]listRow, error) {
	sel := `SELECT o.doc, o.members, o.head, o.n, ` + frames + ` FROM ` + s.objects + ` o WHERE o.kind = $1`
	var out []listRow
	err := s.read(ctx, func(ctx context.Context, db Querier) error {
		out = nil
		var rows pgx.Rows
		var err error
		if q.ID != "" {
			rows, err = db.Query(ctx, sel+` AND o.id = $2`, kind, q.ID)
		} else {
			rows, err = db.Query(ctx, sel+` AND o.id COLLATE "C" > $2 ORDER BY o.id COLLATE "C" LIMIT $3`, kind, q.After, q.Limit)
		}
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r listRow
			if err := rows.Scan(&r.doc, &r.members, &r.head, &r.n, &r.frames); err != nil {
				return err
			}
			out = append(out, r)
		}
		return rows.Err()
	})
	return out, err
}
