package pgsplit_test

import (
	"fmt"
	"time"

	"github.com/talosgo/talos/gateway/pgsplit"
)

func ExampleBreaker() {
	now := time.Unix(0, 0)
	b := pgsplit.NewBreaker(pgsplit.BreakerConfig{
		FailureThreshold: 2,
		OpenDuration:     time.Second,
		Now:              func() time.Time { return now },
	})
	for range 2 {
		done, _ := b.Allow()
		done(pgsplit.Failure) // the replica did not answer
	}
	_, ok := b.Allow()
	fmt.Println(b.State(), ok)

	now = now.Add(time.Second)
	done, ok := b.Allow() // a half-open probe
	fmt.Println(b.State(), ok)
	done(pgsplit.Success)
	fmt.Println(b.State())
	// Output:
	// open false
	// half-open true
	// closed
}
