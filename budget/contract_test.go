package budget_test

import (
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/contracts"
)

func TestParseUSDNumber(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{
		{"0", 0}, {"0.0", 0}, {"12", 12_000_000}, {"12.5", 12_500_000}, {"1e2", 100_000_000}, {"2.5E-3", 2500},
		{"1E-6", 1}, {"0.000001", 1}, {"100e-8", 1}, {"0e-99", 0}, {"1.125899906842624e9", budget.MaxAmount},
	} {
		if got, err := budget.ParseUSDNumber(c.in); err != nil || got != c.want {
			t.Errorf("ParseUSDNumber(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "-1", "+1", "01", "1.", ".5", "1e", "1e+", "1e-7", "0.0000001", "1.5e-6", "1e10", "1.125899906842625e9", "NaN", "1e99999", "0x1", "1_0"} {
		if _, err := budget.ParseUSDNumber(bad); !errors.Is(err, contracts.ErrInvalidInput) {
			t.Errorf("ParseUSDNumber(%q) = %v, want TALOS_INVALID_INPUT", bad, err)
		}
	}
}

func TestContractBudget(t *testing.T) {
	raw := []byte(`{"id":"b1","scope_type":"team","scope_id":"t1","period":"daily","max_usd":25.5,"used_usd":1.25,"reset_at":"2026-05-02T00:00:00Z"}`)
	c, err := budget.ParseContractBudget(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := budget.ContractBudget{ID: "b1", ScopeType: "team", ScopeID: "t1", Period: budget.Daily(), MaxMicros: 25_500_000, HasMax: true,
		UsedMicros: 1_250_000, ResetAt: time.Date(2026, 5, 2, 0, 0, 0, 0, time.UTC)}
	if c != want {
		t.Fatalf("ParseContractBudget = %+v, want %+v", c, want)
	}
	s, err := c.Scope(budget.ModeHard)
	if err != nil || s != (budget.Scope{ID: "team:t1", Limit: 25_500_000, Period: budget.Daily()}) {
		t.Fatalf("Scope = %+v, %v", s, err)
	}
	out, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != `{"id":"b1","max_usd":25.5,"period":"daily","reset_at":"2026-05-02T00:00:00Z","scope_id":"t1","scope_type":"team","used_usd":1.25}` {
		t.Fatalf("MarshalJSON = %s", out)
	}
	if err := contracts.Validate("ai_gateway/budget", out); err != nil {
		t.Fatal(err)
	}
	// Defaults: monthly, no limit → an off scope.
	c, err = budget.ParseContractBudget([]byte(`{"id":"b2","scope_type":"key","scope_id":"k1"}`))
	if err != nil || c.Period != budget.Monthly() || c.HasMax {
		t.Fatalf("minimal budget = %+v, %v", c, err)
	}
	if s, _ := c.Scope(budget.ModeHard); s.Mode != budget.ModeOff {
		t.Fatalf("budget without max_usd gives mode %v", s.Mode)
	}
	for _, bad := range []string{
		`{"id":"b","scope_type":"org","scope_id":"o"}`,
		`{"id":"b","scope_type":"team","scope_id":"t","max_usd":-1}`,
		`{"id":"b","scope_type":"team","scope_id":"t","max_usd":0.0000001}`,
		`{"id":"b","scope_type":"team","scope_id":"t","max_usd":1e300}`,
		`{"id":"b","scope_type":"team","scope_id":"t","extra":1}`,
		`{"id":"b","scope_type":"team","scope_id":"t","period":"weekly"}`,
		`{"id":"b","scope_type":"team","scope_id":"t","id":"c"}`,
		`{"id":"b","scope_type":"team","scope_id":"t","reset_at":"tomorrow"}`,
		`{"id":"b","scope_type":"team","scope_id":"t"} {}`,
		`[]`,
	} {
		if _, err := budget.ParseContractBudget([]byte(bad)); err == nil {
			t.Errorf("ParseContractBudget(%s) accepted", bad)
		} else if code := contracts.CodeOf(err); code != contracts.CodeInvalidInput && code != contracts.CodeSchemaValidationError {
			t.Errorf("ParseContractBudget(%s) = %v", bad, err)
		}
	}
}

// FuzzParseContractBudget: an accepted object re-encodes canonically, and
// the re-encoding parses to the same budget.
func FuzzParseContractBudget(f *testing.F) {
	for _, s := range []string{
		`{"id":"b1","scope_type":"team","scope_id":"t1","period":"daily","max_usd":25.5,"used_usd":1.25,"reset_at":"2026-05-02T00:00:00Z"}`,
		`{"id":"b2","scope_type":"key","scope_id":"k1"}`,
		`{"id":"b","scope_type":"team","scope_id":"t","max_usd":1e2,"used_usd":0.000001}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		c, err := budget.ParseContractBudget(raw)
		if err != nil {
			return
		}
		out, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("accepted %s but cannot encode it: %v", raw, err)
		}
		if canon, err := contracts.Canonicalize(out); err != nil || string(canon) != string(out) {
			t.Fatalf("encoding %s is not canonical (%v)", out, err)
		}
		again, err := budget.ParseContractBudget(out)
		if err != nil || !again.ResetAt.Equal(c.ResetAt) {
			t.Fatalf("re-encoding %s does not parse back: %v", out, err)
		}
		again.ResetAt = c.ResetAt
		if again != c {
			t.Fatalf("round trip changed %+v into %+v", c, again)
		}
		if c.HasMax {
			if f, err := strconv.ParseFloat(budget.USD(c.MaxMicros), 64); err != nil || f < 0 {
				t.Fatalf("max %d", c.MaxMicros)
			}
		}
	})
}
