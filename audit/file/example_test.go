package file_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/audit/audittest"
	"github.com/talosgo/talos/audit/file"
)

// A durable log in a directory that any static file server can publish as
// a C2SP tiled log.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "audit-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	store, err := file.Open(ctx, file.Config{Dir: dir})
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	key := audittest.Key() // in production: an identity.Wallet's Signer
	signer, _ := audit.NewNoteSigner("audit.example.com/log", key)
	verifier, _ := audit.NewVerifier("audit.example.com/log", key.Public().(ed25519.PublicKey))
	l, err := audit.New(ctx, audit.Config{Store: store, Signer: signer, Verifier: verifier})
	if err != nil {
		log.Fatal(err)
	}
	for i := range 300 {
		if _, err := l.Append(ctx, audittest.Event(i)); err != nil {
			log.Fatal(err)
		}
	}
	if _, err := l.Checkpoint(ctx); err != nil {
		log.Fatal(err)
	}
	for _, p := range []string{"checkpoint", "tile/0/000", "tile/0/001.p/44", "tile/entries/000", "tile/entries/001.p/44"} {
		_, err := os.Stat(filepath.Join(dir, filepath.FromSlash(p)))
		fmt.Println(p, err == nil)
	}
	// Output:
	// checkpoint true
	// tile/0/000 true
	// tile/0/001.p/44 true
	// tile/entries/000 true
	// tile/entries/001.p/44 true
}
