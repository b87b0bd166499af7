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

func TestUSD(t *testing.T) {
	for _, c := range []struct {
		micros int64
		text   string
	}{
		{0, "0"}, {1, "0.000001"}, {10, "0.00001"}, {500_000, "0.5"}, {1_500_000, "1.5"},
		{12_000_000, "12"}, {3_000_001, "3.000001"}, {budget.MaxAmount, "1125899906.842624"},
	} {
		if got := budget.USD(c.micros); got != c.text {
			t.Errorf("USD(%d) = %q, want %q", c.micros, got, c.text)
		}
		if got, err := budget.ParseUSD(c.text); err != nil || got != c.micros {
			t.Errorf("ParseUSD(%q) = %d, %v; want %d", c.text, got, err, c.micros)
		}
		// The text is the shortest form of the nearest float64, as RFC 8785 writes it.
		f, _ := strconv.ParseFloat(c.text, 64)
		if js := strconv.FormatFloat(f, 'f', -1, 64); js != c.text {
			t.Errorf("USD(%d) = %q is not the shortest float form %q", c.micros, c.text, js)
		}
	}
	for _, bad := range []string{"", "-1", "+1", "01", "1.", ".5", "1.0000001", "1e3", " 1", "1 ", "0x10", "1,5", "1125899906.842625", "99999999999999999999", "１"} {
		if _, err := budget.ParseUSD(bad); !errors.Is(err, contracts.ErrInvalidInput) {
			t.Errorf("ParseUSD(%q) = %v, want TALOS_INVALID_INPUT", bad, err)
		}
	}
}

func TestParseMode(t *testing.T) {
	for _, m := range []budget.Mode{budget.ModeHard, budget.ModeWarn, budget.ModeOff} {
		if got, err := budget.ParseMode(m.String()); err != nil || got != m {
			t.Errorf("ParseMode(%q) = %v, %v", m.String(), got, err)
		}
	}
	if _, err := budget.ParseMode("HARD"); !errors.Is(err, contracts.ErrInvalidInput) {
		t.Errorf("ParseMode(HARD) = %v", err)
	}
}

func TestReservationIDs(t *testing.T) {
	id, err := budget.NewReservationID("org:acme")
	if err != nil {
		t.Fatal(err)
	}
	g, nonce, err := budget.ParseReservationID(id)
	if err != nil || g != "org:acme" || len(nonce) != 32 || g+"~"+nonce != id {
		t.Fatalf("ParseReservationID(%q) = %q, %q, %v", id, g, nonce, err)
	}
	if _, err := budget.NewReservationID("bad group"); !errors.Is(err, contracts.ErrInvalidInput) {
		t.Fatalf("NewReservationID(bad) = %v", err)
	}
}

func TestUsageEventJSON(t *testing.T) {
	at := time.Date(2026, 5, 1, 12, 0, 0, 123_456_789, time.FixedZone("X", 3600))
	e := budget.NewUsageEvent(budget.EventCommit, budget.StatusSuccess, at,
		budget.Meta{KeyID: "key-1", TeamID: "team-1", OrgID: "org-1", Surface: "llm", ModelGroupID: "mg"})
	e.CostMicros = 1_250_000
	raw, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"cost_usd":1.25,"event_id":"` + e.EventID + `","key_id":"key-1","model_group_id":"mg","org_id":"org-1","status":"success","surface":"llm","team_id":"team-1","timestamp":"2026-05-01T11:00:00.123Z"}`
	if string(raw) != want {
		t.Fatalf("JSON\n got %s\nwant %s", raw, want)
	}
	if !contracts.IsUUIDv7(e.EventID) {
		t.Fatalf("EventID %q is not a UUIDv7", e.EventID)
	}
	if err := contracts.Validate("ai_gateway/usage_event", raw); err != nil {
		t.Fatalf("usage event does not match the contract schema: %v", err)
	}
	if canon, err := contracts.Canonicalize(raw); err != nil || string(canon) != string(raw) {
		t.Fatalf("usage event JSON is not canonical: %s (%v)", canon, err)
	}
	// Minimal event (required fields only) and a zero cost.
	min := budget.NewUsageEvent(budget.EventRateLimit, budget.StatusDenied, at, budget.Meta{})
	rawMin, _ := json.Marshal(min)
	if err := contracts.Validate("ai_gateway/usage_event", rawMin); err != nil {
		t.Fatalf("minimal usage event %s: %v", rawMin, err)
	}
	var back map[string]any
	if err := json.Unmarshal(raw, &back); err != nil || back["cost_usd"].(float64) != 1.25 {
		t.Fatalf("round trip: %v %v", back, err)
	}
}
