package budget_test

import (
	"testing"

	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/budget/budgettest"
)

func TestMemoryConformance(t *testing.T) {
	budgettest.Run(t, func(t *testing.T) budget.Budget {
		m, err := budget.NewMemBudget(budget.MemBudgetConfig{})
		if err != nil {
			t.Fatal(err)
		}
		return m
	})
}

func TestMemoryRatesConformance(t *testing.T) {
	budgettest.RunRates(t, func(t *testing.T) budget.RateStore { return budget.NewMemRates(nil) })
}
