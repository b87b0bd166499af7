package main

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/talosgo/talos/audit"
)

// Audit privacy model, one rule: checkpoints, hash tiles and proofs are
// public (anyone can check the log's growth and the inclusion of a hash it
// holds); entry bytes — entry bundles under /tlog/tile/entries/, entries,
// events, evidence bundles and the entry_b64u of inclusion proofs — go only to
// callers allowed to read audit events (the admin credential, until admin
// identities exist), unless the operator publishes the log
// (TALOS_AUDIT_PUBLIC).

// mayReadEntries reports whether r may read audit entry bytes.
func (c *core) mayReadEntries(r *http.Request) bool {
	return c.auditPublic || c.isAuditReader != nil && c.isAuditReader(r)
}

// checkpointCache holds the newest signed checkpoint GET /v1/audit/checkpoint
// serves. A checkpoint for a size the cache already holds is served from
// memory; a grown log is signed once per new size (audit.Log.CheckpointAt,
// which writes nothing): anonymous calls never write to disk. Publication
// (the store's checkpoint, /tlog/checkpoint) is the publisher's job.
type checkpointCache struct {
	mu sync.Mutex // guards cp, ok
	cp audit.Checkpoint
	ok bool
}

func (cc *checkpointCache) get(size uint64) (audit.Checkpoint, bool) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.cp, cc.ok && cc.cp.Size == size
}

func (cc *checkpointCache) put(cp audit.Checkpoint) {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if !cc.ok || cp.Size >= cc.cp.Size {
		cc.cp, cc.ok = cp, true
	}
}

// currentCheckpoint returns a signed checkpoint of the log's current size
// without writing to the store.
func (c *core) currentCheckpoint(ctx context.Context) (audit.Checkpoint, error) {
	size, err := c.logStore.Size(ctx)
	if err != nil {
		return audit.Checkpoint{}, err
	}
	if cp, ok := c.cpCache.get(size); ok {
		return cp, nil
	}
	cp, err := c.log.CheckpointAt(ctx, size)
	if err != nil {
		return audit.Checkpoint{}, err
	}
	c.cpCache.put(cp)
	return cp, nil
}

// publishCheckpoint signs and records a checkpoint of the current tree in
// the store (for the file store: /tlog/checkpoint, after the tiles it
// covers) when the log grew since the last one.
func (c *core) publishCheckpoint(ctx context.Context) error {
	cp, err := c.log.Checkpoint(ctx)
	if err != nil {
		return err
	}
	c.cpCache.put(cp)
	return nil
}

// checkpointPublisher publishes a checkpoint every interval until ctx ends
// (the shutdown hook publishes the last one). A failed publication is
// retried at the next tick.
func (c *core) checkpointPublisher(interval time.Duration, onErr func(error)) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
				if err := c.publishCheckpoint(ctx); err != nil && ctx.Err() == nil {
					onErr(err)
				}
			}
		}
	}
}
