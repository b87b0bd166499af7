package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel/trace"

	"github.com/talosgo/talos"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/admin"
	"github.com/talosgo/talos/gateway/config"
	"github.com/talosgo/talos/gateway/otelredact"
	"github.com/talosgo/talos/gateway/pgsplit"
	"github.com/talosgo/talos/gateway/secrets"
	"github.com/talosgo/talos/gateway/serve"
	"github.com/talosgo/talos/gateway/stats"
	"github.com/talosgo/talos/gateway/telemetry"
	"github.com/talosgo/talos/identity"
)

// Server is the Talos service: it owns the data directory, the server
// identity, the sealed secrets, the optional Redis and PostgreSQL clients,
// tracing, and the HTTP routes. It is safe for concurrent use once New has
// returned.
type Server struct {
	cfg Config
	log *slog.Logger

	wallet    *identity.Wallet
	secrets   *secrets.Vault
	adminHash [32]byte
	// recoveryKey checks DataDir/admin-recovery.json (admin.RecoveryKey
	// of the master key).
	recoveryKey []byte

	db    *pgsplit.DB           // nil without PostgreSQL
	redis redis.UniversalClient // nil without Redis

	tel      *telemetry.Telemetry // tracer and meter providers, GET /metrics
	tracer   trace.Tracer
	redactor *otelredact.Redactor

	configs *config.Service
	prop    *propagation    // change propagation between replicas (replicas.go)
	core    *core           // kernel, gateway, A2A and audit services
	stats   *stats.Recorder // decision statistics, fed by the Kernels' meter (statswire.go)
	health  serve.Health    // GET /health/live and /health/ready
	// dirProbe caches the data directory readiness probe.
	dirProbe dataDirProbe

	mux     *http.ServeMux
	handler http.Handler
	life    *serve.Lifecycle
}

// New prepares a server from cfg: it creates the data directory, loads or
// creates the master key, connects the configured back-ends, unseals or
// creates the server identity and, on first start, prints the DID and the
// one-time admin bootstrap credential to cfg's output (stdout in main). It
// serves nothing until Serve or Run.
func New(ctx context.Context, cfg Config, log *slog.Logger) (_ *Server, err error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// Before anything is created: production refuses per-process state
	// unless -single-node (statescope.go).
	if err := checkStateScope(cfg, log); err != nil {
		return nil, err
	}
	if cfg.tablePrefix == "" {
		cfg.tablePrefix = "talos_"
	}
	if cfg.stdout == nil {
		cfg.stdout = os.Stdout
	}
	s := &Server{cfg: cfg, log: log, redactor: otelredact.New(otelredact.Config{}), life: serve.NewLifecycle(log)}
	defer func() {
		if err != nil {
			s.Close(context.WithoutCancel(ctx))
		}
	}()

	if err := prepareDataDir(cfg.DataDir); err != nil {
		return nil, err
	}
	if err := s.setupTelemetry(ctx); err != nil {
		return nil, err
	}
	master, generated, err := loadMasterKey(cfg)
	if err != nil {
		return nil, err
	}
	if generated {
		log.Warn("generated a master key file; anyone who can read the data directory can open its secrets (set " + masterKeyEnv + " to keep the key off the disk)")
	}
	s.redactor.AddSecret(contracts.EncodeBase64URL(master))

	if cfg.PostgresURL != "" {
		db, err := pgsplit.Connect(ctx, cfg.PostgresURL, cfg.PostgresReplicaURL, pgsplit.BreakerConfig{
			FailureThreshold: cfg.BreakerFailures,
			OpenDuration:     cfg.BreakerOpen,
			HalfOpenProbes:   cfg.BreakerProbes,
			OnStateChange: func(from, to pgsplit.State) {
				log.Warn("PostgreSQL replica breaker", "from", from.String(), "to", to.String())
			},
		})
		if err != nil {
			return nil, err
		}
		s.db = db
		s.OnShutdown("postgres", func(context.Context) error { db.Close(); return nil })
		if err := db.PingPrimary(ctx); err != nil {
			return nil, errors.New("postgres: the primary does not answer")
		}
		// Read-your-writes marks shared by the replicas (readsplit.go).
		if err := s.setupReadSplit(ctx); err != nil {
			return nil, err
		}
	}
	if cfg.redisConfigured() {
		// One node, a Cluster or Sentinel (replicas.go).
		rc, err := newRedisClient(cfg)
		if err != nil {
			return nil, err
		}
		s.redis = rc
		s.OnShutdown("redis", func(context.Context) error { return rc.Close() })
	}

	// Sealed secrets (secretswire.go); every plaintext read is registered
	// with the trace redactor.
	if s.secrets, err = openSecrets(ctx, s, master); err != nil {
		return nil, err
	}
	if s.recoveryKey, err = admin.RecoveryKey(master); err != nil {
		return nil, err
	}
	clear(master)
	if s.wallet, err = loadIdentity(ctx, s.secrets); err != nil {
		return nil, err
	}
	cred, hash, err := bootstrapAdmin(ctx, s.secrets)
	if err != nil {
		return nil, err
	}
	s.adminHash = hash
	fmt.Fprintf(cfg.stdout, "talos server DID: %s\n", s.wallet.DID().String())
	if cred != "" {
		s.redactor.AddSecret(cred)
		fmt.Fprintf(cfg.stdout, "admin bootstrap credential (shown once, only its hash is stored):\n  %s\n", cred)
	}
	if cfg.KEKRotation > 0 {
		s.Go("kek-rotation", s.secrets.RotateEvery(cfg.KEKRotation))
	}

	s.setupReadyChecks()
	if s.core, err = newCore(ctx, s); err != nil {
		return nil, err
	}
	// Config versions (configwire.go): every change is audited, or not applied.
	if s.configs, err = openConfigs(ctx, s, s.core); err != nil {
		return nil, err
	}
	// Changes reach the other replicas (replicas.go).
	if err := s.setupPropagation(ctx); err != nil {
		return nil, err
	}

	s.mux = http.NewServeMux()
	s.mountServices(s.mux)
	s.handler = talos.AccessLog(log, s.tel.Middleware(s.withStateScope(s.withReadSplit(s.mux))))
	return s, nil
}

// DID returns the server identity.
func (s *Server) DID() identity.DID { return s.wallet.DID() }

// Handler returns the HTTP handler (tracing around every route).
func (s *Server) Handler() http.Handler { return s.handler }

// TracerProvider returns the server's tracer provider (exports redacted
// spans); main installs it as the global provider.
func (s *Server) TracerProvider() trace.TracerProvider { return s.tel.TracerProvider() }
