package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/gateway/admin"
	"github.com/talosgo/talos/gateway/config"
	"github.com/talosgo/talos/gateway/notify"
)

// Many replicas, one truth (issue 15): the Redis client for one node, a
// Cluster or Sentinel; change propagation between replicas; jobs that run
// once per interval cluster-wide (replicas_jobs.go).

// redisConfigured reports whether any Redis is configured.
func (c *Config) redisConfigured() bool {
	return c.RedisURL != "" || len(c.RedisClusterAddrs) > 0 || len(c.RedisSentinelAddrs) > 0
}

// validateRedis checks the Cluster and Sentinel settings.
func (c *Config) validateRedis() error {
	bad := func(msg string) error { return contracts.New(contracts.CodeInvalidInput, "config: "+msg) }
	switch {
	case len(c.RedisClusterAddrs) > 0 && len(c.RedisSentinelAddrs) > 0:
		return bad("set a Redis Cluster or Redis Sentinels, not both")
	case len(c.RedisSentinelAddrs) > 0 && c.RedisSentinelName == "":
		return bad("Redis Sentinels need TALOS_REDIS_SENTINEL_MASTER")
	case c.RedisSentinelName != "" && len(c.RedisSentinelAddrs) == 0:
		return bad("TALOS_REDIS_SENTINEL_MASTER needs TALOS_REDIS_SENTINEL_ADDRS")
	}
	if len(c.RedisClusterAddrs) > 0 && c.RedisURL != "" {
		if opt, err := redis.ParseURL(c.RedisURL); err == nil && opt.DB != 0 {
			return bad("a Redis Cluster has only database 0 (TALOS_REDIS_URL names another)")
		}
	}
	return nil
}

// parseAddrList reads comma-separated host:port addresses.
func parseAddrList(dst *[]string, v string) error {
	*dst = nil
	if strings.TrimSpace(v) == "" {
		return nil
	}
	for _, a := range strings.Split(v, ",") {
		a = strings.TrimSpace(a)
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" {
			return errors.New("addresses must be comma-separated host:port")
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return errors.New("addresses must be comma-separated host:port")
		}
		*dst = append(*dst, a)
	}
	return nil
}

// newRedisClient builds the configured client: a ClusterClient on
// RedisClusterAddrs, a Sentinel failover client on RedisSentinelAddrs, or
// one node from RedisURL. RedisURL's username, password and TLS go with
// the Cluster and Sentinel addresses too (and its database with Sentinel).
func newRedisClient(cfg Config) (redis.UniversalClient, error) {
	var base *redis.Options
	if cfg.RedisURL != "" {
		opt, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return nil, errors.New("redis: invalid URL") // the URL may hold a password: not echoed
		}
		base = opt
	}
	if base == nil {
		base = &redis.Options{}
	}
	tlsCfg := base.TLSConfig
	if tlsCfg != nil && (len(cfg.RedisClusterAddrs) > 0 || len(cfg.RedisSentinelAddrs) > 0) {
		// The URL's host is not the nodes': verify each by its own name.
		tlsCfg = tlsCfg.Clone()
		tlsCfg.ServerName = ""
	}
	switch {
	case len(cfg.RedisClusterAddrs) > 0:
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: cfg.RedisClusterAddrs, Username: base.Username, Password: base.Password, TLSConfig: tlsCfg,
		}), nil
	case len(cfg.RedisSentinelAddrs) > 0:
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: cfg.RedisSentinelName, SentinelAddrs: cfg.RedisSentinelAddrs,
			Username: base.Username, Password: base.Password, DB: base.DB, TLSConfig: tlsCfg,
		}), nil
	}
	return redis.NewClient(base), nil
}

// isRedisCluster reports whether c is a Cluster client.
func isRedisCluster(c redis.UniversalClient) bool {
	_, ok := c.(*redis.ClusterClient)
	return ok
}

// capabilityRedisPrefix is the capability stores' key prefix: on a Cluster
// the revocation feed needs a hash tag (capability/redis).
func (s *Server) capabilityRedisPrefix() string {
	if s.redis != nil && isRedisCluster(s.redis) {
		return "{talos-capability}:"
	}
	return ""
}

// Kinds of changes propagated besides the admin document kinds
// (admin.KindPrincipal and the others, sent as they are): a config
// document is "config.<kind>:<name>".
const configChangePrefix = "config."

// propagatePoll is how often a replica reads the change versions, the
// bound on how late a change whose message was lost is applied.
const propagatePoll = time.Second

// propagation tells the other replicas about this replica's changes and
// applies theirs (gateway/notify): admin documents by [admin.Handler.Reload],
// budget config documents by setting the budget they define. Without a
// shared store it only applies this process's config documents.
type propagation struct {
	s   *Server
	bus *notify.Bus // nil: no shared store

	applyMu sync.Mutex
	// configBudgets are the budgets of the config documents of kind
	// "budget" by document name; they override the admin API's budget of
	// the same scope.
	configBudgets map[string]budget.Scope
	// policies are the routing policy config documents, installed in the
	// LLM proxy (policywire.go).
	policies routingPolicies

	pendingMu sync.Mutex
	pending   map[string]bool // changes whose publication failed
	wake      chan struct{}

	errMu   sync.Mutex
	lastLog time.Time

	started atomic.Int64 // unix nanoseconds when the bus began to run; 0: not yet
}

// setupPropagation starts change propagation over Redis (when configured)
// or PostgreSQL. Call it after the core and the config service exist.
func (s *Server) setupPropagation(ctx context.Context) error {
	p := &propagation{s: s, configBudgets: map[string]budget.Scope{}, pending: map[string]bool{}, wake: make(chan struct{}, 1),
		policies: routingPolicies{byName: newPolicyMap()}}
	var tr notify.Transport
	switch {
	case s.redis != nil:
		prefix := ""
		if tp := s.cfg.tablePrefix; tp != "talos_" {
			prefix = tp + "notify:"
		}
		tr = notify.NewRedis(s.redis, prefix)
	case s.db != nil:
		pg, err := notify.NewPostgres(s.db.Primary(), s.cfg.tablePrefix)
		if err != nil {
			return err
		}
		if err := pg.Migrate(ctx); err != nil {
			return err
		}
		tr = pg
	}
	s.prop = p
	// The budget config documents stored before this start: enforced
	// before the first request, whatever the change versions say.
	if err := p.loadStoredConfigBudgets(ctx); err != nil {
		return err
	}
	if err := p.loadStoredConfigPolicies(ctx); err != nil {
		return err
	}
	if tr == nil {
		return nil
	}
	bus, err := notify.New(notify.Config{Transport: tr, Apply: p.apply, Poll: propagatePoll, OnError: p.logError})
	if err != nil {
		return err
	}
	p.bus = bus
	s.Go("change-propagation", func(ctx context.Context) error {
		p.started.Store(time.Now().UnixNano())
		return bus.Run(ctx)
	})
	s.Go("change-republish", p.republish)
	s.health.Add("propagation", false, p.check)
	return nil
}

// check is the readiness check: degraded while neither the subscription
// nor the version read has worked for three poll periods (counted from
// the start before the first read; nothing to report before the workers
// run).
func (p *propagation) check(context.Context) error {
	started := p.started.Load()
	if started == 0 {
		return nil
	}
	sub, last := p.bus.Status()
	if last.IsZero() {
		last = time.Unix(0, started)
	}
	if !sub && time.Since(last) > 3*propagatePoll {
		return errors.New("change propagation: no subscription and no recent version read")
	}
	return nil
}

// logError logs propagation failures, at most one line every 10 s.
func (p *propagation) logError(err error) {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	if time.Since(p.lastLog) < 10*time.Second {
		return
	}
	p.lastLog = time.Now()
	p.s.log.Warn("change propagation failed; other replicas catch up when the store answers", "err", err)
}

// adminChanged is admin.Config.OnChange: the change is already applied
// here, the other replicas are told. It does not block.
func (s *Server) adminChanged(kind string) {
	if s.prop != nil {
		s.prop.publishLater(kind)
	}
}

// publishLater queues kind for publication by republish.
func (p *propagation) publishLater(kind string) {
	if p.bus == nil {
		return
	}
	p.pendingMu.Lock()
	p.pending[kind] = true
	p.pendingMu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// republish publishes the queued changes, and those whose publication
// failed again every second until the store takes them.
func (p *propagation) republish(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-p.wake:
		}
		p.pendingMu.Lock()
		kinds := make([]string, 0, len(p.pending))
		for k := range p.pending {
			kinds = append(kinds, k)
		}
		clear(p.pending)
		p.pendingMu.Unlock()
		for _, k := range kinds {
			if _, err := p.bus.Publish(ctx, k); err != nil {
				p.logError(err)
				if contracts.CodeOf(err) == contracts.CodeInvalidInput {
					continue // never publishable; the version read cannot help either
				}
				p.pendingMu.Lock()
				p.pending[k] = true
				p.pendingMu.Unlock()
			}
		}
	}
}

// configChanged applies a config document change here at once and tells
// the other replicas.
func (p *propagation) configChanged(ctx context.Context, kind, name string) {
	change := configChangePrefix + kind + ":" + name
	if err := p.apply(ctx, change); err != nil {
		p.s.log.Warn("config document stored but not applied here; retried with the next change read", "kind", kind, "name", name, "err", err)
	}
	p.publishLater(change)
}

// apply is notify.Config.Apply.
func (p *propagation) apply(ctx context.Context, change string) error {
	p.applyMu.Lock()
	defer p.applyMu.Unlock()
	if rest, ok := strings.CutPrefix(change, configChangePrefix); ok {
		kind, name, _ := strings.Cut(rest, ":")
		if kind == configPolicyKind {
			return p.loadConfigPolicy(ctx, name)
		}
		if kind != "budget" {
			return nil // read from the config store on each use: nothing cached
		}
		if err := p.loadConfigBudget(ctx, name); err != nil {
			return err
		}
		p.applyConfigBudgets()
		return nil
	}
	if change == upstreamChangeKind {
		if ua := p.s.core.upstreams; ua != nil {
			return ua.sync(ctx)
		}
		return nil
	}
	// An admin document: re-read them all, then lay the config budgets
	// over the admin API's.
	if err := p.s.core.admin.Reload(ctx); err != nil {
		return err
	}
	p.applyConfigBudgets()
	return nil
}

// loadConfigBudget reads the latest budget document name into
// configBudgets. A document without max_usd sets no cap.
func (p *propagation) loadConfigBudget(ctx context.Context, name string) error {
	v, err := p.s.configs.Latest(ctx, "budget", name)
	if errors.Is(err, config.ErrNotFound) || contracts.CodeOf(err) == contracts.CodeNotFound {
		delete(p.configBudgets, name)
		return nil
	}
	if err != nil {
		return err
	}
	sc, ok, err := configBudgetScope(v.Document)
	if err != nil {
		return err
	}
	old, had := p.configBudgets[name]
	if ok {
		p.configBudgets[name] = sc
	} else {
		delete(p.configBudgets, name)
	}
	if had && (!ok || old.ID != sc.ID) {
		// The document left its old scope: restore the admin API's.
		return p.s.core.admin.Reload(ctx)
	}
	return nil
}

// loadStoredConfigBudgets loads every stored budget config document: the
// names from PostgreSQL's config table (gateway/config/postgres layout) or
// from the file store's lines (DataDir/config-versions.jsonl, checked by
// config.OpenFile before).
func (p *propagation) loadStoredConfigBudgets(ctx context.Context) error {
	var names []string
	s := p.s
	if s.db != nil {
		rows, err := s.db.Primary().Query(ctx, `SELECT DISTINCT name FROM `+pgx.Identifier{s.cfg.tablePrefix + "config_versions"}.Sanitize()+` WHERE kind = 'budget'`)
		if err != nil {
			return err
		}
		if names, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return err
		}
	} else {
		f, err := os.Open(filepath.Join(s.cfg.DataDir, configFileName))
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		defer f.Close()
		seen := map[string]bool{}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 4<<20)
		for sc.Scan() {
			var v struct{ Kind, Name string }
			if json.Unmarshal(sc.Bytes(), &v) == nil && v.Kind == "budget" && !seen[v.Name] {
				seen[v.Name] = true
				names = append(names, v.Name)
			}
		}
		if err := sc.Err(); err != nil {
			return err
		}
	}
	p.applyMu.Lock()
	defer p.applyMu.Unlock()
	for _, n := range names {
		if err := p.loadConfigBudget(ctx, n); err != nil {
			return fmt.Errorf("budget config document %q: %w", n, err)
		}
	}
	p.applyConfigBudgets()
	return nil
}

// applyConfigBudgets sets every config document budget, in name order
// (of two documents for one scope, the later name wins).
func (p *propagation) applyConfigBudgets() {
	names := make([]string, 0, len(p.configBudgets))
	for n := range p.configBudgets {
		names = append(names, n)
	}
	sort.Strings(names)
	b := p.s.core.admin.Budgets()
	for _, n := range names {
		b.Set(p.configBudgets[n])
	}
}

// configBudgetScope maps a stored contract ai_gateway/budget document (the
// config service checked it) to the hard budget it defines: scope_type
// team or key and scope_id give the scope (admin.TeamScope, KeyScope),
// max_usd the limit, period daily or monthly (default) the period.
// used_usd and reset_at are informational: spend lives in the budget
// store. ok is false when the document sets no max_usd.
func configBudgetScope(doc []byte) (budget.Scope, bool, error) {
	var d struct {
		ScopeType string   `json:"scope_type"`
		ScopeID   string   `json:"scope_id"`
		Period    string   `json:"period"`
		MaxUSD    *float64 `json:"max_usd"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return budget.Scope{}, false, err
	}
	if d.MaxUSD == nil {
		return budget.Scope{}, false, nil
	}
	id := admin.TeamScope(d.ScopeID)
	if d.ScopeType == "key" {
		id = admin.KeyScope(d.ScopeID)
	}
	// Rounded down to whole micro-USD (a stricter cap, never a looser one).
	if *d.MaxUSD < 0 || *d.MaxUSD > 1e12 {
		return budget.Scope{}, false, contracts.New(contracts.CodeInvalidInput, "budget document max_usd out of range")
	}
	micros := int64(math.Floor(*d.MaxUSD*1e6 + 1e-6))
	sc, err := admin.BudgetRequest{
		LimitUSD: fmt.Sprintf("%d.%06d", micros/1_000_000, micros%1_000_000), Mode: "hard", Period: d.Period,
	}.Scope(id)
	if err != nil {
		return budget.Scope{}, false, err
	}
	return sc, true, nil
}

// propagateConfig wraps the config routes' auth: a PUT that stored a
// document is applied here and told to the other replicas after it
// committed (config.Config.OnChange runs inside the write, too early).
func (s *Server) propagateConfig(auth func(http.HandlerFunc) http.HandlerFunc) func(http.HandlerFunc) http.HandlerFunc {
	return func(next http.HandlerFunc) http.HandlerFunc {
		return auth(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodPut || s.prop == nil {
				next(w, r)
				return
			}
			rec := &propStatusWriter{ResponseWriter: w}
			next(rec, r)
			if rec.status == http.StatusOK || rec.status == http.StatusCreated {
				s.prop.configChanged(context.WithoutCancel(r.Context()), r.PathValue("kind"), r.PathValue("name"))
			}
		})
	}
}

// propStatusWriter records the status a handler wrote.
type propStatusWriter struct {
	http.ResponseWriter
	status int
}

func (w *propStatusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *propStatusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *propStatusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
