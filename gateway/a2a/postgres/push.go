package postgres

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/a2a"
)

var _ a2a.PushConfigStore = (*TaskStore)(nil)

// PutPushConfig implements a2a.PushConfigStore: in one transaction that
// locks the task's configs (an advisory lock on the task id), so the bound
// holds across replicas. Config.DB must be a [TxDB]. Configurations
// (receiver tokens and credentials included) are stored as given: protect
// the table as you protect the tasks.
func (s *TaskStore) PutPushConfig(ctx context.Context, c a2a.PushConfig, max int) error {
	db, ok := s.db.(TxDB)
	if !ok {
		return contracts.New(contracts.CodeInternal, "a2a/postgres: push configs need a DB that begins transactions")
	}
	doc, err := json.Marshal(c)
	if err != nil {
		return contracts.Wrap(contracts.CodeInvalidInput, "a2a/postgres: push config unencodable", err)
	}
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, s.table+"_push:"+c.TaskID); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE `+s.table+`_push SET doc = $3 WHERE task_id = $1 AND id = $2`, c.TaskID, c.ID, doc)
		if err != nil || tag.RowsAffected() == 1 {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM `+s.table+`_push WHERE task_id = $1`, c.TaskID).Scan(&n); err != nil {
			return err
		}
		if n >= max {
			return contracts.New(contracts.CodeInvalidInput, "a2a: too many push configs for the task")
		}
		_, err = tx.Exec(ctx, `INSERT INTO `+s.table+`_push (task_id, id, doc) VALUES ($1, $2, $3)`, c.TaskID, c.ID, doc)
		return err
	})
	var ce *contracts.Error
	if err != nil && !errors.As(err, &ce) {
		return dbErr(err)
	}
	return err
}

// ListPushConfigs implements a2a.PushConfigStore.
func (s *TaskStore) ListPushConfigs(ctx context.Context, taskID string) ([]a2a.PushConfig, error) {
	rows, err := s.db.Query(ctx, `SELECT doc FROM `+s.table+`_push WHERE task_id = $1 ORDER BY seq`, taskID)
	if err != nil {
		return nil, dbErr(err)
	}
	defer rows.Close()
	out := []a2a.PushConfig{}
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return nil, dbErr(err)
		}
		var c a2a.PushConfig
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, contracts.Wrap(contracts.CodeInternal, "a2a/postgres: stored push config unreadable", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, dbErr(err)
	}
	return out, nil
}

// DeletePushConfig implements a2a.PushConfigStore.
func (s *TaskStore) DeletePushConfig(ctx context.Context, taskID, id string) (bool, error) {
	tag, err := s.db.Exec(ctx, `DELETE FROM `+s.table+`_push WHERE task_id = $1 AND id = $2`, taskID, id)
	if err != nil {
		return false, dbErr(err)
	}
	return tag.RowsAffected() == 1, nil
}
