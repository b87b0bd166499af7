package main

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/contracts"

	mcpgw "github.com/talosgo/talos/gateway/mcp"
	mcppg "github.com/talosgo/talos/gateway/mcp/postgres"
)

// Governed writes of the MCP gateway (gateway/mcp's TGA runtime, issue 17
// part 3): with TALOS_MCP_SUPERVISOR set, every call to a write tool is an
// action_request, a supervisor_decision, a tool_call and a tool_effect,
// each persisted (PostgreSQL <prefix>mcp_tga_traces/_entries, or
// DataDir/tga/) before the next step; after a crash, New recovers the
// interrupted traces (gateway/mcp.Gateway.Recover). Supervisors:
//
//	approve  every write is approved by policy (the chain is still recorded)
//	human    every write waits for an admin: GET /v1/admin/approvals,
//	         POST /v1/admin/approvals/{id} {"decision":"approve"|"deny","reason"}
//	         (tool admin.approvals), for TALOS_MCP_APPROVAL_TIMEOUT, then denied

// Supervisor settings (TALOS_MCP_SUPERVISOR).
const (
	supervisorOff     = ""
	supervisorApprove = "approve"
	supervisorHuman   = "human"
	tgaDirName        = "tga"
)

// parseSupervisor reads TALOS_MCP_SUPERVISOR.
func parseSupervisor(dst *string, v string) error {
	switch v {
	case supervisorOff, "off", "none":
		*dst = supervisorOff
	case supervisorApprove, supervisorHuman:
		*dst = v
	default:
		return errors.New(`want "approve", "human" or "off"`)
	}
	return nil
}

// parseApprovalTimeout reads TALOS_MCP_APPROVAL_TIMEOUT: 1s to 24h.
func parseApprovalTimeout(dst *time.Duration, v string) error {
	d, err := time.ParseDuration(v)
	if err != nil || d < time.Second || d > 24*time.Hour {
		return errors.New("not a duration between 1s and 24h")
	}
	*dst = d
	return nil
}

// governance returns the gateway's governed-write configuration, nil when
// TALOS_MCP_SUPERVISOR is off. The trace store is PostgreSQL when the
// server has it, else DataDir/tga.
func (c *core) governanceConfig(ctx context.Context, s *Server) (*mcpgw.GovernanceConfig, error) {
	if c.governance != nil {
		return c.governance, nil
	}
	var sup mcpgw.Supervisor
	switch s.cfg.MCPSupervisor {
	case supervisorOff:
		return nil, nil
	case supervisorApprove:
		sup = mcpgw.SupervisorFunc(func(context.Context, mcpgw.ActionRequest) (mcpgw.Verdict, error) {
			return mcpgw.Verdict{Decision: mcpgw.DecisionApprove, Rationale: "approved by policy (TALOS_MCP_SUPERVISOR=approve)"}, nil
		})
	case supervisorHuman:
		sup = mcpgw.HumanApproval
	default:
		return nil, errors.New("config: unknown MCP supervisor")
	}
	var store mcpgw.TraceStore
	if s.db != nil {
		ps, err := mcppg.NewTraceStore(s.db.Primary(), s.cfg.tablePrefix)
		if err != nil {
			return nil, err
		}
		if err := ps.Migrate(ctx); err != nil {
			return nil, err
		}
		store = ps
	} else {
		fs, err := mcpgw.OpenFileTraceStore(filepath.Join(s.cfg.DataDir, tgaDirName))
		if err != nil {
			return nil, err
		}
		store = fs
	}
	gc := &mcpgw.GovernanceConfig{Store: store, Supervisor: sup, ApprovalTimeout: s.cfg.MCPApprovalTimeout}
	if v := os.Getenv(envTGABlockAfter); v != "" && !s.cfg.Production {
		// The crash test's hook (never in production mode): after step
		// n is persisted (0: after the dispatch), log and block the call
		// for good, so that the test can kill the process there.
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 || n > 4 {
			return nil, errors.New("config: " + envTGABlockAfter + " must be 0 to 4")
		}
		log := s.log
		gc.AfterPersist = func(id string, seq int64) {
			if seq == n {
				log.Warn("tga test hook: blocking after step", "trace_id", id, "seq", seq)
				select {}
			}
		}
	}
	c.governance = gc
	return gc, nil
}

// envTGABlockAfter is the crash test's hook (TestGovernedCrashServer): not
// a setting, ignored in production mode.
const envTGABlockAfter = "TALOS_TEST_TGA_BLOCK_AFTER"

// recoverGoverned finishes the governed writes a crash interrupted and
// logs what it did (trace ids and recovery actions, never arguments).
func (c *core) recoverGoverned(ctx context.Context, s *Server, g *mcpgw.Gateway) error {
	if c.governance == nil {
		return nil
	}
	rec, err := g.Recover(ctx)
	for _, r := range rec {
		if r.Err != nil {
			s.log.Warn("governed write: recovery incomplete", "trace_id", r.TraceID, "action", r.Action, "error", r.Err.Error())
			continue
		}
		s.log.Info("governed write recovered", "trace_id", r.TraceID, "action", r.Action, "state", r.State)
		if aerr := c.auditRecovered(ctx, r); aerr != nil {
			s.log.Error("governed write: auditing the recovery failed", "trace_id", r.TraceID, "error", aerr.Error())
		}
	}
	return err
}

// auditRecovered records what recovery did to a trace that reached an
// end (a crash may have cut the original call off before the Kernel
// audited it): an event of the MCP gateway's surface for the trace's
// principal, tool and action, decision_reason the recovery action, and
// the outcome of its state (COMPLETED 200, DENIED 403, FAILED 502).
func (c *core) auditRecovered(ctx context.Context, r mcpgw.Recovered) error {
	status := 0
	switch r.State {
	case audit.StateCompleted:
		status = http.StatusOK
	case audit.StateDenied:
		status = http.StatusForbidden
	case audit.StateFailed:
		status = http.StatusBadGateway
	default:
		return nil // still pending: nothing ran
	}
	// The principal's team now (a deleted registration: "unregistered").
	team := "unregistered"
	if p, err := c.principals.Lookup(ctx, r.Principal); err == nil && p != nil && p.TeamID != "" {
		team = p.TeamID
	}
	ev := c.events.DraftEvent(http.MethodPost, netip.Addr{}, audit.Decision{
		RequestID: contracts.NewUUIDv7(), SurfaceID: opMCPGateway, TemplatePath: mcpgw.TemplatePath, Status: status,
		Principal: audit.SignedPrincipal(r.Principal, team, r.Principal),
		Meta:      map[string]any{"tool": r.Upstream, "action": r.Tool, "decision_reason": "TGA_RECOVERY_" + r.Action},
	})
	_, err := c.log.Append(ctx, ev) // validates and seals the draft
	return err
}
