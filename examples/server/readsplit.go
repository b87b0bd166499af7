package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"

	"github.com/talosgo/talos/gateway/pgsplit"
	"github.com/talosgo/talos/identity"
)

// Reads that scale (TALOS_POSTGRES_REPLICA_URL): the listing routes read
// the PostgreSQL replica, with read-your-writes for the caller that wrote.
//
// A caller is its credential: the SHA-256 of the request's Authorization
// header (an admin session's bearer token: one caller for its lifetime), or
// of the attestation's X-Talos-Key-ID (a signing admin's key: one caller for
// every request it signs); a digest only, never logged. Naming a caller is
// not authentication: a mark only ever sends reads to a fresher copy, so a
// wrong name costs freshness nobody lost. After a successful (2xx)
// mutating request (anything but GET, HEAD and OPTIONS) on the paths of the
// listings (the admin, RBAC, budget and config edits; not agents' calls) the
// split records the primary's WAL position for that caller
// (pgsplit.DB.Wrote); refused requests record nothing, so unauthenticated
// traffic costs no write on the primary. The caller's listings go to the
// replica only once the replica has replayed that position, and to the
// primary until then. The marks are also kept in <prefix>read_marks on the
// primary (pgsplit.DB.ShareMarks), so this holds when the write and the
// read are served by different server replicas.
//
// Only the GET requests of replicaReadPrefixes may read the replica at all
// (pgsplit.WithReplicaReads): the admin lists (principals, roles, bindings,
// budget definitions, identities, A2A sessions and groups) and stats, audit
// event searches (GET /v1/audit/events), the config document lists and
// versions. The live audit stream is not among them: it polls the log's
// size and reads entries by index on the primary, and a reconnecting
// client's cursor names an event the replica may not have yet. The
// stores read the primary for everything else, and always for decisions:
// admin identity and session lookups, RBAC and budget state outside those
// routes, revocations, nonces, relay membership and task reads.

// replicaReadPrefixes are the path prefixes whose GET requests may read the
// replica.
var replicaReadPrefixes = []string{
	"/v1/admin/", "/v1/audit/events", "/v1/config",
	"/v1/principals", "/v1/rbac/", "/v1/budgets",
}

// readMarksTable holds the callers' write marks (pgsplit.DB.ShareMarks).
const readMarksTable = "read_marks"

// setupReadSplit shares the callers' write marks through the primary, so
// that read-your-writes holds whichever server replica serves the read.
func (s *Server) setupReadSplit(ctx context.Context) error {
	if s.db == nil || s.db.Replica() == nil {
		return nil
	}
	if err := s.db.ShareMarks(ctx, s.cfg.tablePrefix+readMarksTable); err != nil {
		return fmt.Errorf("postgres: the read-your-writes marks table: %w", err)
	}
	return nil
}

// withReadSplit names the caller and marks listings for the read split; it
// records the caller's writes after mutating requests. Without a replica it
// is next itself.
func (s *Server) withReadSplit(next http.Handler) http.Handler {
	if s.db == nil || s.db.Replica() == nil {
		return next
	}
	db := s.db
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if caller := readCaller(r); caller != "" {
			ctx = pgsplit.WithCaller(ctx, caller)
		}
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			if replicaListing(r.URL.Path) {
				ctx = pgsplit.WithReplicaReads(ctx)
			}
			next.ServeHTTP(w, r.WithContext(ctx))
		case http.MethodOptions:
			next.ServeHTTP(w, r.WithContext(ctx))
		default:
			if !replicaListing(r.URL.Path) {
				// Not an edit of what the listings show (agents' calls,
				// relay traffic): no mark, no write on the primary.
				next.ServeHTTP(w, r.WithContext(ctx))
				return
			}
			sw := &statusWriter{ResponseWriter: w}
			next.ServeHTTP(sw, r.WithContext(ctx))
			if sw.status >= 300 {
				// Refused or failed (an unauthenticated request among
				// them): nothing was written, and a request nobody
				// authenticated must not cost a write on the primary.
				return
			}
			// After the handler: its writes have committed. A failure
			// leaves the caller reading the primary (pgsplit records an
			// unknown position).
			if err := db.Wrote(context.WithoutCancel(ctx)); err != nil {
				s.log.Warn("read split: the primary's WAL position after a write is unknown; the caller reads the primary", "err", err)
			}
		}
	})
}

func replicaListing(path string) bool {
	for _, p := range replicaReadPrefixes {
		if strings.HasPrefix(path, p) {
			return true
		}
	}
	return false
}

// readSplit adapts db.ReadIfAllowed to a store's Config.Read, whose
// Querier Q the split's connections (*pgxpool.Pool, *pgxpool.Conn)
// implement.
func readSplit[Q any](db *pgsplit.DB) func(ctx context.Context, fn func(ctx context.Context, q Q) error) error {
	return func(ctx context.Context, fn func(ctx context.Context, q Q) error) error {
		return db.ReadIfAllowed(ctx, func(ctx context.Context, q pgsplit.Querier) error {
			sq, ok := q.(Q)
			if !ok {
				return fmt.Errorf("read split: %T is not the store's querier", q)
			}
			return fn(ctx, sq)
		})
	}
}

// readCaller names the caller of r for read-your-writes: its bearer
// credential, else its attestation key id; "" when it has neither.
func readCaller(r *http.Request) string {
	name, v := "authz:", r.Header.Get("Authorization")
	if v == "" {
		name, v = "key:", r.Header.Get(identity.HeaderKeyID)
	}
	if v == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(v))
	return name + hex.EncodeToString(sum[:16])
}

// statusWriter records the status a handler answered.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
