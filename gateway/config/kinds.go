package config

import (
	"time"

	"github.com/talosgo/talos/contracts"
)

// strictDecode decodes doc into v rejecting unknown and mis-cased fields,
// objects with two keys equal under case folding and trailing data
// (contracts.UnmarshalFieldsKnown).
func strictDecode(doc []byte, v any) error {
	if err := contracts.UnmarshalFieldsKnown(doc, v); err != nil {
		return contracts.Wrap(contracts.CodeSchemaValidationError, "document does not match its schema: "+err.Error(), err)
	}
	return nil
}

func schemaErr(msg string) error { return contracts.New(contracts.CodeSchemaValidationError, msg) }

// budgetDoc is contracts ai_gateway/budget.
type budgetDoc struct {
	ID        string   `json:"id"`
	ScopeType string   `json:"scope_type"`
	ScopeID   string   `json:"scope_id"`
	Period    string   `json:"period,omitempty"`
	MaxUSD    *float64 `json:"max_usd,omitempty"`
	UsedUSD   *float64 `json:"used_usd,omitempty"`
	ResetAt   string   `json:"reset_at,omitempty"`
}

// CheckBudget is the typed check of contract ai_gateway/budget documents:
// known fields only, id equal to the document name, scope_type team or key,
// a scope_id, period daily or monthly, non-negative amounts, an RFC 3339
// reset_at.
func CheckBudget(doc []byte, name string) error {
	var b budgetDoc
	if err := strictDecode(doc, &b); err != nil {
		return err
	}
	switch {
	case b.ID != name:
		return schemaErr("budget id must equal the document name")
	case b.ScopeType != "team" && b.ScopeType != "key":
		return schemaErr("budget scope_type must be team or key")
	case b.ScopeID == "":
		return schemaErr("budget scope_id is required")
	case b.Period != "" && b.Period != "daily" && b.Period != "monthly":
		return schemaErr("budget period must be daily or monthly")
	case b.MaxUSD != nil && *b.MaxUSD < 0, b.UsedUSD != nil && *b.UsedUSD < 0:
		return schemaErr("budget amounts must be non-negative")
	}
	if b.ResetAt != "" {
		if _, err := time.Parse(time.RFC3339, b.ResetAt); err != nil {
			return schemaErr("budget reset_at must be an RFC 3339 date-time")
		}
	}
	return nil
}

// policyDoc is contracts ai_gateway/routing_policy (unknown fields rejected,
// stricter than the contract schema).
type policyDoc struct {
	ID         string `json:"id"`
	Version    *int64 `json:"version"`
	Strategy   string `json:"strategy"`
	TimeoutMS  *int64 `json:"timeout_ms,omitempty"`
	RetriesDoc *struct {
		MaxAttempts       *int64   `json:"max_attempts,omitempty"`
		BackoffMS         *int64   `json:"backoff_ms,omitempty"`
		BackoffMultiplier *float64 `json:"backoff_multiplier,omitempty"`
	} `json:"retries,omitempty"`
	Cooldown *struct {
		FailureThreshold *int64 `json:"failure_threshold,omitempty"`
		WindowSeconds    *int64 `json:"window_seconds,omitempty"`
		CooldownSeconds  *int64 `json:"cooldown_seconds,omitempty"`
	} `json:"cooldown,omitempty"`
}

// CheckPolicy is the typed check of contract ai_gateway/routing_policy
// documents (stricter than the schema: unknown fields are refused).
func CheckPolicy(doc []byte, name string) error {
	var p policyDoc
	if err := strictDecode(doc, &p); err != nil {
		return err
	}
	atLeast := func(v *int64, min int64) bool { return v == nil || *v >= min }
	switch {
	case p.ID != name:
		return schemaErr("policy id must equal the document name")
	case p.Version == nil || *p.Version < 1:
		return schemaErr("policy version must be an integer >= 1")
	case p.Strategy != "weighted_hash" && p.Strategy != "round_robin" && p.Strategy != "least_latency":
		return schemaErr("policy strategy must be weighted_hash, round_robin or least_latency")
	case !atLeast(p.TimeoutMS, 100):
		return schemaErr("policy timeout_ms must be >= 100")
	}
	if r := p.RetriesDoc; r != nil {
		if !atLeast(r.MaxAttempts, 0) || !atLeast(r.BackoffMS, 0) || (r.BackoffMultiplier != nil && *r.BackoffMultiplier < 1) {
			return schemaErr("policy retries out of range")
		}
	}
	if c := p.Cooldown; c != nil {
		if !atLeast(c.FailureThreshold, 1) || !atLeast(c.WindowSeconds, 1) || !atLeast(c.CooldownSeconds, 1) {
			return schemaErr("policy cooldown values must be >= 1")
		}
	}
	return nil
}
