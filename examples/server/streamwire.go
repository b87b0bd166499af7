package main

import (
	"context"
	"net/http"
	"sync/atomic"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/gateway/admin"
	"github.com/talosgo/talos/gateway/auditapi"
)

// mountAuditStream serves the live audit stream, GET /v1/audit/stream
// (Server-Sent Events, admin.audit read), over the shared audit store, so
// events appended on any replica appear: this replica's at once (its
// appends wake the stream), the others' within the poll interval. Streams end when shutdown begins
// (Lifecycle.Draining), so they do not hold up the drain.
func (s *Server) mountAuditStream(mux *http.ServeMux) {
	st, err := auditapi.NewStream(auditapi.StreamConfig{
		Log: s.core.log, Store: s.core.logStore, Draining: s.life.Draining, PollInterval: s.cfg.streamPoll,
	})
	if err != nil { // only without a log, which New never leaves
		s.log.Error("audit stream not served", "err", err)
		return
	}
	// This replica's appends wake the stream at once; other replicas'
	// arrive at the next poll.
	s.core.logAppends.notify(st.Wake)
	s.OnShutdown("audit-stream", func(context.Context) error { st.Close(); return nil })
	st.Register(mux, s.requireAdmin(admin.ToolAudit))
}

// appendWaker observes the audit log's appends on this replica: the Log
// appends through store(), and after every durable append it calls the
// function set by notify (the live audit stream's Wake).
type appendWaker struct {
	st audit.Store
	fn atomic.Pointer[func()]
}

func newAppendWaker(st audit.Store) *appendWaker { return &appendWaker{st: st} }

// notify sets the function called after every durable append.
func (a *appendWaker) notify(fn func()) { a.fn.Store(&fn) }

// store returns the store the Log appends through: the underlying store,
// with its audit.Querier when it has one (the Log's queries use it).
func (a *appendWaker) store() audit.Store {
	w := &wakingStore{Store: a.st, a: a}
	if q, ok := a.st.(audit.Querier); ok {
		return wakingQuerierStore{w, q}
	}
	return w
}

// wakingStore is an audit.Store that calls its appendWaker after every
// successful Append.
type wakingStore struct {
	audit.Store
	a *appendWaker
}

func (s *wakingStore) Append(ctx context.Context, entries [][]byte, build audit.BuildFunc) (uint64, error) {
	first, err := s.Store.Append(ctx, entries, build)
	if err == nil {
		if fn := s.a.fn.Load(); fn != nil {
			(*fn)()
		}
	}
	return first, err
}

// wakingQuerierStore is a wakingStore over a store with an audit.Querier.
type wakingQuerierStore struct {
	*wakingStore
	audit.Querier
}
