package llm_test

import (
	"fmt"
	"log"

	"github.com/talosgo/talos/gateway/llm"
)

// A routing policy document (contract ai_gateway/routing_policy) is
// decoded with the contract's defaults for what it leaves out, ready for
// Proxy.SetPolicies.
func ExampleParseRoutingPolicy() {
	doc := []byte(`{"id":"gpt-4o","version":2,"strategy":"round_robin","timeout_ms":5000,"retries":{"max_attempts":2}}`)
	p, err := llm.ParseRoutingPolicy(doc)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(p.Strategy, p.Timeout, p.MaxAttempts, p.Backoff, p.Cooldown.Failures, p.Cooldown.Window, p.Cooldown.Cooldown)
	// A proxy would install it with:
	//	err = proxy.SetPolicies(map[string]llm.RoutingPolicy{p.ID: p})

	_, err = llm.ParseRoutingPolicy([]byte(`{"id":"gpt-4o","version":3,"strategy":"random"}`))
	fmt.Println(err)
	// Output:
	// round_robin 5s 2 500ms 3 1m0s 5m0s
	// TALOS_INVALID_INPUT: llm: routing policy gpt-4o: unknown strategy
}
