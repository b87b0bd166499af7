package ratchettest

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/talosgo/talos/identity"
	"github.com/talosgo/talos/ratchet"
)

// The receiver's durable record: the sealed session plus how many messages
// it has delivered and a hash chain over them, saved in one atomic Save.
// Delivery and ratchet progress therefore commit together.
type record struct {
	sealed    []byte
	delivered uint64
	chain     [32]byte
}

func (r *record) marshal() []byte {
	b := binary.BigEndian.AppendUint64(nil, r.delivered)
	b = append(b, r.chain[:]...)
	return append(b, r.sealed...)
}

func parseRecord(b []byte) record {
	return record{delivered: binary.BigEndian.Uint64(b), chain: [32]byte(b[8:40]), sealed: b[40:]}
}

func nextChain(chain [32]byte, pt []byte) [32]byte {
	return sha256.Sum256(append(chain[:], pt...))
}

const (
	crashEnv  = "TALOS_RATCHETTEST_CRASH_DIR"
	crashName = "TALOS_RATCHETTEST_CRASH_STORE"
)

func crashKeyring(t testing.TB, dir string) *identity.Keyring {
	kek, err := os.ReadFile(filepath.Join(dir, "kek"))
	if err != nil {
		t.Fatal(err)
	}
	kr := identity.NewKeyring()
	if err := kr.Add("k", kek); err != nil {
		t.Fatal(err)
	}
	if err := kr.SetPrimary("k"); err != nil {
		t.Fatal(err)
	}
	return kr
}

// CrashChild reports whether this process is a RunCrash child. Register
// cleanups (dropping tables, removing directories) only when it is false.
func CrashChild() bool { return os.Getenv(crashEnv) != "" }

// RunCrash is the SIGKILL crash test for a durable SessionStore. A child
// process (this test binary, re-executed with an environment variable)
// receives 300 messages, saving its sealed session after each one together
// with its delivery progress, and acknowledging a message only after the
// save returned. The parent kills it with SIGKILL 8 times, each time 0-3 ms
// after the running child acknowledged its first message, then lets a last
// child finish. After every kill it checks that acknowledgements and the
// durable delivery count both advanced since the previous kill and that
// every acknowledged message is durable; it fails if fewer than 4 kills
// happened before a child finished (recovery not exercised). At the end it
// checks that every message was delivered exactly once and in order, that
// every acknowledged message is among them, and that a restarted child
// cannot decrypt its last delivered message again. It takes a few seconds.
//
// name identifies the store; open must return the same durable store for it
// in every process (for example a table prefix) and must not register
// cleanups: the caller cleans up in the parent. RunCrash must be called
// directly from a test function (not a subtest) because the child re-runs
// that test.
func RunCrash(t *testing.T, name string, open func(name string) (ratchet.SessionStore, error)) {
	if dir := os.Getenv(crashEnv); dir != "" {
		store, err := open(os.Getenv(crashName))
		if err != nil {
			t.Fatal(err)
		}
		crashChild(t, dir, store)
		return
	}
	if testing.Short() {
		t.Skip("spawns processes")
	}
	store, err := open(name)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	kek := make([]byte, 32)
	rand.Read(kek)
	os.WriteFile(filepath.Join(dir, "kek"), kek, 0o600)
	kr := crashKeyring(t, dir)

	w, _ := identity.GenerateWallet("bob")
	p, err := ratchet.GeneratePrekey(w.Signer(), nil)
	if err != nil {
		t.Fatal(err)
	}
	alice, _ := ratchet.Initiate(p.Bundle(), ratchet.Config{})
	bob, _ := ratchet.Accept(p, ratchet.Config{})
	const N = 300
	var inbox bytes.Buffer
	var want [32]byte
	for i := range N {
		pt := []byte("message " + strconv.Itoa(i))
		wire, err := alice.Encrypt(pt)
		if err != nil {
			t.Fatal(err)
		}
		inbox.Write(wire)
		inbox.WriteByte('\n')
		want = nextChain(want, pt)
	}
	os.WriteFile(filepath.Join(dir, "inbox"), inbox.Bytes(), 0o600)
	sealed, err := bob.MarshalSealed(kr, []byte("bob"))
	if err != nil {
		t.Fatal(err)
	}
	r := record{sealed: sealed}
	if _, err := store.Save(t.Context(), "bob", 0, r.marshal()); err != nil {
		t.Fatal(err)
	}

	rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 7))
	acksPath := filepath.Join(dir, "acks")
	countAcks := func() int {
		b, _ := os.ReadFile(acksPath)
		return bytes.Count(b, []byte("\n"))
	}
	durable := func() uint64 {
		b, _, err := store.Load(t.Context(), "bob")
		if err != nil {
			t.Fatal(err)
		}
		return parseRecord(b).delivered
	}
	const (
		wantKills = 8
		minKills  = 4
	)
	kills, prevAcks, prevDurable := 0, 0, uint64(0)
	deadline := time.Now().Add(20 * time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatal("child did not finish")
		}
		cmd := exec.Command(os.Args[0], "-test.run=^"+regexp.QuoteMeta(t.Name())+"$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir, crashName+"="+name)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		if kills >= wantKills {
			if err := <-exited; err != nil {
				t.Fatalf("child failed: %v\n%s", err, out.String())
			}
			break
		}
		// Kill only after this child acknowledged at least one message, a
		// random 0-3 ms later, so that every restart follows recovery and
		// progress (and kills land at varied points of the save cycle).
		finished, err := waitForAck(exited, countAcks, prevAcks, 5*time.Second)
		if finished {
			if err != nil {
				t.Fatalf("child failed: %v\n%s", err, out.String())
			}
			break
		}
		if err != nil {
			cmd.Process.Kill()
			<-exited
			t.Fatalf("after %d kills: %v\n%s", kills, err, out.String())
		}
		time.Sleep(time.Duration(rng.IntN(3000)) * time.Microsecond)
		cmd.Process.Kill() // SIGKILL
		if err := <-exited; err == nil {
			break // it finished before the kill
		} else if !strings.Contains(err.Error(), "killed") {
			t.Fatalf("child failed: %v\n%s", err, out.String())
		}
		kills++
		acks, d := countAcks(), durable()
		if acks <= prevAcks || d <= prevDurable {
			t.Fatalf("kill %d: no progress since the previous kill (acks %d → %d, durable %d → %d)", kills, prevAcks, acks, prevDurable, d)
		}
		if d < uint64(acks) {
			t.Fatalf("kill %d: %d messages acknowledged but only %d durable", kills, acks, d)
		}
		prevAcks, prevDurable = acks, d
	}
	if kills < minKills {
		t.Fatalf("only %d kills before the child finished: recovery was not exercised enough (want ≥ %d)", kills, minKills)
	}
	if _, err := os.Stat(filepath.Join(dir, "done")); err != nil {
		t.Fatal("child exited without finishing")
	}
	b, _, err := store.Load(t.Context(), "bob")
	if err != nil {
		t.Fatal(err)
	}
	final := parseRecord(b)
	if final.delivered != N || final.chain != want {
		t.Fatalf("delivered %d messages (chain match %v), want %d exactly once in order", final.delivered, final.chain == want, N)
	}
	acks, _ := os.ReadFile(filepath.Join(dir, "acks"))
	last, nacks := -1, 0
	sc := bufio.NewScanner(bytes.NewReader(acks))
	for sc.Scan() {
		i, err := strconv.Atoi(strings.Fields(sc.Text())[0])
		if err != nil || i <= last || sc.Text() != fmt.Sprintf("%d message %d", i, i) {
			t.Fatalf("bad ack line %q after %d", sc.Text(), last)
		}
		last = i
		nacks++
	}
	t.Logf("%d kills, %d acknowledgements for %d messages", kills, nacks, N)
	if last != N-1 {
		t.Fatalf("last ack %d", last)
	}
}

// waitForAck waits until the acks file holds more than prev lines. It
// returns finished when the child exited first (err is its exit error),
// or an error when no acknowledgement came within timeout.
func waitForAck(exited <-chan error, count func() int, prev int, timeout time.Duration) (finished bool, err error) {
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	limit := time.After(timeout)
	for count() <= prev {
		select {
		case err := <-exited:
			return true, err
		case <-limit:
			return false, fmt.Errorf("no message acknowledged within %v of a restart", timeout)
		case <-tick.C:
		}
	}
	return false, nil
}

func crashChild(t *testing.T, dir string, store ratchet.SessionStore) {
	ctx := t.Context()
	kr := crashKeyring(t, dir)
	inbox, err := os.ReadFile(filepath.Join(dir, "inbox"))
	if err != nil {
		t.Fatal(err)
	}
	msgs := bytes.Split(bytes.TrimSuffix(inbox, []byte("\n")), []byte("\n"))
	acks, err := os.OpenFile(filepath.Join(dir, "acks"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer acks.Close()
	for reloads := 0; ; reloads++ {
		if reloads > 10 {
			t.Fatal("too many conflicting writers")
		}
		b, v, err := store.Load(ctx, "bob")
		if err != nil {
			t.Fatal(err)
		}
		r := parseRecord(b)
		s, err := ratchet.UnmarshalSealed(kr, r.sealed, []byte("bob"), ratchet.Config{})
		if err != nil {
			t.Fatal(err)
		}
		if r.delivered > 0 {
			// The last delivered message cannot be decrypted a second time.
			if _, err := s.Decrypt(msgs[r.delivered-1]); !errors.Is(err, ratchet.ErrAuthFailed) {
				t.Fatalf("message %d decrypted again after restart: %v", r.delivered-1, err)
			}
		}
		conflict := false
		for i := r.delivered; i < uint64(len(msgs)); i++ {
			pt, err := s.Decrypt(msgs[i])
			if err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			sealed, err := s.MarshalSealed(kr, []byte("bob"))
			if err != nil {
				t.Fatal(err)
			}
			next := record{sealed: sealed, delivered: i + 1, chain: nextChain(r.chain, pt)}
			v, err = store.Save(ctx, "bob", v, next.marshal())
			if errors.Is(err, ratchet.ErrConflict) {
				// A killed predecessor's last write landed after we loaded
				// (the database committed it after the client died). The
				// conditional save caught it: reload and continue from there.
				conflict = true
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			r = next
			// Acknowledge only after the save committed.
			fmt.Fprintf(acks, "%d %s\n", i, pt)
		}
		if !conflict {
			break
		}
	}
	os.WriteFile(filepath.Join(dir, "done"), nil, 0o600)
}
