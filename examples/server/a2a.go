package main

import (
	"context"
	"net/http"
	"time"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/gateway/a2a"
	a2apg "github.com/talosgo/talos/gateway/a2a/postgres"
)

// opA2A is the audit surface and rate-limit surface of the A2A relay.
const opA2A = "a2a"

// a2aService is the server's A2A wiring: the relay of gateway/a2a
// (sessions, frames, groups) on the memory store, or on PostgreSQL when
// the server has a database.
type a2aService struct {
	store a2a.Store
	relay *a2a.Relay
	// now is the relay's clock (tests move it).
	now func() time.Time
}

// newA2AService builds the A2A surface. The relay's routes run through
// the core's Kernel middleware (c.a2aRoutes, built by buildRoutes before
// mount), which verifies the attestation, rate-limits per principal
// (surface "a2a") and appends one audit event per request; the actor is
// the principal's registration.
func newA2AService(ctx context.Context, c *core, s *Server) (*a2aService, error) {
	a := &a2aService{now: time.Now}
	if s.db != nil {
		ps, err := a2apg.NewStore(a2apg.Config{DB: s.db.Primary(), TablePrefix: s.cfg.tablePrefix})
		if err != nil {
			return nil, err
		}
		if err := ps.Migrate(ctx); err != nil {
			return nil, err
		}
		a.store = ps
	} else {
		a.store = a2a.NewMemoryStore()
	}
	relay, err := a2a.NewRelay(a2a.RelayConfig{
		Store: a.store,
		Wrap:  func(h http.Handler) http.Handler { return c.a2aRoutes.Wrap(h) },
		Principal: func(r *http.Request) (string, bool) {
			p, ok := c.principalOf(r.Context())
			if !ok {
				return "", false
			}
			return p.DID, true
		},
		Now: func() time.Time { return a.now() },
	})
	if err != nil {
		return nil, err
	}
	a.relay = relay
	return a, nil
}

// a2aAttestedRoutes are the A2A routes of the server's route table.
func a2aAttestedRoutes() []talos.Route {
	return a2a.RelayTalosRoutes()
}

// mountA2A serves the A2A routes.
func (c *core) mountA2A(mux *http.ServeMux, a *a2aService) {
	a.relay.Mount(mux)
}

// encodeFrameCursor is the relay's frame list cursor of position pos.
func encodeFrameCursor(pos uint64) string { return a2a.EncodeFrameCursor(pos) }
