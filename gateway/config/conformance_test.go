package config_test

import (
	"path/filepath"
	"testing"

	"github.com/talosgo/talos/gateway/config"
	"github.com/talosgo/talos/gateway/config/configtest"
)

func TestMemStoreConformance(t *testing.T) {
	configtest.Run(t, func(t *testing.T, n int) []config.Store {
		s := config.NewMemStore()
		out := make([]config.Store, n)
		for i := range out {
			out[i] = s
		}
		return out
	})
}

func TestFileStoreConformance(t *testing.T) {
	configtest.Run(t, func(t *testing.T, n int) []config.Store {
		s, err := config.OpenFile(filepath.Join(t.TempDir(), "config-versions.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		out := make([]config.Store, n)
		for i := range out {
			out[i] = s
		}
		return out
	})
}
