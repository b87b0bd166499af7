package pgsplit_test

import (
	"context"
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

// A request that writes names its caller and records the write; the
// caller's next listing then reads the replica only once it has replayed
// that write.
func ExampleDB_Wrote() {
	ctx := context.Background()
	db, err := pgsplit.Connect(ctx, "postgres://app@127.0.0.1:5432/app", "postgres://app@127.0.0.1:5433/app", pgsplit.BreakerConfig{})
	if err != nil {
		panic(err)
	}
	defer db.Close()

	ctx = pgsplit.WithCaller(ctx, "session-digest-1") // a digest, never the credential
	if _, err := db.Exec(ctx, `INSERT INTO notes (body) VALUES ($1)`, "hello"); err != nil {
		return
	}
	_ = db.Wrote(ctx) // after the commit: the primary's WAL position

	var n int
	_ = db.ReadIfAllowed(pgsplit.WithReplicaReads(ctx), func(ctx context.Context, q pgsplit.Querier) error {
		return q.QueryRow(ctx, `SELECT count(*) FROM notes`).Scan(&n) // sees "hello"
	})
}
