package a2a_test

import (
	"testing"

	"github.com/talosgo/talos/gateway/a2a"
	"github.com/talosgo/talos/gateway/a2a/a2atest"
)

func TestMemoryTaskStoreConformance(t *testing.T) {
	a2atest.TestTaskStore(t, func(*testing.T) a2a.TaskStore { return a2a.NewMemoryTaskStore() })
}
