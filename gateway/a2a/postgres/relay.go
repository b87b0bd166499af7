package postgres

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/a2a"
	"github.com/talosgo/talos/ratchet"
)

// TxDB is a DB that begins transactions; *pgxpool.Pool satisfies it.
type TxDB interface {
	DB
	Begin(ctx context.Context) (pgx.Tx, error)
}

// Store is the relay's a2a.Store on PostgreSQL: several server replicas
// share one A2A state. Each change runs in one transaction that locks the
// session or group row, so transitions, event chains and the sender_seq
// rule (a2a.CheckSenderSeq, applied to what the transaction reads) are
// serialized per object across replicas. Tables: <prefix>a2a_objects,
// <prefix>a2a_events and <prefix>a2a_frames.
type Store struct {
	db                       TxDB
	read                     ReadFunc
	objects, eventsT, frames string
}

var _ a2a.Store = (*Store)(nil)

// NewStore returns a relay Store; cfg.DB must also be a [TxDB]. Call
// Migrate once before use.
func NewStore(cfg Config) (*Store, error) {
	db, ok := cfg.DB.(TxDB)
	if !ok {
		return nil, contracts.New(contracts.CodeInvalidInput, "a2a/postgres: Config.DB must begin transactions (a *pgxpool.Pool)")
	}
	if cfg.TablePrefix == "" {
		cfg.TablePrefix = "talos_"
	}
	if !prefixRE.MatchString(cfg.TablePrefix) {
		return nil, contracts.New(contracts.CodeInvalidInput, "a2a/postgres: invalid TablePrefix")
	}
	p := cfg.TablePrefix
	return &Store{db: db, read: readFunc(cfg), objects: p + "a2a_objects", eventsT: p + "a2a_events", frames: p + "a2a_frames"}, nil
}

// Migrate creates the tables if they do not exist.
func (s *Store) Migrate(ctx context.Context) error {
	ddl := `
CREATE TABLE IF NOT EXISTS ` + s.objects + ` (
	id text PRIMARY KEY, kind text NOT NULL, doc bytea NOT NULL, blob bytea,
	members jsonb, head text NOT NULL, n integer NOT NULL);
CREATE TABLE IF NOT EXISTS ` + s.eventsT + ` (
	id text NOT NULL, n integer NOT NULL, event bytea NOT NULL, PRIMARY KEY (id, n));
CREATE TABLE IF NOT EXISTS ` + s.frames + ` (
	pos bigserial UNIQUE, session_id text NOT NULL, sender_id text NOT NULL, sender_seq bigint NOT NULL,
	digest text NOT NULL, frame bytea NOT NULL, PRIMARY KEY (session_id, sender_id, sender_seq));`
	if _, err := s.db.Exec(ctx, ddl); err != nil {
		return relayErr(err)
	}
	return nil
}

// relayErr hides database details from clients: the cause stays in the
// error chain for the server's own logs and traces.
func relayErr(err error) error {
	if err == nil {
		return nil
	}
	var ce *contracts.Error
	if errors.As(err, &ce) {
		return err
	}
	return contracts.Wrap(contracts.CodeInternal, "a2a store unavailable", err)
}

func (s *Store) insertObject(ctx context.Context, id, kind string, doc, blob []byte, members []string, ev json.RawMessage, digest string) error {
	return pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
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
			return contracts.New(contracts.CodeInvalidInput, kind+" exists")
		}
		_, err = tx.Exec(ctx, `INSERT INTO `+s.eventsT+` (id, n, event) VALUES ($1, 0, $2)`, id, []byte(ev))
		return err
	})
}

// CreateSession implements a2a.Store.
func (s *Store) CreateSession(ctx context.Context, ss *a2a.Session, ev json.RawMessage, digest string) error {
	doc, err := json.Marshal(ss)
	if err != nil {
		return relayErr(err)
	}
	return relayErr(s.insertObject(ctx, ss.SessionID, "session", doc, ss.RatchetStateBlob, nil, ev, digest))
}

// GetSession implements a2a.Store.
func (s *Store) GetSession(ctx context.Context, id string) (*a2a.Session, error) {
	var doc, blob []byte
	err := s.db.QueryRow(ctx, `SELECT doc, blob FROM `+s.objects+` WHERE id = $1 AND kind = 'session'`, id).Scan(&doc, &blob)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, a2a.ErrNotFound("session")
	}
	if err != nil {
		return nil, relayErr(err)
	}
	var ss a2a.Session
	if err := json.Unmarshal(doc, &ss); err != nil {
		return nil, relayErr(err)
	}
	ss.RatchetStateBlob = blob
	return &ss, nil
}

type updateFunc func(doc, blob []byte, members []string, h a2a.ChainHead) (newDoc, newBlob []byte, newMembers []string, ev json.RawMessage, digest string, err error)

// update locks the object row, runs fn and writes its result and event.
func (s *Store) update(ctx context.Context, id, kind string, fn updateFunc) error {
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		var doc, blob []byte
		var members []string
		var h a2a.ChainHead
		err := tx.QueryRow(ctx, `SELECT doc, blob, members, head, n FROM `+s.objects+` WHERE id = $1 AND kind = $2 FOR UPDATE`, id, kind).
			Scan(&doc, &blob, &members, &h.Head, &h.N)
		if errors.Is(err, pgx.ErrNoRows) {
			return a2a.ErrNotFound(kind)
		}
		if err != nil {
			return err
		}
		newDoc, newBlob, newMembers, ev, digest, err := fn(doc, blob, members, h)
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
	return relayErr(err)
}

// UpdateSession implements a2a.Store.
func (s *Store) UpdateSession(ctx context.Context, id string, fn a2a.SessionUpdate) (*a2a.Session, error) {
	var out *a2a.Session
	err := s.update(ctx, id, "session", func(doc, blob []byte, _ []string, h a2a.ChainHead) ([]byte, []byte, []string, json.RawMessage, string, error) {
		var cur a2a.Session
		if err := json.Unmarshal(doc, &cur); err != nil {
			return nil, nil, nil, nil, "", err
		}
		cur.RatchetStateBlob = blob
		next, ev, digest, err := fn(&cur, h)
		if err != nil {
			return nil, nil, nil, nil, "", err
		}
		nd, err := json.Marshal(next)
		out = next
		return nd, next.RatchetStateBlob, nil, ev, digest, err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PutFrame implements a2a.Store: it locks the session row, reads the
// stream's state and applies a2a.CheckSenderSeq.
func (s *Store) PutFrame(ctx context.Context, f *ratchet.Frame, raw []byte) (bool, error) {
	var dup bool
	err := pgx.BeginFunc(ctx, s.db, func(tx pgx.Tx) error {
		var one int
		if err := tx.QueryRow(ctx, `SELECT 1 FROM `+s.objects+` WHERE id = $1 AND kind = 'session' FOR UPDATE`, f.SessionID).Scan(&one); err != nil {
			if errors.Is(err, pgx.ErrNoRows) {
				return a2a.ErrNotFound("session")
			}
			return err
		}
		var st a2a.SeqState
		err := tx.QueryRow(ctx, `SELECT digest FROM `+s.frames+` WHERE session_id = $1 AND sender_id = $2 AND sender_seq = $3`,
			f.SessionID, f.SenderID, int64(f.SenderSeq)).Scan(&st.UsedDigest)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		var high *int64
		if err := tx.QueryRow(ctx, `SELECT max(sender_seq) FROM `+s.frames+` WHERE session_id = $1 AND sender_id = $2`,
			f.SessionID, f.SenderID).Scan(&high); err != nil {
			return err
		}
		if high != nil && *high > 0 {
			st.Highest = uint64(*high)
		}
		d, err := a2a.CheckSenderSeq(f, st)
		if err != nil || d {
			dup = d
			return err
		}
		_, err = tx.Exec(ctx, `INSERT INTO `+s.frames+` (session_id, sender_id, sender_seq, digest, frame) VALUES ($1,$2,$3,$4,$5)`,
			f.SessionID, f.SenderID, int64(f.SenderSeq), f.FrameDigest, raw)
		return err
	})
	return dup, relayErr(err)
}

// ListFrames implements a2a.Store. Positions are the frames table's
// sequence: increasing in arrival order, not dense.
func (s *Store) ListFrames(ctx context.Context, sessionID string, after uint64, limit int) ([]json.RawMessage, uint64, error) {
	if limit <= 0 {
		return nil, after, nil
	}
	rows, err := s.db.Query(ctx, `SELECT pos, frame FROM `+s.frames+` WHERE session_id = $1 AND pos > $2 ORDER BY pos LIMIT $3`,
		sessionID, int64(after), limit)
	if err != nil {
		return nil, after, relayErr(err)
	}
	defer rows.Close()
	var out []json.RawMessage
	last := after
	for rows.Next() {
		var pos int64
		var frame []byte
		if err := rows.Scan(&pos, &frame); err != nil {
			return nil, after, relayErr(err)
		}
		out = append(out, frame)
		last = uint64(pos)
	}
	return out, last, relayErr(rows.Err())
}

// CreateGroup implements a2a.Store.
func (s *Store) CreateGroup(ctx context.Context, g *a2a.Group, ev json.RawMessage, digest string) error {
	doc, err := json.Marshal(g)
	if err != nil {
		return relayErr(err)
	}
	return relayErr(s.insertObject(ctx, g.GroupID, "group", doc, nil, g.SortedMembers(), ev, digest))
}

func groupFrom(doc []byte, members []string) (*a2a.Group, error) {
	var g a2a.Group
	if err := json.Unmarshal(doc, &g); err != nil {
		return nil, err
	}
	g.Members = make(map[string]bool, len(members))
	for _, m := range members {
		g.Members[m] = true
	}
	return &g, nil
}

// GetGroup implements a2a.Store.
func (s *Store) GetGroup(ctx context.Context, id string) (*a2a.Group, error) {
	var doc []byte
	var members []string
	err := s.db.QueryRow(ctx, `SELECT doc, members FROM `+s.objects+` WHERE id = $1 AND kind = 'group'`, id).Scan(&doc, &members)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, a2a.ErrNotFound("group")
	}
	if err != nil {
		return nil, relayErr(err)
	}
	g, err := groupFrom(doc, members)
	if err != nil {
		return nil, relayErr(err)
	}
	return g, nil
}

// UpdateGroup implements a2a.Store.
func (s *Store) UpdateGroup(ctx context.Context, id string, fn a2a.GroupUpdate) (*a2a.Group, error) {
	var out *a2a.Group
	err := s.update(ctx, id, "group", func(doc, _ []byte, members []string, h a2a.ChainHead) ([]byte, []byte, []string, json.RawMessage, string, error) {
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
		return nd, nil, next.SortedMembers(), ev, digest, err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Events implements a2a.Store.
func (s *Store) Events(ctx context.Context, id string) ([]json.RawMessage, error) {
	var out []json.RawMessage
	err := s.read(ctx, func(ctx context.Context, db Querier) error {
		out = nil
		rows, err := db.Query(ctx, `SELECT event FROM `+s.eventsT+` WHERE id = $1 ORDER BY n`, id)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var ev []byte
			if err := rows.Scan(&ev); err != nil {
				return err
			}
			out = append(out, ev)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, relayErr(err)
	}
	if len(out) == 0 {
		return nil, a2a.ErrNotFound("object")
	}
	return out, nil
}
