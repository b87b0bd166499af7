package redis_test

import (
	"testing"

	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/budget/budgettest"
	bredis "github.com/talosgo/talos/budget/redis"
	"github.com/talosgo/talos/internal/testenv"
)

func newBudget(t testing.TB) *bredis.Budget {
	c, _ := testenv.Redis(t)
	b, err := bredis.New(c, bredis.Config{Prefix: testenv.Unique(t) + ":"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestConformance(t *testing.T) {
	budgettest.Run(t, func(t *testing.T) budget.Budget { return newBudget(t) })
}

func TestRatesConformance(t *testing.T) {
	budgettest.RunRates(t, func(t *testing.T) budget.RateStore {
		c, _ := testenv.Redis(t)
		r, err := bredis.NewRates(c, testenv.Unique(t)+":")
		if err != nil {
			t.Fatal(err)
		}
		return r
	})
}
