package budget_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"time"

	"github.com/talosgo/talos/budget"
)

// Reserve an estimate against agent, team and org budgets, then settle
// the actual cost.
func ExampleMemBudget() {
	ctx := context.Background()
	b, err := budget.NewMemBudget(budget.MemBudgetConfig{})
	if err != nil {
		log.Fatal(err)
	}
	usd := func(s string) int64 {
		v, err := budget.ParseUSD(s)
		if err != nil {
			log.Fatal(err)
		}
		return v
	}
	scopes := []budget.Scope{
		{ID: "agent:a1", Limit: usd("5"), Period: budget.Daily()},
		{ID: "team:t1", Limit: usd("100"), Mode: budget.ModeWarn, Period: budget.Monthly()},
		{ID: "org:o1", Limit: usd("1000"), Period: budget.Monthly()},
	}
	r, err := b.Reserve(ctx, budget.ReserveRequest{Scopes: scopes, Amount: usd("2"), IdempotencyKey: "req-42", TTL: time.Minute})
	if err != nil {
		log.Fatal(err) // the store failed: deny
	}
	fmt.Println("allowed:", r.Allowed)

	st, err := b.Commit(ctx, r.ID, usd("1.25"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("charged:", budget.USD(st.Scopes[0].Charged))

	u, _ := b.Usage(ctx, "org:o1", scopes[0])
	fmt.Println("agent remaining today:", budget.USD(u.Remaining))

	over, _ := b.Reserve(ctx, budget.ReserveRequest{Scopes: scopes, Amount: usd("4")})
	fmt.Println("allowed:", over.Allowed, "denied by:", over.DeniedBy)
	fmt.Println(over.Err())
	// Output:
	// allowed: true
	// charged: 1.25
	// agent remaining today: 3.75
	// allowed: false denied by: agent:a1
	// BUDGET_EXCEEDED: budget: scope "agent:a1" exceeded
}

// Rate-limit per key with GCRA; denial is a Result.
func ExampleLimiter_Allow() {
	lim, err := budget.NewLimiter(budget.LimiterConfig{
		Store:   budget.NewMemRates(nil),
		Surface: "llm",
		Limit:   budget.PerMinute(60),
	})
	if err != nil {
		log.Fatal(err)
	}
	res, err := lim.Allow(context.Background(), "key:k1", 1)
	if err != nil {
		log.Fatal(err) // the store failed: deny
	}
	fmt.Println(res.Allowed, res.Remaining)
	// Output: true 59
}

// Report budget events to the audit log through a hook.
func ExampleObserve() {
	m, _ := budget.NewMemBudget(budget.MemBudgetConfig{})
	b := budget.Observe(m, func(e budget.UsageEvent) {
		raw, _ := json.Marshal(e)
		var v map[string]any
		_ = json.Unmarshal(raw, &v)
		fmt.Println(v["status"], v["cost_usd"], v["key_id"], v["surface"])
	}, nil)
	ctx := context.Background()
	s := []budget.Scope{{ID: "key:k1", Limit: 1_000_000, Period: budget.Daily()}}
	meta := budget.Meta{KeyID: "k1", TeamID: "t1", Surface: "mcp"}
	r, _ := b.Reserve(ctx, budget.ReserveRequest{Scopes: s, Amount: 600_000, Meta: meta})
	_, _ = b.Commit(ctx, r.ID, 500_000)
	_, _ = b.Reserve(ctx, budget.ReserveRequest{Scopes: s, Amount: 600_000, Meta: meta})
	// Output:
	// success 0.5 k1 mcp
	// denied 0 k1 mcp
}
