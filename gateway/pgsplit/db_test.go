package pgsplit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/talosgo/talos/internal/testenv"
)

// tcpProxy forwards connections from a loopback port to a target address. It
// can be stopped (closing the listener and every open connection) and
// started again on the same port: a replica that goes away and comes back.
type tcpProxy struct {
	target string
	addr   string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	t.Helper()
	p := &tcpProxy{target: target, conns: map[net.Conn]struct{}{}}
	p.start(t)
	t.Cleanup(p.stop)
	return p
}

func (p *tcpProxy) start(t *testing.T) {
	t.Helper()
	addr := p.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	for range 50 { // the port may linger briefly after stop
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("proxy listen: %v", err)
	}
	p.mu.Lock()
	p.ln = ln
	p.addr = ln.Addr().String()
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.pipe(c)
			}()
		}
	}()
}

func (p *tcpProxy) pipe(c net.Conn) {
	u, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil {
		p.mu.Unlock()
		c.Close()
		u.Close()
		return
	}
	p.conns[c], p.conns[u] = struct{}{}, struct{}{}
	p.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); io.Copy(u, c); u.Close() }()
	go func() { defer wg.Done(); io.Copy(c, u); c.Close() }()
	wg.Wait()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, u)
	p.mu.Unlock()
}

func (p *tcpProxy) stop() {
	p.mu.Lock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// dsnVia returns dsn with its host replaced by addr and application_name set.
func dsnVia(t *testing.T, dsn, addr, app string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatalf("TALOS_TEST_POSTGRES_URL: %v", err)
	}
	if addr != "" {
		u.Host = addr
	}
	q := u.Query()
	q.Set("application_name", app)
	q.Set("connect_timeout", "2")
	u.RawQuery = q.Encode()
	return u.String()
}

func whoAnswered(ctx context.Context, t *testing.T, db *DB) string {
	t.Helper()
	var app string
	if err := db.ReadRow(ctx, []any{&app}, "SELECT current_setting('application_name')"); err != nil {
		t.Fatalf("read failed: %v", err)
	}
	return app
}

func TestReadWriteSplitReplicaGoesAwayAndReturns(t *testing.T) {
	base := testenv.PostgresURL(t)
	host, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	proxy := newTCPProxy(t, host.Host)
	ctx := t.Context()
	db, err := Connect(ctx, dsnVia(t, base, "", "talos-primary"), dsnVia(t, base, proxy.addr, "talos-replica"),
		BreakerConfig{FailureThreshold: 2, OpenDuration: 200 * time.Millisecond, HalfOpenProbes: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	table := uniqueTable()
	if _, err := db.Exec(ctx, "CREATE TABLE "+table+" (k int PRIMARY KEY, v text)"); err != nil {
		t.Fatal(err)
	}
	defer db.Exec(context.Background(), "DROP TABLE IF EXISTS "+table)
	if _, err := db.Exec(ctx, "INSERT INTO "+table+" VALUES (1, 'one')"); err != nil {
		t.Fatal(err)
	}

	if got := whoAnswered(ctx, t, db); got != "talos-replica" {
		t.Fatalf("healthy replica: read answered by %q", got)
	}
	var v string
	if err := db.ReadRow(ctx, []any{&v}, "SELECT v FROM "+table+" WHERE k = $1", 1); err != nil || v != "one" {
		t.Fatalf("read through replica: %q, %v", v, err)
	}
	// A query error is the caller's, not the replica's: no fallback, no trip.
	if err := db.ReadRow(ctx, []any{&v}, "SELECT v FROM "+table+" WHERE k = $1", 2); !errors.Is(err, pgx.ErrNoRows) {
		t.Fatalf("missing row: %v, want pgx.ErrNoRows", err)
	}
	var pe *pgconn.PgError
	if err := db.ReadRow(ctx, []any{&v}, "SELECT nope FROM "+table); !errors.As(err, &pe) {
		t.Fatalf("bad column: %v, want a PgError", err)
	}
	if s := db.Breaker().State(); s != Closed {
		t.Fatalf("query errors changed the breaker to %v", s)
	}

	// The replica goes away: every read still succeeds, answered by the primary.
	proxy.stop()
	for i := range 5 {
		if got := whoAnswered(ctx, t, db); got != "talos-primary" {
			t.Fatalf("replica down, read %d answered by %q", i, got)
		}
	}
	if s := db.Breaker().State(); s != Open {
		t.Fatalf("breaker %v with the replica down, want open", s)
	}
	st := db.Stats()
	if st.FallbackReads != 2 {
		t.Fatalf("fallback reads %d, want 2 (the threshold; then the breaker is open)", st.FallbackReads)
	}
	if err := db.PingReplica(ctx); err == nil {
		t.Fatal("PingReplica succeeded with the replica down")
	}
	// Writes are unaffected.
	if _, err := db.Exec(ctx, "INSERT INTO "+table+" VALUES (2, 'two')"); err != nil {
		t.Fatalf("write with replica down: %v", err)
	}

	// The replica comes back: after the open duration a probe closes the breaker.
	proxy.start(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got := whoAnswered(ctx, t, db); got == "talos-replica" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("reads never returned to the replica (breaker %v)", db.Breaker().State())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if s := db.Breaker().State(); s != Closed {
		t.Fatalf("breaker %v after recovery, want closed", s)
	}
	if err := db.ReadRow(ctx, []any{&v}, "SELECT v FROM "+table+" WHERE k = $1", 2); err != nil || v != "two" {
		t.Fatalf("read after recovery: %q, %v", v, err)
	}
}

func TestNoReplicaReadsPrimary(t *testing.T) {
	base := testenv.PostgresURL(t)
	ctx := t.Context()
	db, err := Connect(ctx, dsnVia(t, base, "", "talos-primary"), "", BreakerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := whoAnswered(ctx, t, db); got != "talos-primary" {
		t.Fatalf("answered by %q", got)
	}
	if err := db.PingReplica(ctx); err != nil {
		t.Fatalf("PingReplica without a replica: %v", err)
	}
}

func TestConnectHidesDSN(t *testing.T) {
	_, err := Connect(t.Context(), "postgres://u:hunter2-secret@127.0.0.1:1/db?sslmode=bogus", "", BreakerConfig{})
	if err == nil {
		t.Fatal("bad DSN accepted")
	}
	if s := err.Error(); strings.Contains(s, "hunter2") {
		t.Fatalf("error leaks the password: %s", s)
	}
}

func TestNewRequiresPrimary(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without a primary succeeded")
	}
}

// uniqueTable returns a table name no other test uses.
func uniqueTable() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "t" + hex.EncodeToString(b)
}
