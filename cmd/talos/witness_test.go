package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/identity"
)

func witnessWallet(t *testing.T, c *cli, dir string) (string, *identity.Wallet) {
	t.Helper()
	path, _ := keygen(t, c, dir, "witness", true)
	b, _ := os.ReadFile(path)
	f, err := parseWalletFile(b)
	if err != nil {
		t.Fatal(err)
	}
	w, err := f.open(nil)
	if err != nil {
		t.Fatal(err)
	}
	return path, w
}

func TestWitnessCosign(t *testing.T) {
	dir := t.TempDir()
	c := newCLI(t)
	wpath, ww := witnessWallet(t, c, dir)
	const name = "witness.test/w1"
	state := filepath.Join(dir, "witness-state.json")
	l := newTestLog(t, t.TempDir())
	l.grow(t, 0, 300, 0)
	logV, _ := audit.NewVerifier(testOrigin, l.wallet.PublicKey())

	cosign := func(src string, extra ...string) result {
		args := append([]string{"witness", "cosign", "--wallet", wpath, "--name", name, "--state", state, "--log-key", l.vkey}, extra...)
		return c.run(append(args, src)...)
	}
	check := func(note []byte, size uint64) {
		t.Helper()
		cp, _, err := audit.VerifyCosigned(note, logV, name, ww.PublicKey())
		if err != nil || cp.Size != size {
			t.Fatalf("cosigned checkpoint: size %d, %v\n%s", cp.Size, err, note)
		}
	}

	r := cosign(l.dir)
	if r.code != exitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	check([]byte(r.stdout), 300)
	// The log grows: the proof from 300 comes from the tiles.
	l.grow(t, 300, 700, 0)
	out := filepath.Join(dir, "cosigned")
	r = cosign(l.dir, "--json", "--out", out)
	if r.code != exitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if m := decodeJSON(t, r.stdout); m["old_size"] != float64(300) || m["size"] != float64(700) {
		t.Fatalf("%v", m)
	}
	b, _ := os.ReadFile(out)
	check(b, 700)
	// Same checkpoint again: cosigned again (consistent with itself).
	if r := cosign(l.dir); r.code != exitOK {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}

	// A fork signed with the same key is refused, and the state kept.
	before, _ := os.ReadFile(state)
	fork := newTestLog(t, t.TempDir())
	fork.grow(t, 0, 800, 1)
	r = cosign(fork.dir)
	if r.code != exitFailed || !strings.Contains(r.stderr, "split view") {
		t.Fatalf("fork: exit %d: %s", r.code, r.stderr)
	}
	if after, _ := os.ReadFile(state); !bytes.Equal(before, after) {
		t.Fatal("the witness state changed on a split view")
	}
	// A smaller checkpoint than the one cosigned is refused.
	small := newTestLog(t, t.TempDir())
	small.grow(t, 0, 100, 0)
	if r := cosign(small.dir); r.code != exitFailed {
		t.Fatalf("rollback: exit %d: %s", r.code, r.stderr)
	}
	// A tampered hash tile used by the proof.
	l.grow(t, 700, 800, 0)
	bad := copyLog(t, l.dir)
	p := filepath.Join(bad, "tile", "0", "002") // leaves 512–767: the proof from 700 reads it
	tile, _ := os.ReadFile(p)
	tile[(700-512)*32] ^= 1
	os.WriteFile(p, tile, 0o644)
	if r := cosign(bad); r.code != exitFailed || !strings.Contains(r.stderr, "hash tiles do not match") {
		t.Fatalf("tampered tile: exit %d: %s", r.code, r.stderr)
	}
	// Another log key: the checkpoint does not verify.
	other, _ := audit.VerifierKey(testOrigin, mustWallet(t).PublicKey())
	if r := c.run("witness", "cosign", "--wallet", wpath, "--name", name, "--state", state, "--log-key", other, l.dir); r.code != exitFailed {
		t.Fatalf("other key: exit %d: %s", r.code, r.stderr)
	}
	c.must(exitUsage, "witness", "cosign", "--wallet", wpath, "--state", state, "--log-key", l.vkey, l.dir)
	// A damaged state file: fail closed, as an I/O error.
	os.WriteFile(state, []byte("garbage"), 0o600)
	if r := cosign(l.dir); r.code != exitIO {
		t.Fatalf("damaged state: exit %d: %s", r.code, r.stderr)
	}
}

func TestWitnessServe(t *testing.T) {
	dir := t.TempDir()
	c := newCLI(t)
	wpath, ww := witnessWallet(t, c, dir)
	const name = "witness.test/w2"
	l := newTestLog(t, t.TempDir())
	l.grow(t, 0, 50, 0)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	var stdout bytes.Buffer
	done := make(chan int, 1)
	go func() {
		e := &env{ctx: ctx, stdin: strings.NewReader(""), stdout: &stdout, stderr: pw, getenv: func(string) string { return "" }}
		done <- e.run([]string{"witness", "serve", "--json", "--wallet", wpath, "--name", name, "--state", filepath.Join(dir, "s.json"),
			"--log-key", l.wallet.DID().String(), "--origin", testOrigin, "--listen", "127.0.0.1:0"})
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	_, url, ok := strings.Cut(strings.TrimSpace(line), "listening on ")
	if !ok {
		t.Fatalf("no address: %q", line)
	}
	go io.Copy(io.Discard, pr)

	logV, _ := audit.NewVerifier(testOrigin, l.wallet.PublicKey())
	anchor := &audit.HTTPAnchor{URL: url}
	cp, err := l.log.AnchorCheckpoint(ctx, anchor, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := audit.VerifyCosigned(cp.Note, logV, name, ww.PublicKey()); err != nil {
		t.Fatal(err)
	}
	l.grow(t, 50, 120, 0)
	if cp, err = l.log.AnchorCheckpoint(ctx, anchor, 50); err != nil || cp.Size != 120 {
		t.Fatalf("size %d, %v", cp.Size, err)
	}
	cancel()
	if code := <-done; code != exitOK {
		t.Fatalf("serve exited %d", code)
	}
	if m := decodeJSON(t, stdout.String()); m["url"] != url || m["name"] != name {
		t.Fatalf("--json: %v", m)
	}
}
