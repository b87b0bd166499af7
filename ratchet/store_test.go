package ratchet_test

import (
	"testing"

	"github.com/talosgo/talos/ratchet"
	"github.com/talosgo/talos/ratchet/ratchettest"
)

func TestMemStoreConformance(t *testing.T) {
	ratchettest.Run(t, func(*testing.T) ratchet.SessionStore { return ratchet.NewMemStore() })
}
