package redis_test

import (
	"context"
	"fmt"
	"log"

	"github.com/alicebob/miniredis/v2"
	goredis "github.com/redis/go-redis/v9"

	"github.com/talosgo/talos/budget"
	bredis "github.com/talosgo/talos/budget/redis"
)

// A budget shared by every process that uses the same Redis. The example
// runs on an in-process miniredis; use any go-redis client in production.
func ExampleNew() {
	srv, err := miniredis.Run()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	defer client.Close()

	b, err := bredis.New(client, bredis.Config{})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	scopes := []budget.Scope{
		{ID: "agent:a1", Limit: 2_000_000, Period: budget.Daily()},
		{ID: "org:o1", Limit: 100_000_000, Period: budget.Monthly()},
	}
	r, err := b.Reserve(ctx, budget.ReserveRequest{Scopes: scopes, Amount: 1_500_000, IdempotencyKey: "req-1"})
	if err != nil {
		log.Fatal(err) // Redis failed: deny
	}
	again, _ := b.Reserve(ctx, budget.ReserveRequest{Scopes: scopes, Amount: 1_500_000, IdempotencyKey: "req-1"})
	fmt.Println(r.Allowed, again.Replayed, again.ID == r.ID)

	st, err := b.Commit(ctx, r.ID, 2_500_000) // more than reserved: capped in hard mode
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("charged", budget.USD(st.Scopes[0].Charged), "overage", budget.USD(st.Scopes[0].Overage))
	// Output:
	// true true true
	// charged 2 overage 0.5
}
