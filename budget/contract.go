package budget

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/talosgo/talos/contracts"
)

// ContractBudget is the contract's ai_gateway budget object: a spend limit
// for a team or a virtual key, with USD numbers at the JSON edge and
// micro-units inside.
type ContractBudget struct {
	ID        string
	ScopeType string // "team" or "key"
	ScopeID   string
	// Period is Daily() or Monthly() (the contract default).
	Period Period
	// MaxMicros is max_usd in micro-units; HasMax is false when the object
	// has no max_usd (no limit).
	MaxMicros int64
	HasMax    bool
	// UsedMicros is used_usd in micro-units (reporting only: the store's
	// own counters decide admission).
	UsedMicros int64
	// ResetAt is reset_at, or zero when absent.
	ResetAt time.Time
}

type contractBudgetJSON struct {
	ID        string       `json:"id"`
	ScopeType string       `json:"scope_type"`
	ScopeID   string       `json:"scope_id"`
	Period    *string      `json:"period"`
	MaxUSD    *json.Number `json:"max_usd"`
	UsedUSD   *json.Number `json:"used_usd"`
	ResetAt   *string      `json:"reset_at"`
}

// ParseContractBudget parses a contract budget object (outside input). It
// checks the object against the contract schema ai_gateway/budget (no
// unknown members, scope_type team or key, period daily or monthly,
// non-negative amounts, RFC 3339 reset_at) and converts the amounts to
// micro-units exactly: an amount finer than one micro-unit or above
// MaxAmount is rejected, never rounded. Errors are *contracts.Error values
// (TALOS_INVALID_INPUT or SCHEMA_VALIDATION_ERROR).
func ParseContractBudget(raw []byte) (ContractBudget, error) {
	if len(raw) > MaxContractBudgetSize {
		return ContractBudget{}, invalid("budget object too large")
	}
	if err := contracts.Validate("ai_gateway/budget", raw); err != nil {
		return ContractBudget{}, err
	}
	var j contractBudgetJSON
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return ContractBudget{}, contracts.Wrap(contracts.CodeInvalidInput, "budget: malformed budget object", err)
	}
	c := ContractBudget{ID: j.ID, ScopeType: j.ScopeType, ScopeID: j.ScopeID, Period: Monthly()}
	if j.Period != nil && *j.Period == "daily" {
		c.Period = Daily()
	}
	var err error
	if j.MaxUSD != nil {
		if c.MaxMicros, err = ParseUSDNumber(string(*j.MaxUSD)); err != nil {
			return ContractBudget{}, err
		}
		c.HasMax = true
	}
	if j.UsedUSD != nil {
		if c.UsedMicros, err = ParseUSDNumber(string(*j.UsedUSD)); err != nil {
			return ContractBudget{}, err
		}
	}
	if j.ResetAt != nil {
		if c.ResetAt, err = time.Parse(time.RFC3339Nano, *j.ResetAt); err != nil {
			return ContractBudget{}, contracts.Wrap(contracts.CodeInvalidInput, "budget: invalid reset_at", err)
		}
	}
	return c, nil
}

// Scope returns the budget as a Scope with ID scope_type + ":" + scope_id
// and the given mode; a budget without max_usd gives a ModeOff scope. The
// scope ID must be a valid ID (see Scope.ID).
func (c ContractBudget) Scope(mode Mode) (Scope, error) {
	s := Scope{ID: c.ScopeType + ":" + c.ScopeID, Limit: c.MaxMicros, Mode: mode, Period: c.Period}
	if !c.HasMax {
		s.Mode = ModeOff
	}
	return s, s.Validate()
}

// MarshalJSON encodes the contract budget object with its members in RFC
// 8785 order; amounts are exact decimal USD (see USD), period is always
// written, and max_usd and reset_at only when set.
func (c ContractBudget) MarshalJSON() ([]byte, error) {
	period := "monthly"
	switch c.Period.Kind() {
	case KindDaily:
		period = "daily"
	case KindMonthly:
	default:
		return nil, invalid("contract budgets are daily or monthly")
	}
	if c.MaxMicros < 0 || c.UsedMicros < 0 {
		return nil, invalid("negative amount")
	}
	b := make([]byte, 0, 192)
	b = append(b, `{"id":`...)
	b = strconv.AppendQuote(b, c.ID)
	if c.HasMax {
		b = append(b, `,"max_usd":`...)
		b = AppendUSD(b, c.MaxMicros)
	}
	b = append(b, `,"period":"`...)
	b = append(b, period...)
	b = append(b, '"')
	if !c.ResetAt.IsZero() {
		b = append(b, `,"reset_at":`...)
		b = strconv.AppendQuote(b, c.ResetAt.UTC().Format(time.RFC3339Nano))
	}
	b = append(b, `,"scope_id":`...)
	b = strconv.AppendQuote(b, c.ScopeID)
	b = append(b, `,"scope_type":`...)
	b = strconv.AppendQuote(b, c.ScopeType)
	b = append(b, `,"used_usd":`...)
	b = AppendUSD(b, c.UsedMicros)
	return append(b, '}'), nil
}

// ParseUSDNumber converts a non-negative JSON number literal in USD
// ("12", "0.5", "1e2", "2.5E-3") to micro-units exactly. A value finer than
// one micro-unit, negative, or above MaxAmount is a TALOS_INVALID_INPUT
// error; nothing is rounded.
func ParseUSDNumber(s string) (int64, error) {
	bad := func(why string) (int64, error) {
		return 0, contracts.New(contracts.CodeInvalidInput, "budget: invalid USD number: "+why)
	}
	if len(s) == 0 || len(s) > MaxUSDLen {
		return bad("empty or too long")
	}
	mant, exp := s, ""
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		mant, exp = s[:i], s[i+1:]
	}
	intPart, frac, _ := strings.Cut(mant, ".")
	if !digits(intPart) || (len(intPart) > 1 && intPart[0] == '0') {
		return bad("not a JSON number")
	}
	if strings.Contains(mant, ".") && !digits(frac) {
		return bad("not a JSON number")
	}
	e := 0
	if strings.ContainsAny(s, "eE") {
		sign := 1
		if exp != "" && (exp[0] == '+' || exp[0] == '-') {
			if exp[0] == '-' {
				sign = -1
			}
			exp = exp[1:]
		}
		if !digits(exp) || len(exp) > 4 {
			return bad("bad exponent")
		}
		n, _ := strconv.Atoi(exp)
		e = sign * n
	}
	d := strings.TrimLeft(intPart+frac, "0")
	shift := e - len(frac) + 6 // value in micro-units = d × 10^shift
	if shift < 0 {
		k := -shift
		if k >= len(d) {
			if d != "" {
				return bad("finer than one micro-unit")
			}
			return 0, nil
		}
		if strings.Trim(d[len(d)-k:], "0") != "" {
			return bad("finer than one micro-unit")
		}
		d, shift = d[:len(d)-k], 0
	}
	if d == "" {
		return 0, nil
	}
	if len(d)+shift > 16 {
		return bad("too large")
	}
	v, err := strconv.ParseUint(d, 10, 64)
	if err != nil {
		return bad("too large")
	}
	for range shift {
		v *= 10
	}
	if v > uint64(MaxAmount) {
		return bad("too large")
	}
	return int64(v), nil
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
