// Command gateway is the custom gateway a user of Talos writes: their own
// http.ServeMux, one upstream MCP server behind gateway/mcp (every tool
// call attested, authorized, rate-limited and audited by the Kernel), and
// the audit log served by gateway/auditapi. Capabilities are issued by the
// key named with -issuer; agents sign each request with their own did:key.
//
//	go run ./examples/gateway -issuer did:key:z6Mk... -upstream http://127.0.0.1:9000/mcp
package main

import (
	"context"
	"errors"
	"flag"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"time"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/audit"
	auditfile "github.com/talosgo/talos/audit/file"
	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/capability"
	"github.com/talosgo/talos/identity"

	"github.com/talosgo/talos/gateway/auditapi"
	"github.com/talosgo/talos/gateway/mcp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], func(addr string) { log.Printf("gateway listening on http://%s", addr) }); err != nil {
		log.Fatal(err)
	}
}

// run serves the gateway until ctx ends; ready is told the address.
func run(ctx context.Context, args []string, ready func(addr string)) error {
	flags := flag.NewFlagSet("gateway", flag.ContinueOnError)
	addr := flags.String("addr", "127.0.0.1:8080", "listen address")
	dataDir := flags.String("data", "gateway-data", "directory of the audit log and its signing key")
	issuerDID := flags.String("issuer", "", "did:key of the capability issuer (required)")
	upstream := flags.String("upstream", "", "streamable-HTTP URL of the upstream MCP server (required)")
	if err := flags.Parse(args); err != nil {
		return err
	}
	issuer, err := identity.ParseDID(*issuerDID)
	if err != nil || *upstream == "" {
		return errors.New("gateway: -issuer (a did:key) and -upstream are required")
	}

	// The audit log: a durable file store, signed with a key kept beside it.
	key, err := loadOrCreateKey(filepath.Join(*dataDir, "log.key"))
	if err != nil {
		return err
	}
	store, err := auditfile.Open(ctx, auditfile.Config{Dir: filepath.Join(*dataDir, "audit")})
	if err != nil {
		return err
	}
	defer store.Close()
	signer, _ := audit.NewNoteSigner("gateway.example/audit", key.Signer())
	verifier, _ := audit.NewVerifier("gateway.example/audit", key.PublicKey())
	auditLog, err := audit.New(ctx, audit.Config{Store: store, Signer: signer, Verifier: verifier})
	if err != nil {
		return err
	}
	events, _ := audit.NewEventBuilder(audit.BuilderConfig{})
	rate := map[string]budget.Limit{mcp.SurfaceID: budget.PerSecond(50)} // per agent
	limits, err := budget.NewLimits(budget.LimiterConfig{Store: budget.NewMemRates(nil), Surface: mcp.SurfaceID, Limit: rate[mcp.SurfaceID]}, rate)
	if err != nil {
		return err
	}

	// The MCP gateway: the upstream's tools, classified by their own
	// readOnlyHint, each call decided by a Kernel trusting only the issuer.
	gw, err := mcp.New(ctx, mcp.Config{
		Upstreams: map[string]mcp.Dialer{"files": mcp.HTTPUpstream(*upstream, nil)},
		NewKernelConfig: func(reg *capability.ToolRegistry) (talos.KernelConfig, error) {
			v, err := capability.NewVerifier(capability.Config{TrustedIssuers: []identity.DID{issuer},
				Revocations: capability.NewMemRevocationStore(nil), Registry: reg})
			return talos.KernelConfig{Authorizer: v, Limits: limits, Audit: auditLog, Events: events}, err
		},
	})
	if err != nil {
		return err
	}
	defer gw.Close()

	// Agents are their did:key: any key may sign, the capability decides.
	routes, _ := talos.NewRouteTable([]talos.Route{mcp.Route()})
	attester, err := talos.NewAttester(talos.AttesterConfig{Routes: routes,
		Attestation: identity.AttestationVerifierConfig{Keys: identity.DIDKeys(nil), Nonces: identity.NewMemNonceStore(1 << 20)}})
	if err != nil {
		return err
	}
	audits, err := auditapi.New(auditapi.Config{Log: auditLog, Store: store}) // entries private: no reader
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle(mcp.Pattern, attester.Wrap(gw.Handler()))
	audits.Register(mux)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); srv.Close() }()
	ready(ln.Addr().String())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return audits.Publish(context.Background()) // the tile clients' tree head
}

// loadOrCreateKey reads the log's signing key, creating it on first run.
func loadOrCreateKey(path string) (*identity.Wallet, error) {
	text, err := os.ReadFile(path)
	if err == nil {
		return identity.ParseWalletText(text)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	w, err := identity.GenerateWallet("audit-log")
	if err != nil {
		return nil, err
	}
	text, _ = w.MarshalPrivateText()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	return w, os.WriteFile(path, text, 0o600)
}
