package postgres_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/audit/audittest"
	"github.com/talosgo/talos/audit/postgres"
	"github.com/talosgo/talos/internal/testenv"
)

func pool(t *testing.T) *pgxpool.Pool {
	t.Helper()
	p, err := pgxpool.New(context.Background(), testenv.PostgresURL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return p
}

func newStore(t *testing.T, db postgres.DB, prefix string) *postgres.Store {
	t.Helper()
	s, err := postgres.New(postgres.Config{DB: db, TablePrefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func dropTables(t *testing.T, db *pgxpool.Pool, prefix string) {
	t.Cleanup(func() {
		for _, tbl := range []string{"audit_head", "audit_entries", "audit_hashes"} {
			db.Exec(context.Background(), "DROP TABLE IF EXISTS "+prefix+tbl)
		}
	})
}

func TestConformance(t *testing.T) {
	db := pool(t)
	audittest.Run(t, func(t *testing.T) audit.Store {
		prefix := testenv.Unique(t) + "_"
		dropTables(t, db, prefix)
		return newStore(t, db, prefix)
	})
}

// Several clients, each with its own connection pool and Log, append to one
// shared log; the database sequences them into one consistent tree.
func TestSeveralAppenders(t *testing.T) {
	ctx := context.Background()
	prefix := testenv.Unique(t) + "_"
	first := pool(t)
	dropTables(t, first, prefix)
	newStore(t, first, prefix)
	const clients, each = 4, 60
	var wg sync.WaitGroup
	logs := make([]*audit.Log, clients)
	for c := range clients {
		logs[c] = audittest.NewLog(t, newStore(t, pool(t), prefix))
	}
	for c, l := range logs {
		for g := range 3 {
			wg.Go(func() {
				for i := range each / 3 {
					if _, err := l.Append(ctx, audittest.Event(c*1000+g*100+i)); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	var roots []audit.Hash
	for _, l := range logs {
		cp, err := l.Checkpoint(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if cp.Size != clients*each {
			t.Fatalf("size %d", cp.Size)
		}
		roots = append(roots, cp.Hash)
	}
	for _, r := range roots[1:] {
		if r != roots[0] {
			t.Fatal("clients see different trees")
		}
	}
	if _, err := logs[0].Verify(ctx); err != nil {
		t.Fatal(err)
	}
}

// Several operating-system processes (re-executions of this test binary)
// append to one shared log at once.
const childEnv = "TALOS_AUDIT_PG_CHILD_PREFIX"

func TestAppenderProcess(t *testing.T) {
	prefix := os.Getenv(childEnv)
	if prefix == "" {
		t.Skip("helper process for TestSeveralProcesses")
	}
	ctx := context.Background()
	l := audittest.NewLog(t, newStore(t, pool(t), prefix))
	base, _ := strconv.Atoi(os.Getenv(childEnv + "_BASE"))
	for i := range 40 {
		if _, err := l.Append(ctx, audittest.Event(base+i)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSeveralProcesses(t *testing.T) {
	ctx := context.Background()
	prefix := testenv.Unique(t) + "_"
	db := pool(t)
	dropTables(t, db, prefix)
	newStore(t, db, prefix)
	const procs = 3
	cmds := make([]*exec.Cmd, procs)
	for p := range procs {
		cmd := exec.Command(os.Args[0], "-test.run=^TestAppenderProcess$", "-test.count=1")
		cmd.Env = append(os.Environ(), childEnv+"="+prefix, childEnv+"_BASE="+strconv.Itoa(p*1000))
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds[p] = cmd
		t.Cleanup(func() {
			if t.Failed() {
				t.Log(out.String())
			}
		})
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("appender process: %v", err)
		}
	}
	l := audittest.NewLog(t, newStore(t, db, prefix))
	cp, err := l.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Size != procs*40 {
		t.Fatalf("size %d", cp.Size)
	}
	seen := map[string]bool{}
	after := ""
	for {
		page, err := l.Query(ctx, audit.Query{After: after, Limit: 50})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Entries {
			seen[e.Event.RequestID] = true
		}
		if page.Next == "" {
			break
		}
		after = page.Next
	}
	if len(seen) != procs*40 {
		t.Fatalf("query found %d distinct events", len(seen))
	}
}
