package redis_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/budget/budgettest"
	bredis "github.com/talosgo/talos/budget/redis"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/internal/testenv"
)

// checkedCluster returns a ClusterClient with options o whose node
// clients fail every script that touches a key not declared in KEYS
// (testenv.CheckDeclaredKeys): Redis 7 itself lets a script touch any key
// of its slot.
func checkedCluster(t testing.TB, o *goredis.ClusterOptions) *goredis.ClusterClient {
	c := goredis.NewClusterClient(o)
	c.OnNewNode(testenv.CheckDeclaredKeys)
	t.Cleanup(func() { c.Close() })
	return c
}

// sharedCluster is checkedCluster on the shared test cluster.
func sharedCluster(t testing.TB) *goredis.ClusterClient {
	testenv.RedisCluster(t) // skips or fails without a healthy cluster
	return checkedCluster(t, &goredis.ClusterOptions{Addrs: testenv.RedisClusterAddrs()})
}

// The budgettest conformance suites on the shared Redis Cluster
// ($TALOS_TEST_REDIS_CLUSTER_ADDRS), through a ClusterClient: every
// script must run in one slot and declare every key it touches, by the
// cluster's rules.
func TestClusterConformance(t *testing.T) {
	c := sharedCluster(t)
	budgettest.Run(t, func(t *testing.T) budget.Budget {
		b, err := bredis.New(c, bredis.Config{Prefix: testenv.Unique(t) + ":"})
		if err != nil {
			t.Fatal(err)
		}
		return b
	})
}

func TestClusterRatesConformance(t *testing.T) {
	c := sharedCluster(t)
	budgettest.RunRates(t, func(t *testing.T) budget.RateStore {
		r, err := bredis.NewRates(c, testenv.Unique(t)+":")
		if err != nil {
			t.Fatal(err)
		}
		return r
	})
}

// TestClusterNoOverspend: goroutines over two Budgets, each with its own
// ClusterClient, hammer one shared hard scope on the cluster.
func TestClusterNoOverspend(t *testing.T) {
	prefix := testenv.Unique(t) + ":"
	var bs []budget.Budget
	for range 2 {
		b, err := bredis.New(sharedCluster(t), bredis.Config{Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		bs = append(bs, b)
	}
	budgettest.NoOverspend(t, bs, 32, time.Second)
}

const envClusterAddrs = "TALOS_BUDGET_HAMMER_CLUSTER_ADDRS"

// TestClusterNoOverspendProcesses is TestNoOverspendProcesses on the
// Redis Cluster: 4 processes of 64 goroutines, each process with its own
// ClusterClient, against one shared hard scope. The stored spend must
// never pass the limit and must equal the sum of the charges the children
// were told.
func TestClusterNoOverspendProcesses(t *testing.T) {
	if os.Getenv(envChild) == "1" {
		clusterHammerChild(t)
		return
	}
	c := testenv.RedisCluster(t)
	prefix := testenv.Unique(t) + ":"
	org := budget.Scope{ID: budgettest.Name("org"), Limit: 2_000_000, Period: budget.Lifetime()}
	var (
		mu    sync.Mutex
		total budgettest.Totals
		wg    sync.WaitGroup
	)
	for p := range hammerProcs {
		wg.Go(func() {
			cmd := exec.Command(os.Args[0], "-test.run=^TestClusterNoOverspendProcesses$", "-test.count=1")
			cmd.Env = append(os.Environ(), envChild+"=1", envClusterAddrs+"="+strings.Join(testenv.RedisClusterAddrs(), ","),
				envPrefix+"="+prefix, envOrg+"="+org.ID, envLimit+"="+strconv.FormatInt(org.Limit, 10))
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				t.Errorf("child %d: %v\n%s", p, err, out.String())
				return
			}
			var tot budgettest.Totals
			found := false
			sc := bufio.NewScanner(&out)
			for sc.Scan() {
				if rest, ok := strings.CutPrefix(sc.Text(), totalsMarker); ok {
					if err := json.Unmarshal([]byte(rest), &tot); err != nil {
						t.Errorf("child %d: totals: %v", p, err)
						return
					}
					found = true
				}
			}
			if !found {
				t.Errorf("child %d printed no totals:\n%s", p, out.String())
				return
			}
			mu.Lock()
			total.Add(tot)
			mu.Unlock()
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	b, err := bredis.New(c, bredis.Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	budgettest.CheckNoOverspend(t, b, org, total)
}

func clusterHammerChild(t *testing.T) {
	c := checkedCluster(t, &goredis.ClusterOptions{Addrs: strings.Split(os.Getenv(envClusterAddrs), ","), PoolSize: hammerWorkers})
	b, err := bredis.New(c, bredis.Config{Prefix: os.Getenv(envPrefix)})
	if err != nil {
		t.Fatal(err)
	}
	limit, err := strconv.ParseInt(os.Getenv(envLimit), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	org := budget.Scope{ID: os.Getenv(envOrg), Limit: limit, Period: budget.Lifetime()}
	tot := budgettest.Hammer(t, b, org, hammerWorkers, hammerRun)
	line, err := json.Marshal(tot)
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString(totalsMarker + string(line) + "\n")
}

// TestClusterFailoverNoOverspend runs reservations and commits against a
// private 3-master cluster (one replica each) and crashes (SIGKILL) the
// master that owns the budget group's slot while they run. Until a
// replica takes over every decision on the group is an error (callers
// deny: fail closed), none is allowed; after the failover decisions
// resume on the new master until the hard limit denies. Then the stored
// spend must not pass the limit nor the sum of the charges the callers
// were told (no double charge), may fall short of it only by what was in
// flight at the crash (asynchronous replication), nothing may stay
// reserved, and the killed node rejoins (the cluster is ok again).
func TestClusterFailoverNoOverspend(t *testing.T) {
	pc := testenv.StartRedisCluster(t, 3, 1)
	o := pc.Client(t).Options()
	o.DialTimeout, o.ReadTimeout, o.WriteTimeout = 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond
	o.MaxRetries = -1
	// go-redis reloads the slot map on MOVED replies, not on a refused
	// connection, and by default only every 60 s otherwise: the Budget
	// asks for a reload after each failed call, so decisions resume soon
	// after the failover with the default interval (the 30 s deadline
	// below would fail without it).
	c := checkedCluster(t, o)
	b, err := bredis.New(c, bredis.Config{Prefix: testenv.Unique(t) + ":", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	const amount = 1_000
	org := budget.Scope{ID: budgettest.Name("org"), Limit: 400 * amount, Period: budget.Lifetime()}
	ctx := context.Background()
	// The replica must be in sync before the crash (a fresh cluster's
	// first full sync may still be running on a loaded machine): WAIT
	// answers once a replica acknowledged every write so far.
	master := pc.MasterFor(t, "{"+org.ID+"}")
	mc := goredis.NewClient(&goredis.Options{Addr: master})
	t.Cleanup(func() { mc.Close() })
	for deadline := time.Now().Add(20 * time.Second); ; {
		if err := mc.Set(ctx, "{"+org.ID+"}:sync", "1", 0).Err(); err != nil {
			t.Fatal(err)
		}
		if n, err := mc.Do(ctx, "WAIT", 1, 500).Int(); err == nil && n >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the group's replica did not get in sync in 20 s")
		}
	}
	// Reservations whose reply the crash lost (the caller saw an error and
	// denied) may have reached the replica: they hold until their TTL.
	const ttl = 3 * time.Second
	var lastReserve atomic.Int64

	var (
		phase       atomic.Int32 // 0 before the crash, 1 from just before the kill
		recovered   atomic.Bool  // a decision made after the crash succeeded
		recoveredAt atomic.Int64
		stop        atomic.Bool
		charged     atomic.Int64 // what Commit told the callers
		errs        [2]atomic.Int64
		allowed     [2]atomic.Int64
		denied      atomic.Int64
		mu          sync.Mutex
		pending     []string // reservations whose Commit failed: settled at the end
		wg          sync.WaitGroup
	)
	const workers = 8
	for range workers {
		wg.Go(func() {
			for !stop.Load() {
				// Started after the crash began / ended after it began.
				started := phase.Load()
				lastReserve.Store(time.Now().UnixNano())
				r, err := b.Reserve(ctx, budget.ReserveRequest{Scopes: []budget.Scope{org}, Group: org.ID, Amount: amount, TTL: ttl})
				p := phase.Load()
				if err != nil {
					var ce *contracts.Error
					if !errors.As(err, &ce) {
						t.Errorf("Reserve error %T is not a *contracts.Error: %v", err, err)
					}
					errs[p].Add(1)
					time.Sleep(5 * time.Millisecond)
					continue
				}
				if started == 1 && !recovered.Load() {
					recoveredAt.CompareAndSwap(0, time.Now().UnixNano())
					recovered.Store(true)
				}
				if !r.Allowed {
					denied.Add(1)
					time.Sleep(5 * time.Millisecond)
					continue
				}
				allowed[p].Add(1)
				st, err := b.Commit(ctx, r.ID, amount)
				if err != nil {
					mu.Lock()
					pending = append(pending, r.ID)
					mu.Unlock()
					continue
				}
				charged.Add(st.Scopes[0].Charged)
			}
		})
	}
	// Let decisions flow, then crash the group's master under them.
	for allowed[0].Load() < 20 {
		time.Sleep(5 * time.Millisecond)
	}
	phase.Store(1)
	pc.Kill(t, master)
	killed := time.Now()
	deadline := time.Now().Add(30 * time.Second)
	for !recovered.Load() || denied.Load() == 0 {
		if time.Now().After(deadline) {
			stop.Store(true)
			wg.Wait()
			t.Fatalf("after the crash of %s: recovered %v, %d errors, %d allowed, %d denied in 30 s",
				master, recovered.Load(), errs[1].Load(), allowed[1].Load(), denied.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	if errs[0].Load() != 0 {
		t.Errorf("%d errors before the crash", errs[0].Load())
	}
	if errs[1].Load() == 0 {
		t.Error("no decision failed while the group's master was down")
	}
	// Commits that failed: retry; a reservation the dead master took
	// with it is unknown to the new one (and holds nothing there).
	lost := 0
	for _, id := range pending {
		st, err := b.Commit(ctx, id, amount)
		switch {
		case err == nil:
			// Charged now, or (Replayed) applied before the crash and
			// replicated, only its reply lost: told now either way.
			charged.Add(st.Scopes[0].Charged)
		case errors.Is(err, budget.ErrUnknownReservation):
			lost++
		default:
			t.Errorf("settling %s after the failover: %v", id, err)
		}
	}
	// Let every hold a lost reply left behind expire.
	time.Sleep(time.Until(time.Unix(0, lastReserve.Load()).Add(ttl + 100*time.Millisecond)))
	u, err := b.Usage(ctx, org.ID, org)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("decisions on the group resumed %v after the kill", time.Unix(0, recoveredAt.Load()).Sub(killed).Round(time.Millisecond))
	t.Logf("crashed %s: before %d allowed; after %d errors, %d allowed, %d denied; %d commits retried (%d unknown after failover); spent %d of %d, told %d, reserved %d",
		master, allowed[0].Load(), errs[1].Load(), allowed[1].Load(), denied.Load(), len(pending), lost, u.Spent, org.Limit, charged.Load(), u.Reserved)
	if u.Spent > org.Limit {
		t.Errorf("OVERSPENT: spent %d > limit %d", u.Spent, org.Limit)
	}
	// Replication is asynchronous: a commit the dead master acknowledged
	// in its last instant may never have reached the replica. Such lost
	// spend is bounded by the decisions in flight at the crash (one per
	// caller); anything stored beyond what callers were told would be a
	// double charge.
	if u.Spent > charged.Load() {
		t.Errorf("stored spend %d > charges told %d: double-charged", u.Spent, charged.Load())
	}
	if lostSpend := charged.Load() - u.Spent; lostSpend > workers*amount {
		t.Errorf("%d of acknowledged spend lost in the failover, more than the %d in flight", lostSpend, workers*amount)
	} else if lostSpend > 0 {
		t.Logf("%d of acknowledged spend lost in the failover (asynchronous replication)", lostSpend)
	}
	if u.Reserved != 0 {
		t.Errorf("%d still reserved after every reservation was settled or expired", u.Reserved)
	}
	// The killed node rejoins as a replica; the budget keeps working.
	pc.Restart(t, master)
	pc.WaitOK(t)
	if got := pc.MasterFor(t, "{"+org.ID+"}"); got == master {
		t.Errorf("group slot still on the killed node %s", master)
	}
	other := budget.Scope{ID: budgettest.Name("org2"), Limit: amount, Period: budget.Lifetime()}
	r, err := b.Reserve(ctx, budget.ReserveRequest{Scopes: []budget.Scope{other}, Group: other.ID, Amount: amount})
	if err != nil || !r.Allowed {
		t.Fatalf("after rejoin: %+v %v", r, err)
	}
}
