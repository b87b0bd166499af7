package a2a_test

import (
	"testing"

	"github.com/talosgo/talos/gateway/a2a"
	"github.com/talosgo/talos/gateway/a2a/a2atest"
)

func TestMemoryTaskStoreConformance(t *testing.T) {
	a2atest.TestTaskStore(t, func(*testing.T) a2a.TaskStore { return a2a.NewMemTaskStore() })
}

func TestMemoryStoreConformance(t *testing.T) {
	a2atest.Run(t, func(*testing.T) a2a.Store { return a2a.NewMemStore() })
}

func TestMemoryPushConfigStoreConformance(t *testing.T) {
	a2atest.TestPushConfigStore(t, func(*testing.T) a2a.PushConfigStore { return a2a.NewMemPushConfigStore() })
}
