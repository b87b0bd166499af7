package budget_test

import (
	"context"
	"fmt"
	"log"

	"github.com/talosgo/talos/budget"
)

// Charge a cost known up front (a flat per-call price) in one step: no
// reservation to settle afterwards.
func ExampleCharge() {
	ctx := context.Background()
	b, err := budget.NewMemBudget(budget.MemBudgetConfig{})
	if err != nil {
		log.Fatal(err)
	}
	scopes := []budget.Scope{
		{ID: "agent:a1", Limit: 250_000, Period: budget.Daily()}, // $0.25 a day
		{ID: "org:o1", Limit: 10_000_000, Period: budget.Monthly()},
	}
	for i := range 3 {
		r, err := budget.Charge(ctx, b, budget.ReserveRequest{Scopes: scopes, Amount: 100_000})
		if err != nil {
			log.Fatal(err) // the store failed: deny
		}
		if r.Allowed {
			fmt.Println(i, "charged, state", r.State)
		} else {
			fmt.Println(i, "denied by", r.DeniedBy)
		}
	}
	u, _ := b.Usage(ctx, "org:o1", scopes[0])
	fmt.Println("spent", budget.USD(u.Spent))
	// Output:
	// 0 charged, state committed
	// 1 charged, state committed
	// 2 denied by agent:a1
	// spent 0.2
}
