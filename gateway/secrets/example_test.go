package secrets_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"

	"github.com/talosgo/talos/gateway/secrets"
)

// Example seals a secret in a file store, rotates the KEK and reads the
// secret back.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "secrets-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)

	store, err := secrets.OpenFile(filepath.Join(dir, "secrets.json"))
	if err != nil {
		panic(err)
	}
	master := make([]byte, 32) // in production: from the environment or a KMS
	rand.Read(master)
	vault, err := secrets.Open(ctx, secrets.Config{Store: store, MasterKey: master})
	if err != nil {
		panic(err)
	}
	clear(master)

	if err := vault.Put(ctx, "llm/api-key", []byte("sk-example")); err != nil {
		panic(err)
	}
	fmt.Println("sealed under", vault.PrimaryKEK())
	res, err := vault.Rotate(ctx)
	if err != nil {
		panic(err)
	}
	fmt.Println("rotated to", res.KEKID, "rewrapped", res.Rewrapped)
	v, err := vault.Get(ctx, "llm/api-key")
	if err != nil {
		panic(err)
	}
	fmt.Println(string(v))
	// Output:
	// sealed under kek-00000001
	// rotated to kek-00000002 rewrapped 1
	// sk-example
}
