package admin

import (
	"strings"
	"sync"
	"time"

	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/contracts"
)

// Budgets holds the budgets configured per key (a principal's DID, scope
// "key:<did>") and per team ("team:<id>"); an unconfigured scope has no
// cap. Gateway calls reserve against both (see [Budgets.Reservation]).
type Budgets struct {
	mu     sync.RWMutex // guards scopes
	scopes map[string]budget.Scope
}

// Set adds or replaces the budget of s.ID.
func (t *Budgets) Set(s budget.Scope) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.scopes == nil {
		t.scopes = map[string]budget.Scope{}
	}
	t.scopes[s.ID] = s
}

// replace swaps every configured scope for scopes.
func (t *Budgets) replace(scopes map[string]budget.Scope) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.scopes = scopes
}

// Get returns the budget of scope id.
func (t *Budgets) Get(id string) (budget.Scope, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	s, ok := t.scopes[id]
	return s, ok
}

// Len returns the number of configured scopes.
func (t *Budgets) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.scopes)
}

// Reservation builds the reservation of amount micro-units for p's key and
// team budgets on surface, or nil when neither is configured. The group
// (what the reservations are counted under) is the team's scope.
func (t *Budgets) Reservation(p *Principal, amount int64, surface string) *budget.ReserveRequest {
	var scopes []budget.Scope
	if s, ok := t.Get(KeyScope(p.DID)); ok {
		scopes = append(scopes, s)
	}
	if s, ok := t.Get(TeamScope(p.TeamID)); ok {
		scopes = append(scopes, s)
	}
	if len(scopes) == 0 {
		return nil
	}
	return &budget.ReserveRequest{
		Scopes: scopes, Group: TeamScope(p.TeamID), Amount: amount,
		Meta: budget.Meta{KeyID: p.DID, TeamID: p.TeamID, Surface: surface},
	}
}

// KeyScope is the budget scope id of one agent's key.
func KeyScope(did string) string { return "key:" + did }

// TeamScope is the budget scope id of a team.
func TeamScope(team string) string { return "team:" + team }

// BudgetRequest is the body of PUT /v1/budgets/{scope} (and the stored
// document): a decimal USD limit, a mode (hard, warn, off) and a period.
type BudgetRequest struct {
	LimitUSD string `json:"limit_usd"`
	Mode     string `json:"mode"`
	Period   string `json:"period"`
}

// ParsePeriod reads "daily", "monthly" (also ""), "lifetime" or
// "rolling:<duration>" with a duration from one minute to 366 days.
func ParsePeriod(s string) (budget.Period, error) {
	switch s {
	case "", "monthly":
		return budget.Monthly(), nil
	case "daily":
		return budget.Daily(), nil
	case "lifetime":
		return budget.Lifetime(), nil
	}
	if w, ok := strings.CutPrefix(s, "rolling:"); ok {
		d, err := time.ParseDuration(w)
		if err == nil && d >= time.Minute && d <= 366*24*time.Hour {
			return budget.Rolling(d), nil
		}
	}
	return budget.Period{}, contracts.New(contracts.CodeInvalidInput, `period must be daily, monthly, lifetime or rolling:<duration>`)
}

// Scope builds the budget of scope id from req, validated.
func (req BudgetRequest) Scope(id string) (budget.Scope, error) {
	limit, err := budget.ParseUSD(req.LimitUSD)
	if err != nil {
		return budget.Scope{}, err
	}
	mode, err := budget.ParseMode(req.Mode)
	if err != nil {
		return budget.Scope{}, err
	}
	period, err := ParsePeriod(req.Period)
	if err != nil {
		return budget.Scope{}, err
	}
	s := budget.Scope{ID: id, Limit: limit, Mode: mode, Period: period}
	if err := s.Validate(); err != nil {
		return budget.Scope{}, err
	}
	return s, nil
}
