package main

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/ratchet"
)

// pgA2A is the PostgreSQL a2aStore: several server replicas share one A2A
// state. Each change runs in one transaction that locks the session or
// group row, so transitions, event chains and sender_seq checks are
// serialized per object across replicas.
type pgA2A struct {
	pool                     *pgxpool.Pool
	objects, eventsT, frames string
}

func openPGA2A(ctx context.Context, pool *pgxpool.Pool, prefix string) (*pgA2A, error) {
	s := &pgA2A{pool: pool, objects: prefix + "a2a_objects", eventsT: prefix + "a2a_events", frames: prefix + "a2a_frames"}
	ddl := `
CREATE TABLE IF NOT EXISTS ` + s.objects + ` (
	id text PRIMARY KEY, kind text NOT NULL, doc bytea NOT NULL, blob bytea,
	members jsonb, head text NOT NULL, n integer NOT NULL);
CREATE TABLE IF NOT EXISTS ` + s.eventsT + ` (
	id text NOT NULL, n integer NOT NULL, event bytea NOT NULL, PRIMARY KEY (id, n));
CREATE TABLE IF NOT EXISTS ` + s.frames + ` (
	pos bigserial UNIQUE, session_id text NOT NULL, sender_id text NOT NULL, sender_seq bigint NOT NULL,
	digest text NOT NULL, frame bytea NOT NULL, PRIMARY KEY (session_id, sender_id, sender_seq));`
	if _, err := pool.Exec(ctx, ddl); err != nil {
		return nil, a2aStoreErr(err)
	}
	return s, nil
}

// a2aStoreErr hides database details from clients: the cause stays in the
// error chain for the server's own logs and traces.
func a2aStoreErr(err error) error {
	if err == nil {
		return nil
	}
	var ce *contracts.Error
	if errors.As(err, &ce) {
		return err
	}
	return contracts.Wrap(contracts.CodeInternal, "a2a store unavailable", err)
}

func (s *pgA2A) insertObject(ctx context.Context, id, kind string, doc, blob []byte, members []string, ev json.RawMessage, digest string) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var mem any
		if members != nil {
			mem = members
		}
		tag, err := tx.Exec(ctx, `INSERT INTO `+s.objects+` (id, kind, doc, blob, members, head, n) VALUES ($1,$2,$3,$4,$5,$6,1) ON CONFLICT (id) DO NOTHING`,
			id, kind, doc, blob, mem, digest)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return contracts.Errorf(contracts.CodeInvalidInput, kind+" exists")
		}
		_, err = tx.Exec(ctx, `INSERT INTO `+s.eventsT+` (id, n, event) VALUES ($1, 0, $2)`, id, []byte(ev))
		return err
	})
}

func (s *pgA2A) createSession(ctx context.Context, ss *a2aSession, ev json.RawMessage, digest string) error {
	doc, err := json.Marshal(ss)
	if err != nil {
		return err
	}
	return a2aStoreErr(s.insertObject(ctx, ss.SessionID, "session", doc, ss.blob, nil, ev, digest))
}

func (s *pgA2A) getSession(ctx context.Context, id string) (*a2aSession, error) {
	var doc, blob []byte
	err := s.pool.QueryRow(ctx, `SELECT doc, blob FROM `+s.objects+` WHERE id = $1 AND kind = 'session'`, id).Scan(&doc, &blob)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errNotFound("session")
	}
	if err != nil {
		return nil, a2aStoreErr(err)
	}
	var ss a2aSession
	if err := json.Unmarshal(doc, &ss); err != nil {
		return nil, a2aStoreErr(err)
	}
	ss.blob = blob
	return &ss, nil
}

// update locks the object row, runs fn and writes its result and event.
func (s *pgA2A) update(ctx context.Context, id, kind string, fn func(tx pgx.Tx, doc, blob []byte, members []string, h chainState) (newDoc, newBlob []byte, newMembers []string, ev json.RawMessage, digest string, err error)) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var doc, blob []byte
		var members []string
		var h chainState
		err := tx.QueryRow(ctx, `SELECT doc, blob, members, head, n FROM `+s.objects+` WHERE id = $1 AND kind = $2 FOR UPDATE`, id, kind).
			Scan(&doc, &blob, &members, &h.Head, &h.N)
		if errors.Is(err, pgx.ErrNoRows) {
			return errNotFound(kind)
		}
		if err != nil {
			return err
		}
		newDoc, newBlob, newMembers, ev, digest, err := fn(tx, doc, blob, members, h)
		if err != nil {
			return err
		}
		var mem any
		if newMembers != nil {
			mem = newMembers
		}
		if _, err := tx.Exec(ctx, `UPDATE `+s.objects+` SET doc = $2, blob = $3, members = $4, head = $5, n = n + 1 WHERE id = $1`,
			id, newDoc, newBlob, mem, digest); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO `+s.eventsT+` (id, n, event) VALUES ($1, $2, $3)`, id, h.N, []byte(ev))
		return err
	})
	return a2aStoreErr(err)
}

func (s *pgA2A) updateSession(ctx context.Context, id string, fn sessionUpdate) (*a2aSession, error) {
	var out *a2aSession
	err := s.update(ctx, id, "session", func(_ pgx.Tx, doc, blob []byte, _ []string, h chainState) ([]byte, []byte, []string, json.RawMessage, string, error) {
		var cur a2aSession
		if err := json.Unmarshal(doc, &cur); err != nil {
			return nil, nil, nil, nil, "", err
		}
		cur.blob = blob
		next, ev, digest, err := fn(&cur, h)
		if err != nil {
			return nil, nil, nil, nil, "", err
		}
		nd, err := json.Marshal(next)
		out = next
		return nd, next.blob, nil, ev, digest, err
	})
	return out, err
}

func (s *pgA2A) putFrame(ctx context.Context, f *ratchet.Frame, raw []byte) (bool, error) {
	var dup bool
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Serialize frames of one session: lock its row.
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM `+s.objects+` WHERE id = $1 AND kind = 'session' FOR UPDATE`, f.SessionID).Scan(&one); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return errNotFound("session")
			}
			return err
		}
		var digest string
		err := tx.QueryRow(ctx, `SELECT digest FROM `+s.frames+` WHERE session_id = $1 AND sender_id = $2 AND sender_seq = $3`,
			f.SessionID, f.SenderID, int64(f.SenderSeq)).Scan(&digest)
		switch {
		case err == nil && digest == f.FrameDigest:
			dup = true
			return nil
		case err == nil:
			return contracts.Errorf(contracts.CodeReplayDetected, "sender_seq already used by another frame")
		case !errors.Is(err, pgx.ErrNoRows):
			return err
		}
		var high *int64
		if err := tx.QueryRow(ctx, `SELECT max(sender_seq) FROM `+s.frames+` WHERE session_id = $1 AND sender_id = $2`,
			f.SessionID, f.SenderID).Scan(&high); err != nil {
			return err
		}
		base := int64(0)
		if high != nil {
			base = *high
		}
		if int64(f.SenderSeq) > base && int64(f.SenderSeq)-base > ratchet.MaxSeqAhead {
			return contracts.Errorf(contracts.CodeStateSequenceGap, "sender_seq too far ahead")
		}
		_, err = tx.Exec(ctx, `INSERT INTO `+s.frames+` (session_id, sender_id, sender_seq, digest, frame) VALUES ($1,$2,$3,$4,$5)`,
			f.SessionID, f.SenderID, int64(f.SenderSeq), f.FrameDigest, raw)
		return err
	})
	return dup, a2aStoreErr(err)
}

func (s *pgA2A) listFrames(ctx context.Context, sessionID string, after uint64, limit int) ([]json.RawMessage, uint64, error) {
	rows, err := s.pool.Query(ctx, `SELECT pos, frame FROM `+s.frames+` WHERE session_id = $1 AND pos > $2 ORDER BY pos LIMIT $3`,
		sessionID, int64(after), limit)
	if err != nil {
		return nil, after, a2aStoreErr(err)
	}
	defer rows.Close()
	var out []json.RawMessage
	last := after
	for rows.Next() {
		var pos int64
		var frame []byte
		if err := rows.Scan(&pos, &frame); err != nil {
			return nil, after, a2aStoreErr(err)
		}
		out = append(out, frame)
		last = uint64(pos)
	}
	return out, last, a2aStoreErr(rows.Err())
}

func (s *pgA2A) createGroup(ctx context.Context, g *a2aGroup, ev json.RawMessage, digest string) error {
	doc, err := json.Marshal(g)
	if err != nil {
		return err
	}
	return a2aStoreErr(s.insertObject(ctx, g.GroupID, "group", doc, nil, sortedMembers(g), ev, digest))
}

func groupFrom(doc []byte, members []string) (*a2aGroup, error) {
	var g a2aGroup
	if err := json.Unmarshal(doc, &g); err != nil {
		return nil, err
	}
	g.members = make(map[string]bool, len(members))
	for _, m := range members {
		g.members[m] = true
	}
	return &g, nil
}

func (s *pgA2A) getGroup(ctx context.Context, id string) (*a2aGroup, error) {
	var doc []byte
	var members []string
	err := s.pool.QueryRow(ctx, `SELECT doc, members FROM `+s.objects+` WHERE id = $1 AND kind = 'group'`, id).Scan(&doc, &members)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errNotFound("group")
	}
	if err != nil {
		return nil, a2aStoreErr(err)
	}
	g, err := groupFrom(doc, members)
	return g, a2aStoreErr(err)
}

func (s *pgA2A) updateGroup(ctx context.Context, id string, fn groupUpdate) (*a2aGroup, error) {
	var out *a2aGroup
	err := s.update(ctx, id, "group", func(_ pgx.Tx, doc, _ []byte, members []string, h chainState) ([]byte, []byte, []string, json.RawMessage, string, error) {
		cur, err := groupFrom(doc, members)
		if err != nil {
			return nil, nil, nil, nil, "", err
		}
		next, ev, digest, err := fn(cur, h)
		if err != nil {
			return nil, nil, nil, nil, "", err
		}
		nd, err := json.Marshal(next)
		out = next
		return nd, nil, sortedMembers(next), ev, digest, err
	})
	return out, err
}

func (s *pgA2A) events(ctx context.Context, id string) ([]json.RawMessage, error) {
	rows, err := s.pool.Query(ctx, `SELECT event FROM `+s.eventsT+` WHERE id = $1 ORDER BY n`, id)
	if err != nil {
		return nil, a2aStoreErr(err)
	}
	defer rows.Close()
	var out []json.RawMessage
	for rows.Next() {
		var ev []byte
		if err := rows.Scan(&ev); err != nil {
			return nil, a2aStoreErr(err)
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, a2aStoreErr(err)
	}
	if len(out) == 0 {
		return nil, errNotFound("object")
	}
	return out, nil
}
