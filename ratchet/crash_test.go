package ratchet_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/talosgo/talos/identity"
	"github.com/talosgo/talos/ratchet"
)

// fileStore is a SessionStore for one writer process at a time: each id is
// one file, replaced atomically by rename. It survives SIGKILL (the kernel
// keeps completed writes); it does not fsync, so it is not a power-loss
// test.
type fileStore struct{ dir string }

func (f fileStore) path(id string) string { return filepath.Join(f.dir, "store-"+id) }

func (f fileStore) Load(_ context.Context, id string) ([]byte, uint64, error) {
	b, err := os.ReadFile(f.path(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, ratchet.NotFound(id)
	}
	if err != nil {
		return nil, 0, err
	}
	if len(b) < 8 {
		return nil, 0, errors.New("short record")
	}
	return b[8:], binary.BigEndian.Uint64(b), nil
}

func (f fileStore) Save(ctx context.Context, id string, expected uint64, sealed []byte) (uint64, error) {
	_, v, err := f.Load(ctx, id)
	if err != nil && !errors.Is(err, ratchet.ErrNotFound) {
		return 0, err
	}
	if v != expected {
		return 0, ratchet.ErrConflict
	}
	tmp := f.path(id) + ".tmp"
	if err := os.WriteFile(tmp, append(binary.BigEndian.AppendUint64(nil, expected+1), sealed...), 0o600); err != nil {
		return 0, err
	}
	return expected + 1, os.Rename(tmp, f.path(id))
}

func (f fileStore) Delete(_ context.Context, id string) error { return os.Remove(f.path(id)) }

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

const crashEnv = "TALOS_RATCHET_CRASH_DIR"

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

// TestCrashRecovery runs a receiver in a child process that saves after
// every message and is killed with SIGKILL at random points. After each
// restart it continues from its saved state; at the end every message has
// been delivered exactly once, in order, and every acknowledged message is
// among them.
func TestCrashRecovery(t *testing.T) {
	t.Parallel()
	if dir := os.Getenv(crashEnv); dir != "" {
		crashChild(t, dir)
		return
	}
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	kek := make([]byte, 32)
	rand.Read(kek)
	os.WriteFile(filepath.Join(dir, "kek"), kek, 0o600)
	kr := crashKeyring(t, dir)

	w, _ := identity.GenerateWallet("bob")
	p, err := ratchet.GeneratePrekey(w, nil)
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
	store := fileStore{dir}
	r := record{sealed: sealed}
	if _, err := store.Save(t.Context(), "bob", 0, r.marshal()); err != nil {
		t.Fatal(err)
	}

	rng := mrand.New(mrand.NewPCG(uint64(time.Now().UnixNano()), 7))
	kills, deadline := 0, time.Now().Add(20*time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatal("child did not finish")
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashRecovery$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if kills < 8 {
			time.Sleep(time.Duration(20+rng.IntN(60)) * time.Millisecond)
			cmd.Process.Kill() // SIGKILL
			err := cmd.Wait()
			if err == nil {
				break // it finished before the kill
			}
			if !strings.Contains(err.Error(), "killed") {
				t.Fatalf("child failed: %v\n%s", err, out.String())
			}
			kills++
			continue
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("child failed: %v\n%s", err, out.String())
		}
		break
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

func crashChild(t *testing.T, dir string) {
	ctx := t.Context()
	kr := crashKeyring(t, dir)
	store := fileStore{dir}
	inbox, err := os.ReadFile(filepath.Join(dir, "inbox"))
	if err != nil {
		t.Fatal(err)
	}
	msgs := bytes.Split(bytes.TrimSuffix(inbox, []byte("\n")), []byte("\n"))
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
	acks, err := os.OpenFile(filepath.Join(dir, "acks"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer acks.Close()
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
		if v, err = store.Save(ctx, "bob", v, next.marshal()); err != nil {
			t.Fatal(err)
		}
		r = next
		// Acknowledge only after the save committed.
		fmt.Fprintf(acks, "%d %s\n", i, pt)
	}
	os.WriteFile(filepath.Join(dir, "done"), nil, 0o600)
}
