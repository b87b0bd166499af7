// Package gateway is the map of the gateway module: the surfaces of a Talos
// service as importable packages, so that users build their own gateways
// on their own http.ServeMux. Each package is one noun with a
// handler-plus-store shape (a Config, New, Register or Handler, and where
// it keeps state a small Store interface with memory or file and
// PostgreSQL back-ends that pass one exported conformance suite):
//
//   - [github.com/talosgo/talos/gateway/mcp]: the MCP tool gateway on the
//     go-sdk (upstreams, tool registry, one Kernel decision per tool call).
//   - [github.com/talosgo/talos/gateway/llm]: the OpenAI-compatible chat
//     completions proxy (strict parsing, worst-case budget reservation).
//   - [github.com/talosgo/talos/gateway/a2a]: A2A v1 tasks (JSON-RPC,
//     compat, SSE, push, signed agent cards) and the A2A relay (sessions,
//     frames, groups); a2a/postgres, a2a/a2atest.
//   - [github.com/talosgo/talos/gateway/auditapi]: checkpoints, proofs,
//     events, entries, bundles and the C2SP tiles of any audit.Store, and
//     the live audit stream (Server-Sent Events).
//   - [github.com/talosgo/talos/gateway/stats]: decision statistics over a
//     window, fed by the Kernels' meter (GET /v1/admin/stats).
//   - [github.com/talosgo/talos/gateway/admin]: the principal registry (the
//     Attester's key resolver), RBAC, key and team budgets, capability
//     issue, delegation checks and revocation; admin/postgres, admin/admintest.
//   - [github.com/talosgo/talos/gateway/kernelapi]: POST /v1/authorize (the
//     Kernel over HTTP) and GET /v1/identity.
//   - [github.com/talosgo/talos/gateway/config]: versioned, schema-checked
//     config documents; config/postgres, config/configtest.
//   - [github.com/talosgo/talos/gateway/secrets]: the sealed secret store
//     and KEK rotation; secrets/postgres, secrets/secretstest.
//   - [github.com/talosgo/talos/gateway/pgsplit]: PostgreSQL read/write
//     split with a circuit breaker in front of the replica.
//   - [github.com/talosgo/talos/gateway/otelredact]: removes secrets from
//     spans before they leave the process.
//
// Every attested surface runs behind a talos.Attester whose key resolver
// is an admin.Registry (or the user's own identity.KeyResolver) and asks
// one talos.Kernel. examples/server wires every package into one service;
// examples/gateway is the small custom gateway a user writes.
//
// This package has no code.
package gateway
