package redis_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/alicebob/miniredis/v2"
	goredis "github.com/redis/go-redis/v9"
	"github.com/talosgo/talos/capability"
	capredis "github.com/talosgo/talos/capability/redis"
	"github.com/talosgo/talos/identity"
)

// Two Verifiers, standing for two processes, share one Redis: a token
// revoked through one is denied by the other, whose cached copy is evicted
// by the pub/sub message. The example runs on an in-process miniredis; use
// any go-redis client in production.
func ExampleNewRevocationStore() {
	srv, err := miniredis.Run()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()

	issuer, err := identity.GenerateWallet("issuer")
	if err != nil {
		log.Fatal(err)
	}
	agent, err := identity.GenerateWallet("agent")
	if err != nil {
		log.Fatal(err)
	}
	var clients []*goredis.Client
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	newVerifier := func() *capability.Verifier {
		client := goredis.NewClient(&goredis.Options{Addr: srv.Addr()}) // one pool per process
		clients = append(clients, client)
		v, err := capability.NewVerifier(capability.Config{
			TrustedIssuers: []identity.DID{issuer.DID()},
			Revocations:    capredis.NewRevocationStore(client, capredis.Config{}),
		})
		if err != nil {
			log.Fatal(err)
		}
		return v
	}
	a, b := newVerifier(), newVerifier()
	defer a.Close()
	defer b.Close()

	tok, err := capability.Issue(issuer.Signer(), agent.DID(),
		[]capability.Grant{{Tool: "fs", Actions: []string{"read"}}}, time.Now().Add(time.Hour), nil)
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	req := capability.Request{Capability: tok.Encode(), Principal: agent.DID(), Tool: "fs", Action: "read"}
	d, _ := b.Authorize(ctx, req) // verified, then cached by b
	fmt.Println("before:", d.Reason)

	if err := a.Revoke(ctx, tok); err != nil {
		log.Fatal(err) // Redis failed: the token is not revoked
	}
	// The message reaches b one network delay later; until then b may still
	// answer from its cache (or, if its feed is not live, asks Redis).
	deadline := time.Now().Add(5 * time.Second)
	for d.Allowed && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
		d, _ = b.Authorize(ctx, req)
	}
	fmt.Println("after:", d.Reason, d.Err())
	// Output:
	// before: ALLOWED
	// after: REVOKED AUTH_REVOKED: capability: denied: REVOKED
}

// A replay store claims each request nonce once across every process.
func ExampleReplayStore_Claim() {
	srv, err := miniredis.Run()
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	client := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	defer client.Close()

	rs := capredis.NewReplayStore(client, capredis.Config{})
	ctx := context.Background()
	first, err := rs.Claim(ctx, "agent-1/nonce-42", time.Minute)
	if err != nil {
		log.Fatal(err) // Redis failed: deny the request
	}
	again, _ := rs.Claim(ctx, "agent-1/nonce-42", time.Minute)
	fmt.Println(first, again)
	// Output:
	// true false
}

// On Redis Cluster a revocation store's prefix needs a hash tag, so that
// its keys and shard channels live in one slot.
func ExampleHasHashTag() {
	fmt.Println(capredis.HasHashTag("talos:capability:"))
	fmt.Println(capredis.HasHashTag("{talos-capability}:"))
	// Output:
	// false
	// true
}
