package pgsplit

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/talosgo/talos/internal/testenv"
)

// readCount reads the row count of table through db, and whether a standby
// answered.
func readCount(ctx context.Context, t *testing.T, db *DB, table string) (n int, standby bool) {
	t.Helper()
	err := db.Read(ctx, func(ctx context.Context, q Querier) error {
		return q.QueryRow(ctx, `SELECT count(*), pg_is_in_recovery() FROM `+table).Scan(&n, &standby)
	})
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return n, standby
}

// eventually polls cond until it holds or 20 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 20 s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestReadYourWritesOnStreamingReplica(t *testing.T) {
	primaryDSN, replicaDSN := testenv.PostgresURL(t), testenv.PostgresReplicaURL(t)
	ctx := context.Background()
	db, err := Connect(ctx, primaryDSN, replicaDSN, BreakerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	standby, err := pgxpool.New(ctx, replicaDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer standby.Close()
	var inRecovery bool
	if err := standby.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&inRecovery); err != nil || !inRecovery {
		t.Fatalf("TALOS_TEST_POSTGRES_REPLICA_URL is not a standby (in recovery: %v, %v)", inRecovery, err)
	}

	table := pgx.Identifier{"pgsplit_ryw_" + uniqueTable()}.Sanitize()
	if _, err := db.Exec(ctx, `CREATE TABLE `+table+` (v int)`); err != nil {
		t.Fatal(err)
	}
	defer db.Exec(context.Background(), `DROP TABLE `+table) //nolint:errcheck
	eventually(t, "the table on the standby", func() bool {
		var ok bool
		return standby.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&ok) == nil && ok
	})

	// A caller with no write reads the replica.
	if n, onStandby := readCount(ctx, t, db, table); n != 0 || !onStandby {
		t.Fatalf("read without writes: %d rows, standby %v; want 0 rows from the standby", n, onStandby)
	}
	if s := db.Stats(); s.ReplicaReads != 1 || s.PrimaryReads != 0 {
		t.Fatalf("stats after a replica read: %+v", s)
	}

	// Replay paused: the standby keeps what it has and sees no new write.
	// Other packages' tests pause it too: one at a time.
	unlock := pauseLock(t, db.Primary())
	defer unlock()
	if _, err := standby.Exec(ctx, `SELECT pg_wal_replay_pause()`); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			if _, err := standby.Exec(context.Background(), `SELECT pg_wal_replay_resume()`); err != nil {
				t.Errorf("resume replay: %v", err)
			}
		}
	}
	defer resume()

	alice := WithCaller(ctx, "alice")
	if _, err := db.Exec(alice, `INSERT INTO `+table+` VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	if err := db.Wrote(alice); err != nil {
		t.Fatal(err)
	}
	// alice sees her write: from the primary, the replica being behind it.
	for range 3 {
		if n, onStandby := readCount(alice, t, db, table); n != 1 || onStandby {
			t.Fatalf("alice after her write: %d rows, standby %v; want 1 row from the primary", n, onStandby)
		}
	}
	// bob, who did not write, still reads the (paused) replica and does
	// not see it: the replica really is behind, and reads really go there.
	bob := WithCaller(ctx, "bob")
	if n, onStandby := readCount(bob, t, db, table); n != 0 || !onStandby {
		t.Fatalf("bob: %d rows, standby %v; want 0 rows from the paused standby", n, onStandby)
	}
	s := db.Stats()
	if s.LaggingReads != 3 || s.ReplicaReads != 2 || s.PrimaryReads != 3 || s.PendingMarks != 1 || s.FallbackReads != 0 {
		t.Fatalf("stats while paused: %+v", s)
	}
	if s.BreakerState != Closed {
		t.Fatalf("a lagging replica opened the breaker: %v", s.BreakerState)
	}

	// Replay resumed: once the standby is past alice's write she reads it
	// there, and her mark is gone.
	resume()
	eventually(t, "alice served by the standby", func() bool {
		n, onStandby := readCount(alice, t, db, table)
		if n != 1 {
			t.Fatalf("alice read %d rows; want 1", n)
		}
		return onStandby
	})
	if s := db.Stats(); s.PendingMarks != 0 {
		t.Fatalf("alice's mark kept after the replica replayed it: %+v", s)
	}
}

func TestReadYourWritesReplicaDownReadsPrimary(t *testing.T) {
	primaryDSN, replicaDSN := testenv.PostgresURL(t), testenv.PostgresReplicaURL(t)
	ctx := context.Background()
	db, err := Connect(ctx, primaryDSN, replicaDSN, BreakerConfig{FailureThreshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	table := pgx.Identifier{"pgsplit_ryw_" + uniqueTable()}.Sanitize()
	if _, err := db.Exec(ctx, `CREATE TABLE `+table+` (v int)`); err != nil {
		t.Fatal(err)
	}
	defer db.Exec(context.Background(), `DROP TABLE `+table) //nolint:errcheck
	alice := WithCaller(ctx, "alice")
	if _, err := db.Exec(alice, `INSERT INTO `+table+` VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	if err := db.Wrote(alice); err != nil {
		t.Fatal(err)
	}
	db.Replica().Close() // the replica is gone
	for _, c := range []context.Context{alice, WithCaller(ctx, "bob"), ctx} {
		if n, onStandby := readCount(c, t, db, table); n != 1 || onStandby {
			t.Fatalf("%q with the replica closed: %d rows, standby %v; want 1 row from the primary", CallerFrom(c), n, onStandby)
		}
	}
	s := db.Stats()
	if s.FallbackReads != 2 || s.PrimaryReads != 3 || s.ReplicaReads != 0 || s.BreakerState != Open {
		t.Fatalf("stats with the replica closed: %+v", s)
	}
}

func TestWroteWithoutCallerOrReplica(t *testing.T) {
	ctx := context.Background()
	db, err := Connect(ctx, testenv.PostgresURL(t), "", BreakerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Wrote(WithCaller(ctx, "alice")); err != nil {
		t.Fatal(err)
	}
	if s := db.Stats(); s.PendingMarks != 0 {
		t.Fatalf("a mark without a replica: %+v", s)
	}
	if got := CallerFrom(WithCaller(ctx, "")); got != "" {
		t.Fatalf("empty caller: %q", got)
	}
}

func TestMarksSweep(t *testing.T) {
	m := marks{max: 1000, byKey: map[string]int64{}}
	for i := range sweepMarks + 2 {
		m.record(string(rune('a'+i%26))+string(rune('0'+i/26)), int64(i))
	}
	m.record("late", 500)
	m.replayed("nobody", 100)
	if m.size() != 1 || m.need("late") != 500 {
		t.Fatalf("after a sweep at 100: size %d, need(late) %d; want only late's mark", m.size(), m.need("late"))
	}
}

func TestMarks(t *testing.T) {
	m := marks{max: 2, byKey: map[string]int64{}}
	if m.need("a") != 0 || m.need("") != 0 {
		t.Fatal("need without marks")
	}
	m.record("a", 10)
	m.record("a", 5) // an older position never lowers the mark
	if got := m.need("a"); got != 10 {
		t.Fatalf("need(a) = %d; want 10", got)
	}
	if got := m.need("b"); got != 0 {
		t.Fatalf("need(b) = %d; want 0", got)
	}
	m.replayed("a", 9)
	if got := m.need("a"); got != 10 {
		t.Fatalf("need(a) after replay to 9 = %d; want 10", got)
	}
	m.replayed("a", 10)
	if got := m.need("a"); got != 0 || m.size() != 0 {
		t.Fatalf("need(a) after replay to 10 = %d (size %d); want 0", got, m.size())
	}

	// Past max, the marks fold into the floor every caller waits for.
	m.record("a", 20)
	m.record("b", 30)
	m.record("c", 25)
	if m.size() != 1 {
		t.Fatalf("size after folding: %d; want 1", m.size())
	}
	for caller, want := range map[string]int64{"a": 30, "b": 30, "c": 30, "": 30, "d": 30} {
		if got := m.need(caller); got != want {
			t.Fatalf("need(%q) after folding = %d; want %d", caller, got, want)
		}
	}
	m.replayed("d", 30)
	if got := m.need("d"); got != 0 {
		t.Fatalf("need(d) after the floor replayed = %d", got)
	}
	if got := m.need("c"); got != 25 {
		t.Fatalf("need(c) = %d; want its own 25", got)
	}

	// An unknown position reads the primary until resolved, then waits for
	// the primary's position read after it.
	m.record("e", unknownLSN)
	if m.need("e") != unknownLSN {
		t.Fatal("unknown position not kept")
	}
	m.resolve("e", 40)
	if got := m.need("e"); got != 40 {
		t.Fatalf("need(e) after resolve = %d; want 40", got)
	}
	m.record("e", unknownLSN)
	m.record("e", 41) // a later known write replaces the unknown one
	if got := m.need("e"); got != 41 {
		t.Fatalf("need(e) = %d; want 41", got)
	}
}

func TestReadIfAllowed(t *testing.T) {
	primaryDSN, replicaDSN := testenv.PostgresURL(t), testenv.PostgresReplicaURL(t)
	ctx := context.Background()
	db, err := Connect(ctx, primaryDSN, replicaDSN, BreakerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	standby := func(ctx context.Context) bool {
		var s bool
		if err := db.ReadIfAllowed(ctx, func(ctx context.Context, q Querier) error {
			return q.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&s)
		}); err != nil {
			t.Fatal(err)
		}
		return s
	}
	if standby(ctx) {
		t.Fatal("a read without WithReplicaReads went to the standby")
	}
	if ReplicaReadsAllowed(ctx) || !ReplicaReadsAllowed(WithReplicaReads(ctx)) {
		t.Fatal("ReplicaReadsAllowed")
	}
	if !standby(WithReplicaReads(ctx)) {
		t.Fatal("a read with WithReplicaReads did not go to the standby")
	}
	if s := db.Stats(); s.PrimaryReads != 1 || s.ReplicaReads != 1 {
		t.Fatalf("stats: %+v", s)
	}
}

// pauseReplayLock is the advisory lock that tests (examples/server's too)
// hold while they pause the shared test standby's replay.
const pauseReplayLock = 0x7a1055e1a

// pauseLock takes the pause lock on primary, waiting for another test's
// pause to end, and returns its release.
func pauseLock(t *testing.T, primary *pgxpool.Pool) (unlock func()) {
	t.Helper()
	conn, err := primary.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(context.Background(), `SELECT pg_advisory_lock($1)`, int64(pauseReplayLock)); err != nil {
		conn.Release()
		t.Fatal(err)
	}
	return func() {
		if _, err := conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, int64(pauseReplayLock)); err != nil {
			t.Error(err)
		}
		conn.Release()
	}
}

// Two DBs on one primary and standby stand for two server processes: with
// ShareMarks, a caller that wrote through A and reads through B sees its
// write while the standby's replay is paused; once the standby has caught
// up B serves it there, and the replayed marks are swept.
func TestReadYourWritesAcrossProcesses(t *testing.T) {
	primaryDSN, replicaDSN := testenv.PostgresURL(t), testenv.PostgresReplicaURL(t)
	ctx := context.Background()
	open := func() *DB {
		db, err := Connect(ctx, primaryDSN, replicaDSN, BreakerConfig{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(db.Close)
		return db
	}
	a, b := open(), open()
	marksTable := "pgsplit_marks_" + uniqueTable()
	for _, db := range []*DB{a, b} {
		if err := db.ShareMarks(ctx, marksTable); err != nil {
			t.Fatal(err)
		}
	}
	defer a.Exec(context.Background(), `DROP TABLE `+pgx.Identifier{marksTable}.Sanitize()) //nolint:errcheck
	standby, err := pgxpool.New(ctx, replicaDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer standby.Close()
	table := pgx.Identifier{"pgsplit_ryw_" + uniqueTable()}.Sanitize()
	if _, err := a.Exec(ctx, `CREATE TABLE `+table+` (v int)`); err != nil {
		t.Fatal(err)
	}
	defer a.Exec(context.Background(), `DROP TABLE `+table) //nolint:errcheck
	eventually(t, "the table on the standby", func() bool {
		var ok bool
		return standby.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&ok) == nil && ok
	})

	unlock := pauseLock(t, a.Primary())
	defer unlock()
	if _, err := standby.Exec(ctx, `SELECT pg_wal_replay_pause()`); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			if _, err := standby.Exec(context.Background(), `SELECT pg_wal_replay_resume()`); err != nil {
				t.Errorf("resume replay: %v", err)
			}
		}
	}
	defer resume()

	alice := WithCaller(ctx, "alice")
	if _, err := a.Exec(alice, `INSERT INTO `+table+` VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	if err := a.Wrote(alice); err != nil {
		t.Fatal(err)
	}
	if n, onStandby := readCount(alice, t, b, table); n != 1 || onStandby {
		t.Fatalf("alice through B after her write through A: %d rows, standby %v; want 1 row from the primary", n, onStandby)
	}
	if n, onStandby := readCount(WithCaller(ctx, "bob"), t, b, table); n != 0 || !onStandby {
		t.Fatalf("bob through B: %d rows, standby %v; want 0 rows from the paused standby", n, onStandby)
	}
	if s := b.Stats(); s.LaggingReads != 1 || s.ReplicaReads != 1 {
		t.Fatalf("B's stats while paused: %+v", s)
	}

	resume()
	eventually(t, "alice served by the standby through B", func() bool {
		n, onStandby := readCount(alice, t, b, table)
		if n != 1 {
			t.Fatalf("alice read %d rows; want 1", n)
		}
		return onStandby
	})
	for range sweepEvery {
		readCount(alice, t, b, table)
	}
	var left int
	if err := a.Primary().QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{marksTable}.Sanitize()).Scan(&left); err != nil || left != 0 {
		t.Fatalf("shared marks after the sweep: %d, %v; want 0", left, err)
	}
}

// A shared mark that cannot be looked up sends the read to the primary.
func TestSharedMarkLookupFailureReadsPrimary(t *testing.T) {
	ctx := context.Background()
	db, err := Connect(ctx, testenv.PostgresURL(t), testenv.PostgresReplicaURL(t), BreakerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	marksTable := "pgsplit_marks_" + uniqueTable()
	if err := db.ShareMarks(ctx, marksTable); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(ctx, `DROP TABLE `+pgx.Identifier{marksTable}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	var standby bool
	if err := db.Read(WithCaller(ctx, "alice"), func(ctx context.Context, q Querier) error {
		return q.QueryRow(ctx, `SELECT pg_is_in_recovery()`).Scan(&standby)
	}); err != nil || standby {
		t.Fatalf("read with the marks table gone: standby %v, %v; want the primary", standby, err)
	}
	if err := db.Wrote(WithCaller(ctx, "alice")); err == nil {
		t.Fatal("Wrote with the marks table gone: no error")
	}
	if s := db.Stats(); s.PendingMarks != 1 || s.ReplicaReads != 0 {
		t.Fatalf("stats: %+v", s)
	}
}
