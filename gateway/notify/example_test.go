package notify_test

import (
	"context"
	"log"
	"os"

	goredis "github.com/redis/go-redis/v9"

	"github.com/talosgo/talos/gateway/notify"
)

// Each replica runs a Bus on the shared Redis; an edit on one replica is
// published, and every replica (itself too) reloads that kind.
func ExampleBus() {
	url := os.Getenv("TALOS_TEST_REDIS_URL")
	if url == "" {
		return
	}
	opt, err := goredis.ParseURL(url)
	if err != nil {
		log.Fatal(err)
	}
	rdb := goredis.NewClient(opt)
	defer rdb.Close()
	bus, err := notify.New(notify.Config{
		Transport: notify.NewRedis(rdb, "example-notify:"),
		Apply: func(ctx context.Context, kind string) error {
			// Re-read the documents of kind from the shared store.
			return nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go bus.Run(ctx)

	// After an edit has been stored:
	if _, err := bus.Publish(ctx, "principal"); err != nil {
		log.Print("not propagated now; the other replicas' version read catches it: ", err)
	}
}
