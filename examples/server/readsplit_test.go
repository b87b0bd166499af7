package main

import (
	"context"
	"encoding/json"
	"github.com/talosgo/talos/identity"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/talosgo/talos/internal/testenv"
)

// pauseReplayLock is the advisory lock the tests that pause the shared test
// standby's replay hold (gateway/pgsplit's too): one pause at a time.
const pauseReplayLock = 0x7a1055e1a

// TestReadSplitReplica: with TALOS_POSTGRES_REPLICA_URL, the admin list of
// principals is served by the streaming replica; while its replay is
// paused, the admin session that registered a principal still lists it
// (from the primary) and another session, reading the replica, does not yet;
// a principal lookup (as a decision makes) reads the primary.
func TestReadSplitReplica(t *testing.T) {
	cfg := testConfig(t)
	cfg.PostgresURL = testenv.PostgresURL(t)
	cfg.PostgresReplicaURL = testenv.PostgresReplicaURL(t)
	cfg.tablePrefix = testenv.Unique(t) + "_"
	dropTablesAtEnd(t, cfg.PostgresURL, cfg.tablePrefix)
	ts := newTestServer(t, cfg)
	db := ts.Server.db
	other := ts.owner.session(t, ts, "") // a second admin session: another caller

	lists := func(cred, did string) bool {
		t.Helper()
		var page struct {
			Items []struct {
				DID string `json:"did"`
			} `json:"items"`
		}
		if st := decode(t, ts.do(t, "GET", "/v1/principals?limit=500", cred, nil), &page); st != http.StatusOK {
			t.Fatalf("list principals: %d", st)
		}
		for _, p := range page.Items {
			if p.DID == did {
				return true
			}
		}
		return false
	}

	alice := newAgent(t, ts, "alice", "t1")
	// Once the replica has replayed the registration, listings read it.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		before := db.Stats().ReplicaReads
		if lists(other, alice.did) && db.Stats().ReplicaReads > before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the list never came from the replica: %+v", db.Stats())
		}
	}

	// Audit event searches read the replica too; the audit tree the
	// primary.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		before := db.Stats().ReplicaReads
		var page struct {
			Events []json.RawMessage `json:"events"`
		}
		if st := decode(t, ts.do(t, "GET", "/v1/audit/events?limit=5", other, nil), &page); st != http.StatusOK {
			t.Fatalf("audit events: %d", st)
		}
		if db.Stats().ReplicaReads > before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the audit search never came from the replica: %+v", db.Stats())
		}
	}
	before := db.Stats()
	if st := decode(t, ts.do(t, "GET", "/v1/audit/checkpoint", other, nil), nil); st != http.StatusOK {
		t.Fatalf("checkpoint: %d", st)
	}
	if after := db.Stats(); after.ReplicaReads != before.ReplicaReads {
		t.Fatalf("the checkpoint read the replica: before %+v, after %+v", before, after)
	}

	standby, err := pgxpool.New(t.Context(), cfg.PostgresReplicaURL)
	if err != nil {
		t.Fatal(err)
	}
	defer standby.Close()
	lock, err := db.Primary().Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	if _, err := lock.Exec(t.Context(), `SELECT pg_advisory_lock($1)`, int64(pauseReplayLock)); err != nil {
		t.Fatal(err)
	}
	defer lock.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, int64(pauseReplayLock)) //nolint:errcheck
	if _, err := standby.Exec(t.Context(), `SELECT pg_wal_replay_pause()`); err != nil {
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

	bob := newAgent(t, ts, "bob", "t1") // registered with ts.cred
	before = db.Stats()
	if !lists(ts.cred, bob.did) {
		t.Fatal("the session that registered bob does not list him")
	}
	if lists(other, bob.did) {
		t.Fatal("another session's list did not come from the paused replica")
	}
	after := db.Stats()
	if after.LaggingReads != before.LaggingReads+1 || after.ReplicaReads != before.ReplicaReads+1 {
		t.Fatalf("stats: before %+v, after %+v; want one lagging read (the writer's) and one replica read", before, after)
	}
	// A signing admin (the CLI with a wallet: no Authorization header) is
	// one caller by its key id: it lists what it registered.
	carol := newWallet(t)
	if st := decode(t, ts.signed(t, ts.owner, "PUT", "/v1/principals/"+carol.DID().String(), []byte(`{"team_id":"t1"}`)), nil); st != http.StatusOK && st != http.StatusCreated {
		t.Fatalf("signed registration of carol: %d", st)
	}
	var page struct {
		Items []struct {
			DID string `json:"did"`
		} `json:"items"`
	}
	if st := decode(t, ts.signed(t, ts.owner, "GET", "/v1/principals?limit=500", nil), &page); st != http.StatusOK {
		t.Fatalf("signed list: %d", st)
	}
	if !slices.ContainsFunc(page.Items, func(p struct {
		DID string `json:"did"`
	}) bool {
		return p.DID == carol.DID().String()
	}) {
		t.Fatal("the signing admin that registered carol does not list her")
	}
	// A refused write (a forged credential) records no mark: unauthenticated
	// requests cost no write on the primary.
	marks := db.Stats().PendingMarks
	if st := decode(t, ts.do(t, "PUT", "/v1/principals/"+newWallet(t).DID().String(), "talos_session_forged", []byte(`{"team_id":"t1"}`)), nil); st != http.StatusUnauthorized {
		t.Fatalf("unauthenticated registration: %d", st)
	}
	if got := db.Stats().PendingMarks; got != marks {
		t.Fatalf("a refused request recorded a write mark: %d → %d", marks, got)
	}

	// A principal lookup (what an attested request's check reads) is on
	// the primary: bob is found by the other session too.
	if st := decode(t, ts.do(t, "GET", "/v1/principals/"+bob.did, other, nil), nil); st != http.StatusOK {
		t.Fatalf("bob's lookup while the replica is behind: %d", st)
	}

	resume()
	for deadline := time.Now().Add(20 * time.Second); !lists(other, bob.did); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("bob never listed for the other session after replay resumed")
		}
	}
}

// TestReadSplitAcrossServers: two servers on one PostgreSQL and its
// streaming replica; with replay paused, the admin session that registered
// a principal on A lists it on B (B reads the primary for that caller: the
// mark is shared), while another session's listing on B, from the replica,
// does not have it yet.
func TestReadSplitAcrossServers(t *testing.T) {
	cfg := testConfig(t)
	cfg.PostgresURL = testenv.PostgresURL(t)
	cfg.PostgresReplicaURL = testenv.PostgresReplicaURL(t)
	cfg.tablePrefix = testenv.Unique(t) + "_"
	cfg.MasterKey = make([]byte, 32)
	cfg.MasterKey[0] = 7
	dropTablesAtEnd(t, cfg.PostgresURL, cfg.tablePrefix)
	t.Cleanup(func() {
		conn, err := pgxpool.New(context.Background(), cfg.PostgresURL)
		if err == nil {
			conn.Exec(context.Background(), `DROP TABLE IF EXISTS `+cfg.tablePrefix+readMarksTable) //nolint:errcheck
			conn.Close()
		}
	})
	cfgB := cfg
	cfgB.DataDir = t.TempDir() + "/data-b"
	cfgB.MasterKey = append([]byte(nil), cfg.MasterKey...)
	a := newTestServer(t, cfg)
	b := newTestServer(t, cfgB)
	other := a.owner.session(t, a, "")
	lists := func(ts *testServer, cred, did string) bool {
		t.Helper()
		var page struct {
			Items []struct {
				DID string `json:"did"`
			} `json:"items"`
		}
		if st := decode(t, ts.do(t, "GET", "/v1/principals?limit=500", cred, nil), &page); st != http.StatusOK {
			t.Fatalf("list principals: %d", st)
		}
		for _, p := range page.Items {
			if p.DID == did {
				return true
			}
		}
		return false
	}

	standby, err := pgxpool.New(t.Context(), cfg.PostgresReplicaURL)
	if err != nil {
		t.Fatal(err)
	}
	defer standby.Close()
	lock, err := a.Server.db.Primary().Acquire(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Release()
	if _, err := lock.Exec(t.Context(), `SELECT pg_advisory_lock($1)`, int64(pauseReplayLock)); err != nil {
		t.Fatal(err)
	}
	defer lock.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, int64(pauseReplayLock)) //nolint:errcheck
	if _, err := standby.Exec(t.Context(), `SELECT pg_wal_replay_pause()`); err != nil {
		t.Fatal(err)
	}
	defer standby.Exec(context.Background(), `SELECT pg_wal_replay_resume()`) //nolint:errcheck

	bob := newAgent(t, a, "bob", "t1") // registered on A with a's owner session
	before := b.Server.db.Stats()
	if !lists(b, a.cred, bob.did) {
		t.Fatal("the session that registered bob on A does not list him on B")
	}
	if lists(b, other, bob.did) {
		t.Fatal("another session's list on B did not come from the paused replica")
	}
	after := b.Server.db.Stats()
	if after.LaggingReads != before.LaggingReads+1 || after.ReplicaReads != before.ReplicaReads+1 {
		t.Fatalf("B's stats: before %+v, after %+v; want one lagging read (the writer's) and one replica read", before, after)
	}
}

// newWallet makes a fresh agent wallet.
func newWallet(t *testing.T) *identity.Wallet {
	t.Helper()
	w, err := identity.GenerateWallet("agent")
	if err != nil {
		t.Fatal(err)
	}
	return w
}
