package admin_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/talosgo/talos/gateway/admin"
	"github.com/talosgo/talos/gateway/secrets"
)

func vault(t *testing.T, path string, master []byte) *secrets.Vault {
	t.Helper()
	fs, err := secrets.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v, err := secrets.Open(t.Context(), secrets.Config{Store: fs, MasterKey: master})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestBootstrap(t *testing.T) {
	master := make([]byte, 32)
	rand.Read(master)
	path := filepath.Join(t.TempDir(), "secrets.json")
	v := vault(t, path, master)
	const id = "server/admin-bootstrap-sha256"

	// Concurrent first starts: exactly one credential is made and shown.
	var wg sync.WaitGroup
	creds := make([]string, 4)
	hashes := make([][32]byte, 4)
	for i := range creds {
		wg.Go(func() {
			c, h, err := admin.Bootstrap(t.Context(), v, id)
			if err != nil {
				t.Error(err)
			}
			creds[i], hashes[i] = c, h
		})
	}
	wg.Wait()
	var cred string
	for i, c := range creds {
		if hashes[i] != hashes[0] {
			t.Fatal("replicas disagree on the hash")
		}
		if c != "" {
			if cred != "" {
				t.Fatal("two credentials shown")
			}
			cred = c
		}
	}
	if !strings.HasPrefix(cred, admin.BootstrapPrefix) || !admin.CheckBootstrap(cred, hashes[0]) {
		t.Fatalf("credential %.14q... does not check", cred)
	}
	// The store holds the hash only.
	if stored, err := v.Get(t.Context(), id); err != nil || len(stored) != 32 || strings.Contains(string(stored), cred) {
		t.Fatalf("stored %d bytes, %v", len(stored), err)
	}
	// A restart (another vault on the same file) shows nothing and keeps the hash.
	c, h, err := admin.Bootstrap(t.Context(), vault(t, path, master), id)
	if err != nil || c != "" || h != hashes[0] {
		t.Fatalf("restart: %q %v", c, err)
	}
	for _, bad := range []string{"", admin.BootstrapPrefix, cred[:len(cred)-1], "Bearer " + cred, strings.ToUpper(cred), cred + " "} {
		if admin.CheckBootstrap(bad, h) {
			t.Errorf("accepted %q", bad)
		}
	}
}

// corruptStore answers a stored value that is not a SHA-256, or a failure.
type corruptStore struct{ err error }

func (s corruptStore) Get(context.Context, string) ([]byte, error) {
	if s.err != nil {
		return nil, s.err
	}
	return []byte("short"), nil
}

func (s corruptStore) Create(context.Context, string, []byte) (bool, error) {
	return false, errors.New("not reached")
}

func TestBootstrapDeniesOnBadStore(t *testing.T) {
	if c, _, err := admin.Bootstrap(t.Context(), corruptStore{}, "id"); !errors.Is(err, admin.ErrBootstrapCorrupt) || c != "" {
		t.Fatalf("corrupt hash: %q %v", c, err)
	}
	down := errors.New("store down")
	if c, _, err := admin.Bootstrap(t.Context(), corruptStore{err: down}, "id"); !errors.Is(err, down) || c != "" {
		t.Fatalf("store down: %q %v", c, err)
	}
}

// The first start makes and shows the credential; later starts only load
// its hash. The admin routes authenticate with CheckBootstrap.
func ExampleBootstrap() {
	dir, err := os.MkdirTemp("", "bootstrap")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	fs, err := secrets.OpenFile(filepath.Join(dir, "secrets.json"))
	if err != nil {
		panic(err)
	}
	master := make([]byte, 32)
	rand.Read(master)
	ctx := context.Background()
	v, err := secrets.Open(ctx, secrets.Config{Store: fs, MasterKey: master})
	if err != nil {
		panic(err)
	}
	cred, hash, err := admin.Bootstrap(ctx, v, "server/admin-bootstrap-sha256")
	if err != nil {
		panic(err)
	}
	again, _, _ := admin.Bootstrap(ctx, v, "server/admin-bootstrap-sha256")
	fmt.Println(cred != "", again == "", admin.CheckBootstrap(cred, hash))
	// Output: true true true
}
