package budget_test

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/contracts"
)

// FuzzParseReservationID: an accepted ID is exactly group + "~" + nonce,
// with a valid group and 32 lower-case hex digits; a rejected one is a
// TALOS_INVALID_INPUT error.
func FuzzParseReservationID(f *testing.F) {
	id, _ := budget.NewReservationID("org:acme")
	for _, s := range []string{id, "", "~", "g~0123456789abcdef0123456789abcdef", "g~0123456789ABCDEF0123456789abcdef",
		"a~b~0123456789abcdef0123456789abcdef", "{g}~0123456789abcdef0123456789abcdef", "g~0123456789abcdef0123456789abcde"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		group, nonce, err := budget.ParseReservationID(s)
		if err != nil {
			if !errors.Is(err, contracts.ErrInvalidInput) {
				t.Fatalf("error %v is not TALOS_INVALID_INPUT", err)
			}
			return
		}
		if group+"~"+nonce != s {
			t.Fatalf("accepted %q but it re-encodes as %q", s, group+"~"+nonce)
		}
		if budget.ValidateID("group", group) != nil || len(nonce) != 32 || strings.Trim(nonce, "0123456789abcdef") != "" {
			t.Fatalf("accepted %q with group %q nonce %q", s, group, nonce)
		}
	})
}

// FuzzParseUSD: an accepted amount is in range and formats back to the
// same text, so exactly one text is accepted per amount.
func FuzzParseUSD(f *testing.F) {
	for _, s := range []string{"0", "1", "0.5", "12.000001", "1125899906.842624", "1.50", "01", "1e3", "-1", "1.", ".1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := budget.ParseUSD(s)
		if err != nil {
			if !errors.Is(err, contracts.ErrInvalidInput) {
				t.Fatalf("error %v is not TALOS_INVALID_INPUT", err)
			}
			return
		}
		if v < 0 || v > budget.MaxAmount {
			t.Fatalf("ParseUSD(%q) = %d out of range", s, v)
		}
		// Trailing fractional zeros are the only accepted non-canonical form.
		canon := budget.USD(v)
		if canon != s && strings.TrimRight(strings.TrimRight(s, "0"), ".") != canon {
			t.Fatalf("ParseUSD(%q) = %d, which formats as %q", s, v, canon)
		}
		if back, err := budget.ParseUSD(canon); err != nil || back != v {
			t.Fatalf("ParseUSD(USD(%d)) = %d, %v", v, back, err)
		}
		if f, err := strconv.ParseFloat(canon, 64); err != nil || strconv.FormatFloat(f, 'f', -1, 64) != canon {
			t.Fatalf("USD(%d) = %q is not the shortest float text", v, canon)
		}
	})
}

// FuzzParseUSDNumber: an accepted JSON number is exactly the value its text
// denotes (checked against a float parse) and round-trips through USD.
func FuzzParseUSDNumber(f *testing.F) {
	for _, s := range []string{"0", "12.5", "1e2", "2.5E-3", "100e-8", "1.125899906842624e9", "1e-7", "-0", "0e-99"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := budget.ParseUSDNumber(s)
		if err != nil {
			if !errors.Is(err, contracts.ErrInvalidInput) {
				t.Fatalf("error %v is not TALOS_INVALID_INPUT", err)
			}
			return
		}
		if v < 0 || v > budget.MaxAmount {
			t.Fatalf("ParseUSDNumber(%q) = %d out of range", s, v)
		}
		x, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("accepted %q, which is not a number: %v", s, err)
		}
		if diff := math.Abs(x*1e6 - float64(v)); diff > 1e-6+1e-15*float64(v) {
			t.Fatalf("ParseUSDNumber(%q) = %d, float says %v", s, v, x*1e6)
		}
		if back, err := budget.ParseUSDNumber(budget.USD(v)); err != nil || back != v {
			t.Fatalf("ParseUSDNumber(USD(%d)) = %d, %v", v, back, err)
		}
	})
}
