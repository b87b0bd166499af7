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

// A request whose every scope is off holds nothing but is a reservation
// like any other: it can be committed (charging no scope), replayed and
// released, and Charge admits it.
func TestAllScopesOff(t *testing.T) {
	b := newBudget(t)
	ctx := t.Context()
	req := budget.ReserveRequest{Scopes: []budget.Scope{
		{ID: "agent:1", Limit: 0, Mode: budget.ModeOff},
		{ID: budgettest.Name("org"), Limit: 0, Mode: budget.ModeOff, Period: budget.Lifetime()},
	}, Amount: 5, Meta: budget.Meta{KeyID: "k"}}
	r, err := b.Reserve(ctx, req)
	if err != nil || !r.Allowed || len(r.Scopes) != 2 {
		t.Fatalf("Reserve = %+v, %v", r, err)
	}
	s, err := b.Commit(ctx, r.ID, 7)
	if err != nil || len(s.Scopes) != 0 || s.Meta.KeyID != "k" {
		t.Fatalf("Commit = %+v, %v", s, err)
	}
	if s, err := b.Commit(ctx, r.ID, 7); err != nil || !s.Replayed || len(s.Scopes) != 0 {
		t.Fatalf("Commit replay = %+v, %v", s, err)
	}
	r, err = b.Reserve(ctx, req)
	if err != nil || !r.Allowed {
		t.Fatalf("Reserve = %+v, %v", r, err)
	}
	if err := b.Release(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if r, err := b.Charge(ctx, req); err != nil || !r.Allowed {
		t.Fatalf("Charge = %+v, %v", r, err)
	}
}
