package redis_test

import (
	"testing"

	goredis "github.com/redis/go-redis/v9"

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

// checkedClient returns a client for the test Redis whose scripts fail on
// any key they touch that is not declared in KEYS (Redis Cluster's rule,
// which a single server does not enforce; testenv.CheckDeclaredKeys).
func checkedClient(t testing.TB) *goredis.Client {
	c, _ := testenv.Redis(t)
	cc := c.(*goredis.Client)
	testenv.CheckDeclaredKeys(cc)
	return cc
}

// The conformance suites run through checkedClient: every script must
// declare every key it touches.
func TestConformance(t *testing.T) {
	budgettest.Run(t, func(t *testing.T) budget.Budget {
		b, err := bredis.New(checkedClient(t), bredis.Config{Prefix: testenv.Unique(t) + ":"})
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

func TestRatesConformance(t *testing.T) {
	budgettest.RunRates(t, func(t *testing.T) budget.RateStore {
		c := checkedClient(t)
		r, err := bredis.NewRates(c, testenv.Unique(t)+":")
		if err != nil {
			t.Fatal(err)
		}
		return r
	})
}
