package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/internal/httpx"
)

// Page sizes of every list.
const (
	DefaultPageLimit = httpx.DefaultPageLimit
	MaxPageLimit     = httpx.MaxPageLimit
)

// maxCursorKey bounds the key a cursor holds.
const maxCursorKey = 512

// A page is a parsed ?limit=&cursor=: items strictly after the key After.
type page struct {
	limit int
	after string
	has   bool
}

// parsePage reads ?limit= and ?cursor= (httpx.ParsePage) and refuses any
// other query parameter than allowed, each at most once (onlyQuery).
func parsePage(r *http.Request, allowed ...string) (page, error) {
	after, has, limit, err := httpx.ParsePage(r.URL.Query(), maxCursorKey)
	if err == nil {
		err = onlyQuery(r, allowed...)
	}
	return page{limit: limit, after: after, has: has}, err
}

// A List is the body of every paginated list: the items and, unless this
// is the last page, the cursor of the next.
type List[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// paginate returns the page of items (sorted here by key) after p.after.
func paginate[T any](p page, items []T, key func(T) string) List[T] {
	sort.SliceStable(items, func(i, j int) bool { return key(items[i]) < key(items[j]) })
	start := 0
	if p.has {
		start = sort.Search(len(items), func(i int) bool { return key(items[i]) > p.after })
	}
	out := List[T]{Items: []T{}}
	end := min(start+p.limit, len(items))
	out.Items = append(out.Items, items[start:end]...)
	if end < len(items) && end > start {
		out.NextCursor = httpx.PageCursor(key(items[end-1]))
	}
	return out
}

func writePage[T any](w http.ResponseWriter, p page, items []T, key func(T) string) {
	httpx.WriteJSON(w, http.StatusOK, paginate(p, items, key))
}

// docsOf returns the stored documents of kind, ordered by id.
func (h *Handler) docsOf(ctx context.Context, kind string) ([]Doc, error) {
	all, err := h.cfg.Store.All(ctx)
	if err != nil {
		return nil, contracts.Wrap(contracts.CodeInternal, "admin state unavailable", err).WithRetryable(true)
	}
	var out []Doc
	for _, d := range all {
		if d.Kind == kind {
			out = append(out, d)
		}
	}
	return out, nil
}

// onlyQuery refuses query parameters other than the page's and allowed.
func onlyQuery(r *http.Request, allowed ...string) error {
	for k, v := range r.URL.Query() {
		if k == "limit" || k == "cursor" {
			continue
		}
		ok := false
		for _, a := range allowed {
			ok = ok || a == k
		}
		if !ok || len(v) != 1 || len(v[0]) > 256 {
			return contracts.New(contracts.CodeInvalidInput, "unknown or repeated query parameter "+strconv.Quote(k))
		}
	}
	return nil
}

func (h *Handler) handleListPrincipals(w http.ResponseWriter, r *http.Request) {
	p, err := parsePage(r, "team")
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	docs, err := h.docsOf(r.Context(), KindPrincipal)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	team := r.URL.Query().Get("team")
	items := []*Principal{}
	for _, d := range docs {
		pr, err := parsePrincipal(d.Doc)
		if err != nil {
			talos.WriteError(w, r, contracts.New(contracts.CodeInternal, "principal registry holds a bad record"))
			return
		}
		if team == "" || pr.TeamID == team {
			items = append(items, pr)
		}
	}
	writePage(w, p, items, func(pr *Principal) string { return pr.DID })
}

// RoleView is a role as listed: its id and permissions.
type RoleView struct {
	ID          string   `json:"id"`
	Permissions []string `json:"permissions"`
}

func (h *Handler) roleViews() []RoleView {
	h.policy.mu.Lock()
	defer h.policy.mu.Unlock()
	out := make([]RoleView, 0, len(h.policy.roles))
	for id, ro := range h.policy.roles {
		out = append(out, RoleView{ID: id, Permissions: append([]string{}, ro.Permissions...)})
	}
	return out
}

// BindingView is a binding as listed.
type BindingView struct {
	ID        string           `json:"id"`
	Principal string           `json:"principal_id"`
	Role      string           `json:"role_id"`
	Scope     capability.Scope `json:"scope"`
}

func (h *Handler) bindingViews() []BindingView {
	h.policy.mu.Lock()
	defer h.policy.mu.Unlock()
	out := make([]BindingView, 0, len(h.policy.bindings))
	for id, b := range h.policy.bindings {
		out = append(out, BindingView{ID: id, Principal: b.Principal, Role: b.Role, Scope: b.Scope})
	}
	return out
}

func (h *Handler) handleListRoles(w http.ResponseWriter, r *http.Request) {
	p, err := parsePage(r)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	writePage(w, p, h.roleViews(), func(v RoleView) string { return v.ID })
}

func (h *Handler) handleGetRole(w http.ResponseWriter, r *http.Request) {
	for _, v := range h.roleViews() {
		if v.ID == r.PathValue("id") {
			httpx.WriteJSON(w, http.StatusOK, v)
			return
		}
	}
	talos.WriteError(w, r, contracts.New(contracts.CodeNotFound, "no such role"))
}

func (h *Handler) handleListBindings(w http.ResponseWriter, r *http.Request) {
	p, err := parsePage(r, "principal_id", "role_id")
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	q := r.URL.Query()
	items := []BindingView{}
	for _, b := range h.bindingViews() {
		if (q.Get("principal_id") == "" || b.Principal == q.Get("principal_id")) && (q.Get("role_id") == "" || b.Role == q.Get("role_id")) {
			items = append(items, b)
		}
	}
	writePage(w, p, items, func(v BindingView) string { return v.ID })
}

func (h *Handler) handleGetBinding(w http.ResponseWriter, r *http.Request) {
	for _, v := range h.bindingViews() {
		if v.ID == r.PathValue("id") {
			httpx.WriteJSON(w, http.StatusOK, v)
			return
		}
	}
	talos.WriteError(w, r, contracts.New(contracts.CodeNotFound, "no such binding"))
}

// KindCapability is the document kind of an issued capability's record
// (never the token); KindRevocation of a revocation.
const (
	KindCapability = "capability"
	KindRevocation = "revocation"
)

// An IssuedCapability is the record POST /v1/capabilities keeps of a
// token it issued: everything but the token (and its signature).
type IssuedCapability struct {
	CapabilityHash string             `json:"capability_hash"`
	Subject        string             `json:"subject"`
	Issuer         string             `json:"issuer"`
	Audience       string             `json:"audience"`
	Grants         []capability.Grant `json:"grants"`
	ReadOnly       bool               `json:"read_only"`
	IssuedAt       time.Time          `json:"issued_at"`
	ExpiresAt      time.Time          `json:"expires_at"`
	Revoked        bool               `json:"revoked"`
	RevokedAt      *time.Time         `json:"revoked_at,omitempty"`
	// nonce is kept in the stored document so that a revocation by nonce
	// marks the record; it is not served.
	nonce string
}

// storedCapability is the stored form of an IssuedCapability.
type storedCapability struct {
	IssuedCapability
	Nonce string `json:"nonce,omitempty"`
}

func (h *Handler) capabilities(ctx context.Context) ([]IssuedCapability, error) {
	docs, err := h.docsOf(ctx, KindCapability)
	if err != nil {
		return nil, err
	}
	out := make([]IssuedCapability, 0, len(docs))
	for _, d := range docs {
		var c storedCapability
		if err := json.Unmarshal(d.Doc, &c); err != nil {
			return nil, contracts.New(contracts.CodeInternal, "capability records hold a bad record")
		}
		c.IssuedCapability.nonce = c.Nonce
		out = append(out, c.IssuedCapability)
	}
	return out, nil
}

func (h *Handler) handleListCapabilities(w http.ResponseWriter, r *http.Request) {
	p, err := parsePage(r, "subject", "revoked")
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	q := r.URL.Query()
	revoked := q.Get("revoked")
	if revoked != "" && revoked != "true" && revoked != "false" {
		talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "revoked must be true or false"))
		return
	}
	all, err := h.capabilities(r.Context())
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	items := []IssuedCapability{}
	for _, c := range all {
		if (q.Get("subject") == "" || c.Subject == q.Get("subject")) && (revoked == "" || (revoked == "true") == c.Revoked) {
			items = append(items, c)
		}
	}
	writePage(w, p, items, func(c IssuedCapability) string { return c.CapabilityHash })
}

func (h *Handler) handleGetCapability(w http.ResponseWriter, r *http.Request) {
	hash := r.PathValue("hash")
	if !isHex64(hash) {
		talos.WriteError(w, r, contracts.New(contracts.CodeInvalidInput, "capability_hash must be 64 lowercase hex"))
		return
	}
	raw, ok, err := h.cfg.Store.Get(r.Context(), KindCapability, hash)
	if err != nil {
		talos.WriteError(w, r, contracts.Wrap(contracts.CodeInternal, "admin state unavailable", err).WithRetryable(true))
		return
	}
	if !ok {
		talos.WriteError(w, r, contracts.New(contracts.CodeNotFound, "no such issued capability"))
		return
	}
	var c storedCapability
	if err := json.Unmarshal(raw, &c); err != nil {
		talos.WriteError(w, r, contracts.New(contracts.CodeInternal, "capability records hold a bad record"))
		return
	}
	httpx.WriteJSON(w, http.StatusOK, c.IssuedCapability)
}

// A Revocation is a recorded POST /v1/capabilities/revocations.
type Revocation struct {
	CapabilityHash string    `json:"capability_hash,omitempty"`
	Nonce          string    `json:"nonce,omitempty"`
	RevokedAt      time.Time `json:"revoked_at"`
	RevokedBy      string    `json:"revoked_by"`
}

func (h *Handler) handleListRevocations(w http.ResponseWriter, r *http.Request) {
	p, err := parsePage(r)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	docs, err := h.docsOf(r.Context(), KindRevocation)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	type item struct {
		key string
		Revocation
	}
	items := make([]item, 0, len(docs))
	for _, d := range docs {
		var rv Revocation
		if err := json.Unmarshal(d.Doc, &rv); err != nil {
			talos.WriteError(w, r, contracts.New(contracts.CodeInternal, "revocation records hold a bad record"))
			return
		}
		items = append(items, item{d.ID, rv})
	}
	pg := paginate(p, items, func(i item) string { return i.key })
	out := List[Revocation]{Items: make([]Revocation, 0, len(pg.Items)), NextCursor: pg.NextCursor}
	for _, i := range pg.Items {
		out.Items = append(out.Items, i.Revocation)
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}

// BudgetView is a budget as listed, with its live usage.
type BudgetView struct {
	Scope        string `json:"scope"`
	LimitUSD     string `json:"limit_usd"`
	Mode         string `json:"mode"`
	Period       string `json:"period"`
	UsedUSD      string `json:"used_usd"`
	ReservedUSD  string `json:"reserved_usd"`
	RemainingUSD string `json:"remaining_usd"`
	// UsageKnown is false for a key budget whose principal is not
	// registered (its group, the team, is unknown): usage is then zero.
	UsageKnown bool `json:"usage_known"`
}

func (h *Handler) handleListBudgets(w http.ResponseWriter, r *http.Request) {
	p, err := parsePage(r)
	if err != nil {
		talos.WriteError(w, r, err)
		return
	}
	h.budgets.mu.RLock()
	scopes := make([]budget.Scope, 0, len(h.budgets.scopes))
	for _, s := range h.budgets.scopes {
		scopes = append(scopes, s)
	}
	h.budgets.mu.RUnlock()
	pg := paginate(p, scopes, func(s budget.Scope) string { return s.ID })
	out := List[BudgetView]{Items: make([]BudgetView, 0, len(pg.Items)), NextCursor: pg.NextCursor}
	for _, s := range pg.Items {
		v := BudgetView{Scope: s.ID, LimitUSD: budget.USD(s.Limit), Mode: s.Mode.String(), Period: s.Period.String(),
			UsedUSD: budget.USD(0), ReservedUSD: budget.USD(0), RemainingUSD: budget.USD(s.Limit)}
		group := s.ID
		if did, ok := strings.CutPrefix(s.ID, "key:"); ok {
			pr, err := h.principals.Lookup(r.Context(), did)
			if err != nil {
				talos.WriteError(w, r, err)
				return
			}
			group = ""
			if pr != nil {
				group = TeamScope(pr.TeamID)
			}
		}
		if group != "" {
			u, err := h.cfg.Budget.Usage(r.Context(), group, s)
			if err != nil && !errors.Is(err, budget.ErrUnknownGroup) {
				talos.WriteError(w, r, contracts.Wrap(contracts.CodeInternal, "budget store unavailable", err))
				return
			}
			if err == nil {
				v.UsedUSD, v.ReservedUSD, v.RemainingUSD = budget.USD(u.Spent), budget.USD(u.Reserved), budget.USD(u.Remaining)
			}
			v.UsageKnown = true
		}
		out.Items = append(out.Items, v)
	}
	httpx.WriteJSON(w, http.StatusOK, out)
}
