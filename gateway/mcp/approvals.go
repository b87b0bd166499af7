package mcp

import (
	"context"
	"io"
	"net/http"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/contracts"

	"github.com/talosgo/talos/gateway/internal/httpx"
)

// The approval queue's admin routes ([Gateway.RegisterApprovals]) and
// their capability tool.
const (
	ApprovalsPattern = "GET /v1/admin/approvals"
	ApprovalPattern  = "POST /v1/admin/approvals/{id}"
	ApprovalsTool    = "admin.approvals"
)

// List limits of the admin routes (the admin API contract's).
const (
	DefaultListLimit = httpx.DefaultPageLimit
	MaxListLimit     = httpx.MaxPageLimit
	maxDecisionBody  = 8 << 10
)

// An AdminWrap admits an admin request for (tool, action) — action
// "read" for GET, "write" otherwise — before next runs; it answers every
// refusal itself (401/403 in the contract error body).
type AdminWrap func(tool, action string, next http.HandlerFunc) http.HandlerFunc

// RegisterApprovals mounts the approval queue of a governed gateway:
//
//	GET  /v1/admin/approvals?limit=&cursor=   (admin.approvals read)
//	     → 200 {"items":[Approval...], "next_cursor"?}
//	POST /v1/admin/approvals/{id}             (admin.approvals write)
//	     {"decision":"approve"|"deny", "reason"?} → 200 Approval
//
// The decision is recorded as the trace's supervisor_decision with the
// reason as rationale and decidedBy(ctx) (the acting admin) in its meta;
// an approved call is then executed. Bodies are strict (unknown or
// mis-cased fields refused); a trace that is not pending is
// STATE_INVALID_TRANSITION (409). Without Config.Governance the routes
// answer NOT_FOUND.
func (g *Gateway) RegisterApprovals(mux *http.ServeMux, wrap AdminWrap, decidedBy func(context.Context) string) {
	mux.HandleFunc(ApprovalsPattern, wrap(ApprovalsTool, "read", g.HandleApprovals))
	mux.HandleFunc(ApprovalPattern, wrap(ApprovalsTool, "write", g.DecisionHandler(decidedBy)))
}

// HandleApprovals serves GET /v1/admin/approvals (see RegisterApprovals),
// for servers that mount the routes themselves behind their admin check.
func (g *Gateway) HandleApprovals(w http.ResponseWriter, r *http.Request) { g.handleApprovals(w, r) }

// DecisionHandler serves POST /v1/admin/approvals/{id} (see
// RegisterApprovals).
func (g *Gateway) DecisionHandler(decidedBy func(context.Context) string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { g.handleDecision(w, r, decidedBy) }
}

// ParseListPage reads ?limit= (1..MaxListLimit, default DefaultListLimit)
// and ?cursor= (the opaque next_cursor of the previous page, [Cursor]), as
// every list of the gateway packages does. Errors are TALOS_INVALID_INPUT.
func ParseListPage(r *http.Request) (after string, limit int, err error) {
	after, _, limit, err = httpx.ParsePage(r.URL.Query(), maxListKey)
	return after, limit, err
}

// maxListKey bounds the key a list cursor holds.
const maxListKey = 256

// Cursor is the opaque cursor of a page ending at key.
func Cursor(key string) string { return httpx.PageCursor(key) }

type approvalPage struct {
	Items      []Approval `json:"items"`
	NextCursor string     `json:"next_cursor,omitempty"`
}

func (g *Gateway) handleApprovals(w http.ResponseWriter, r *http.Request) {
	after, limit, err := ParseListPage(r)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	if after != "" && !ValidTraceID(after) {
		talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "cursor is not a cursor of this list"))
		return
	}
	items, more, err := g.Approvals(r.Context(), after, limit)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	page := approvalPage{Items: items}
	if more && len(items) > 0 {
		page.NextCursor = Cursor(items[len(items)-1].ID)
	}
	w.Header().Set("Cache-Control", "no-store")
	httpx.WriteJSON(w, http.StatusOK, page)
}

// DecisionRequest is the body of POST /v1/admin/approvals/{id}.
type DecisionRequest struct {
	Decision string `json:"decision"` // "approve" or "deny"
	Reason   string `json:"reason,omitempty"`
}

func (g *Gateway) handleDecision(w http.ResponseWriter, r *http.Request, decidedBy func(context.Context) string) {
	id := r.PathValue("id")
	if !ValidTraceID(id) {
		talos.WriteError(w, r, contracts.New(contracts.CodeNotFound, "no such approval"))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxDecisionBody))
	if err != nil {
		talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "request body too large or unreadable"))
		return
	}
	var req DecisionRequest
	if err := contracts.UnmarshalFieldsKnown(body, &req); err != nil {
		talos.WriteError(w, r, err)
		return
	}
	if req.Decision != "approve" && req.Decision != "deny" {
		talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, `decision must be "approve" or "deny"`))
		return
	}
	by := "admin"
	if decidedBy != nil {
		if s := decidedBy(r.Context()); s != "" {
			by = s
		}
	}
	a, err := g.Decide(r.Context(), id, req.Decision == "approve", req.Reason, by)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	httpx.WriteJSON(w, http.StatusOK, a)
}
