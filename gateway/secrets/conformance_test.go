package secrets_test

import (
	"path/filepath"
	"testing"

	"github.com/talosgo/talos/gateway/secrets"
	"github.com/talosgo/talos/gateway/secrets/secretstest"
)

// TestFileStoreConformance runs the suite on the file store (one process:
// every handle is the same store).
func TestFileStoreConformance(t *testing.T) {
	secretstest.Run(t, func(t *testing.T, n int) []secrets.Store {
		s, err := secrets.OpenFile(filepath.Join(t.TempDir(), "secrets.json"))
		if err != nil {
			t.Fatal(err)
		}
		out := make([]secrets.Store, n)
		for i := range out {
			out[i] = s
		}
		return out
	})
}
