package redis_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/talosgo/talos/budget"
	"github.com/talosgo/talos/budget/budgettest"
	bredis "github.com/talosgo/talos/budget/redis"
	"github.com/talosgo/talos/internal/testenv"
)

// Environment of the child processes of TestNoOverspendProcesses.
const (
	envChild  = "TALOS_BUDGET_HAMMER_CHILD" // "1" in a child
	envURL    = "TALOS_BUDGET_HAMMER_URL"
	envPrefix = "TALOS_BUDGET_HAMMER_PREFIX"
	envOrg    = "TALOS_BUDGET_HAMMER_ORG"
	envLimit  = "TALOS_BUDGET_HAMMER_LIMIT"

	hammerProcs   = 4
	hammerWorkers = 64
	hammerRun     = 1500 * time.Millisecond
	totalsMarker  = "HAMMER-TOTALS "
)

// TestNoOverspendProcesses re-executes the test binary as 4 processes of
// 64 goroutines each, all reserving, retrying, committing, releasing and
// abandoning reservations against one shared hard scope in one Redis
// (the real server when TALOS_TEST_REDIS_URL is set, else a miniredis
// that the children reach over TCP). The stored spend must never pass the
// limit and must equal the sum of the charges the children were told.
func TestNoOverspendProcesses(t *testing.T) {
	if os.Getenv(envChild) == "1" {
		hammerChild(t)
		return
	}
	c, real := testenv.Redis(t)
	url := testenv.RedisURL()
	if !real {
		cl, ok := c.(*goredis.Client)
		if !ok {
			t.Fatalf("unexpected client type %T", c)
		}
		url = "redis://" + cl.Options().Addr + "/0"
	}
	prefix := testenv.Unique(t) + ":"
	org := budget.Scope{ID: budgettest.Name("org"), Limit: 2_000_000, Period: budget.Lifetime()}

	var (
		mu    sync.Mutex
		total budgettest.Totals
		wg    sync.WaitGroup
	)
	for p := range hammerProcs {
		wg.Go(func() {
			cmd := exec.Command(os.Args[0], "-test.run=^TestNoOverspendProcesses$", "-test.count=1")
			cmd.Env = append(os.Environ(), envChild+"=1", envURL+"="+url, envPrefix+"="+prefix,
				envOrg+"="+org.ID, envLimit+"="+strconv.FormatInt(org.Limit, 10))
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

func hammerChild(t *testing.T) {
	opt, err := goredis.ParseURL(os.Getenv(envURL))
	if err != nil {
		t.Fatal(err)
	}
	opt.PoolSize = hammerWorkers
	c := goredis.NewClient(opt)
	defer c.Close()
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
