package mcp_test

import (
	"testing"

	"github.com/talosgo/talos/gateway/mcp"
	"github.com/talosgo/talos/gateway/mcp/idemtest"
)

func TestMemIdempotencyConformance(t *testing.T) {
	idemtest.Run(t, mcp.NewMemIdempotencyStore(mcp.MemIdempotencyConfig{}))
}
