package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/audit/audittest"
	"github.com/talosgo/talos/audit/file"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

const testOrigin = "talos.test/audit"

// testLog is a durable audit/file log with real events, signed by an
// identity wallet.
type testLog struct {
	dir    string
	store  *file.Store
	log    *audit.Log
	wallet *identity.Wallet
	vkey   string // C2SP verifier key
}

func logKeyWallet(t testing.TB) *identity.Wallet {
	w, err := identity.WalletFromSeed(bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func newTestLog(t testing.TB, dir string) *testLog {
	t.Helper()
	ctx := context.Background()
	store, err := file.Open(ctx, file.Config{Dir: dir, NoSyncUnsafe: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	w := logKeyWallet(t)
	signer, err := audit.NewNoteSigner(testOrigin, w.Signer())
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := audit.NewVerifier(testOrigin, w.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	l, err := audit.New(ctx, audit.Config{Store: store, Signer: signer, Verifier: verifier})
	if err != nil {
		t.Fatal(err)
	}
	vkey, err := audit.VerifierKey(testOrigin, w.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	return &testLog{dir: dir, store: store, log: l, wallet: w, vkey: vkey}
}

// grow appends events [from, to) (event i is audittest.Event(i+offset))
// and publishes a checkpoint.
func (l *testLog) grow(t testing.TB, from, to, offset int) audit.Checkpoint {
	t.Helper()
	ctx := context.Background()
	for i := from; i < to; i++ {
		if _, err := l.log.Append(ctx, audittest.Event(i+offset)); err != nil {
			t.Fatal(err)
		}
	}
	cp, err := l.log.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// copyLog copies the served files of a log directory (checkpoint, tiles).
func copyLog(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel != "checkpoint" && !strings.HasPrefix(rel, "tile"+string(filepath.Separator)) {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		os.MkdirAll(filepath.Dir(filepath.Join(dst, rel)), 0o755)
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func TestAuditVerifyDirectory(t *testing.T) {
	l := newTestLog(t, t.TempDir())
	l.grow(t, 0, 300, 0) // one full bundle, one partial of 44
	c := newCLI(t)
	state := filepath.Join(t.TempDir(), "state.json")

	r := c.must(exitOK, "audit", "verify", "--json", "--log-key", l.vkey, "--state", state, l.dir)
	m := decodeJSON(t, r.stdout)
	if m["size"] != float64(300) || m["entries_checked"] != true || m["hash_tiles"] != float64(3) || m["consistent_with"] != nil {
		t.Fatalf("first run: %v", m)
	}
	// The log grows to 1000 entries (level-1 partial tile of 3 hashes); the
	// second run proves consistency with the 300 seen before.
	l.grow(t, 300, 1000, 0)
	r = c.must(exitOK, "audit", "verify", "--json", "--log-key", l.vkey, "--state", state, l.dir)
	m = decodeJSON(t, r.stdout)
	if m["size"] != float64(1000) || m["consistent_with"] != float64(300) || m["hash_tiles"] != float64(5) {
		t.Fatalf("second run: %v", m)
	}
	// The log key as a did:key; hashes only; text output.
	r = c.must(exitOK, "audit", "verify", "--log-key", l.wallet.DID().String(), "--state", state, "--hashes-only", l.dir)
	if !strings.Contains(r.stdout, "ok: "+testOrigin+" size 1000") || !strings.Contains(r.stdout, "consistent with the checkpoint of size 1000") {
		t.Fatalf("stdout %q", r.stdout)
	}
	// A progress bar only when asked (stderr is not a terminal here).
	if r := c.must(exitOK, "audit", "verify", "--no-state", "--log-key", l.vkey, l.dir); strings.Contains(r.stderr, "entries [") {
		t.Fatalf("progress bar without a terminal: %q", r.stderr)
	}
	if r := c.must(exitOK, "audit", "verify", "--no-state", "--progress", "--log-key", l.vkey, l.dir); !strings.Contains(r.stderr, "entries [##############################] 100% 1000/1000") {
		t.Fatalf("no progress bar: %q", r.stderr)
	}

	// Another key: the checkpoint does not verify.
	other, _ := audit.VerifierKey(testOrigin, mustWallet(t).PublicKey())
	if r := c.must(exitFailed, "audit", "verify", "--no-state", "--log-key", other, l.dir); !strings.Contains(r.stderr, "checkpoint does not verify") {
		t.Fatalf("stderr %q", r.stderr)
	}
	c.must(exitUsage, "audit", "verify", "--no-state", "--log-key", "not-a-key", l.dir)
	c.must(exitUsage, "audit", "verify", "--no-state", l.dir)
	c.must(exitIO, "audit", "verify", "--no-state", "--log-key", l.vkey, filepath.Join(l.dir, "missing"))
}

// bundleEntries reads an entry bundle file.
func bundleEntries(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for len(b) > 0 {
		n := int(b[0])<<8 | int(b[1])
		out = append(out, b[2:2+n])
		b = b[2+n:]
	}
	return out
}

func writeBundle(t *testing.T, path string, entries [][]byte) {
	t.Helper()
	var b []byte
	for _, e := range entries {
		b = append(b, byte(len(e)>>8), byte(len(e)))
		b = append(b, e...)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestAuditVerifyTampered(t *testing.T) {
	l := newTestLog(t, t.TempDir())
	l.grow(t, 0, 300, 0)
	c := newCLI(t)
	verify := func(dir string, extra ...string) result {
		args := append([]string{"audit", "verify", "--no-state", "--log-key", l.vkey}, extra...)
		return c.run(append(args, dir)...)
	}

	t.Run("entry", func(t *testing.T) {
		dir := copyLog(t, l.dir)
		p := filepath.Join(dir, "tile", "entries", "000")
		es := bundleEntries(t, p)
		es[5] = bytes.Replace(es[5], []byte(`"req-5"`), []byte(`"req-X"`), 1)
		writeBundle(t, p, es)
		r := verify(dir)
		if r.code != exitFailed || !strings.Contains(r.stderr, "entry 5 ") || !strings.Contains(r.stderr, "event_hash") {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		// The hash tiles alone still agree with the checkpoint.
		if r := verify(dir, "--hashes-only"); r.code != exitOK {
			t.Fatalf("hashes only: exit %d: %s", r.code, r.stderr)
		}
	})
	t.Run("entry resealed", func(t *testing.T) {
		// A changed event with a recomputed event_hash: valid on its own,
		// but not the entry the tree holds.
		dir := copyLog(t, l.dir)
		p := filepath.Join(dir, "tile", "entries", "001.p", "44")
		es := bundleEntries(t, p)
		ev, err := audit.ParseEvent(es[3])
		if err != nil {
			t.Fatal(err)
		}
		ev.RequestID = "req-forged"
		if es[3], err = ev.Seal(); err != nil {
			t.Fatal(err)
		}
		writeBundle(t, p, es)
		r := verify(dir)
		if r.code != exitFailed || !strings.Contains(r.stderr, "entry 259: its leaf hash differs from tile/0/001.p/44") {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
	})
	t.Run("hash tile", func(t *testing.T) {
		dir := copyLog(t, l.dir)
		p := filepath.Join(dir, "tile", "0", "000")
		b, _ := os.ReadFile(p)
		b[32*7] ^= 1
		os.WriteFile(p, b, 0o644)
		r := verify(dir)
		if r.code != exitFailed || !strings.Contains(r.stderr, "entry 7: its leaf hash differs from tile/0/000") {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		r = verify(dir, "--hashes-only")
		if r.code != exitFailed || !strings.Contains(r.stderr, "tile/1/000.p/1: hash 0 is not the one the level below makes: the tile was changed") {
			t.Fatalf("hashes only: exit %d: %s", r.code, r.stderr)
		}
	})
	t.Run("truncated bundle", func(t *testing.T) {
		dir := copyLog(t, l.dir)
		p := filepath.Join(dir, "tile", "entries", "000")
		b, _ := os.ReadFile(p)
		os.WriteFile(p, b[:len(b)-1], 0o644)
		if r := verify(dir); r.code != exitFailed || !strings.Contains(r.stderr, "tile/entries/000: ") || !strings.Contains(r.stderr, "truncated entry") {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
	})
	t.Run("missing tile", func(t *testing.T) {
		dir := copyLog(t, l.dir)
		os.Remove(filepath.Join(dir, "tile", "0", "001.p", "44"))
		if r := verify(dir); r.code != exitFailed || !strings.Contains(r.stderr, "tile/0/001.p/44 is missing") {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
	})
	t.Run("checkpoint", func(t *testing.T) {
		dir := copyLog(t, l.dir)
		p := filepath.Join(dir, "checkpoint")
		b, _ := os.ReadFile(p)
		os.WriteFile(p, bytes.Replace(b, []byte("\n300\n"), []byte("\n299\n"), 1), 0o644)
		if r := verify(dir); r.code != exitFailed || !strings.Contains(r.stderr, "checkpoint does not verify") {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
	})
}

func TestAuditVerifySplitView(t *testing.T) {
	honest := newTestLog(t, t.TempDir())
	honest.grow(t, 0, 300, 0)
	c := newCLI(t)
	state := filepath.Join(t.TempDir(), "state.json")
	c.must(exitOK, "audit", "verify", "--log-key", honest.vkey, "--state", state, honest.dir)
	before, _ := os.ReadFile(state)

	// The same key and origin sign another history.
	fork := newTestLog(t, t.TempDir())
	fork.grow(t, 0, 300, 1)
	for _, size := range []int{300, 400} {
		if size > 300 {
			fork.grow(t, 300, size, 1)
		}
		r := c.run("audit", "verify", "--json", "--log-key", honest.vkey, "--state", state, fork.dir)
		if r.code != exitFailed || !strings.Contains(r.stderr, "split view of "+testOrigin) {
			t.Fatalf("size %d: exit %d: %s", size, r.code, r.stderr)
		}
		// Both checkpoints are reported, on stderr and in the JSON.
		hcp, _ := os.ReadFile(filepath.Join(honest.dir, "checkpoint"))
		fcp, _ := os.ReadFile(filepath.Join(fork.dir, "checkpoint"))
		if !strings.Contains(r.stderr, string(hcp)) || !strings.Contains(r.stderr, string(fcp)) {
			t.Fatalf("size %d: the checkpoints are not both reported:\n%s", size, r.stderr)
		}
		sv := decodeJSON(t, r.stdout)["split_view"].(map[string]any)
		if sv["previous"] != string(hcp) || sv["current"] != string(fcp) {
			t.Fatalf("size %d: json %v", size, sv)
		}
		// The state keeps the honest checkpoint.
		if after, _ := os.ReadFile(state); !bytes.Equal(after, before) {
			t.Fatalf("state changed on a split view")
		}
	}
	// A rollback: the state holds the fork at 400, the honest log is at 300.
	state2 := filepath.Join(t.TempDir(), "state.json")
	c.must(exitOK, "audit", "verify", "--log-key", honest.vkey, "--state", state2, fork.dir)
	if r := c.run("audit", "verify", "--log-key", honest.vkey, "--state", state2, honest.dir); r.code != exitFailed || !strings.Contains(r.stderr, "rolled back") {
		t.Fatalf("rollback: exit %d: %s", r.code, r.stderr)
	}
	// A damaged state file is an I/O error, not a pass.
	os.WriteFile(state2, []byte("{}"), 0o600)
	c.must(exitIO, "audit", "verify", "--log-key", honest.vkey, "--state", state2, honest.dir)
}

// tilesServer serves a log directory as examples/server does under /tlog/,
// with entry bundles behind a bearer credential.
func tilesServer(t *testing.T, l *testLog, credential string) *httptest.Server {
	tiles := http.StripPrefix("/tlog", l.store.Handler())
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/tlog/tile/entries/") && r.Header.Get("Authorization") != "Bearer "+credential {
			http.Error(w, "auditor credential required", http.StatusUnauthorized)
			return
		}
		tiles.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestAuditVerifyHTTP(t *testing.T) {
	l := newTestLog(t, t.TempDir())
	l.grow(t, 0, 600, 0)
	const cred = "auditor-secret-credential"
	srv := tilesServer(t, l, cred)
	url := srv.URL + "/tlog/"
	c := newCLI(t)
	state := filepath.Join(t.TempDir(), "state.json")

	// Entry bundles need the credential: a clear I/O error without it.
	r := c.run("audit", "verify", "--log-key", l.vkey, "--state", state, url)
	if r.code != exitIO || !strings.Contains(r.stderr, "401") || !strings.Contains(r.stderr, "--auth") {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	// Hash tiles are public.
	c.must(exitOK, "audit", "verify", "--log-key", l.vkey, "--state", state, "--hashes-only", url)
	r = c.must(exitOK, "audit", "verify", "--json", "--log-key", l.vkey, "--state", state, "--auth", cred, url)
	if m := decodeJSON(t, r.stdout); m["size"] != float64(600) || m["entries_checked"] != true {
		t.Fatalf("%v", m)
	}
	if strings.Contains(r.stdout+r.stderr, cred) {
		t.Fatalf("the credential reached the output")
	}
	// From the environment, after the log grew.
	l.grow(t, 600, 700, 0)
	c.env[adminTokenEnv] = cred
	r = c.must(exitOK, "audit", "verify", "--json", "--log-key", l.wallet.DID().String(), "--state", state, strings.TrimSuffix(url, "/"))
	if m := decodeJSON(t, r.stdout); m["size"] != float64(700) || m["consistent_with"] != float64(600) {
		t.Fatalf("%v", m)
	}
	// --auth is for URLs only.
	c.must(exitUsage, "audit", "verify", "--log-key", l.vkey, "--no-state", "--auth", "x", l.dir)
	// A server that is gone.
	srv.Close()
	c.must(exitIO, "audit", "verify", "--log-key", l.vkey, "--no-state", url)
}

func TestAuditVerifyHTTPSplitView(t *testing.T) {
	honest := newTestLog(t, t.TempDir())
	honest.grow(t, 0, 300, 0)
	fork := newTestLog(t, t.TempDir())
	fork.grow(t, 0, 350, 1)
	c := newCLI(t)
	state := filepath.Join(t.TempDir(), "state.json")
	c.must(exitOK, "audit", "verify", "--log-key", honest.vkey, "--state", state, "--hashes-only", tilesServer(t, honest, "x").URL+"/tlog/")
	r := c.run("audit", "verify", "--log-key", honest.vkey, "--state", state, "--hashes-only", tilesServer(t, fork, "x").URL+"/tlog/")
	if r.code != exitFailed || !strings.Contains(r.stderr, "split view") || !strings.Contains(r.stderr, "does not extend") {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
}

// proofJSON is an inclusion proof in the shape GET
// /v1/audit/proofs/inclusion of examples/server answers.
func proofJSON(t *testing.T, l *testLog, index, size uint64) []byte {
	t.Helper()
	ctx := context.Background()
	p, err := l.log.InclusionProof(ctx, index, size)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := l.log.Entry(ctx, index)
	if err != nil {
		t.Fatal(err)
	}
	hs := make([]string, len(p))
	for i, h := range p {
		hs[i] = h.String()
	}
	b, err := json.Marshal(proofDoc{Index: index, TreeSize: size, LeafHash: audit.LeafHash(entry).String(), Proof: hs, EntryB64u: contracts.EncodeBase64URL(entry)})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAuditProof(t *testing.T) {
	l := newTestLog(t, t.TempDir())
	cp := l.grow(t, 0, 100, 0)
	dir := t.TempDir()
	cpFile := filepath.Join(dir, "checkpoint")
	os.WriteFile(cpFile, cp.Note, 0o644)
	c := newCLI(t)
	for _, idx := range []uint64{0, 42, 99} {
		c.stdin = string(proofJSON(t, l, idx, 100))
		r := c.must(exitOK, "audit", "proof", "--json", "--log-key", l.vkey, "--checkpoint", cpFile)
		if m := decodeJSON(t, r.stdout); m["index"] != float64(idx) || m["event_id"] == nil {
			t.Fatalf("%v", m)
		}
	}
	good := proofJSON(t, l, 42, 100)
	var d proofDoc
	json.Unmarshal(good, &d)
	mutate := func(f func(d *proofDoc)) string {
		dd := d
		dd.Proof = append([]string(nil), d.Proof...)
		f(&dd)
		b, _ := json.Marshal(dd)
		return string(b)
	}
	other := proofJSON(t, l, 43, 100)
	var d43 proofDoc
	json.Unmarshal(other, &d43)
	fails := []struct {
		name, in, want string
	}{
		{"wrong index", mutate(func(d *proofDoc) { d.Index = 41 }), "not in the checkpoint's tree"},
		{"other entry", mutate(func(d *proofDoc) { d.EntryB64u, d.LeafHash = d43.EntryB64u, d43.LeafHash }), "not in the checkpoint's tree"},
		{"leaf hash of another entry", mutate(func(d *proofDoc) { d.LeafHash = d43.LeafHash }), "leaf_hash is not the hash of the entry"},
		{"proof hash", mutate(func(d *proofDoc) { d.Proof[0] = tlog.Hash{}.String() }), "not in the checkpoint's tree"},
		{"tree size", mutate(func(d *proofDoc) { d.TreeSize = 101 }), "tree size 101"},
		{"no leaf", mutate(func(d *proofDoc) { d.EntryB64u, d.LeafHash = "", "" }), "neither"},
		{"unknown member", strings.Replace(string(good), `{`, `{"extra":1,`, 1), "not an inclusion proof"},
		{"not JSON", "proof", "not an inclusion proof"},
	}
	for _, f := range fails {
		c.stdin = f.in
		r := c.run("audit", "proof", "--log-key", l.vkey, "--checkpoint", cpFile)
		if r.code != exitFailed || !strings.Contains(r.stderr, f.want) {
			t.Errorf("%s: exit %d: %s", f.name, r.code, r.stderr)
		}
	}
	c.must(exitUsage, "audit", "proof", "--log-key", l.vkey)
}

func TestAuditBundleVerify(t *testing.T) {
	l := newTestLog(t, t.TempDir())
	l.grow(t, 0, 50, 0)
	b, err := l.log.ExportBundle(context.Background(), 10, 20, audit.BundleOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "bundle.json")
	os.WriteFile(p, b, 0o644)
	c := newCLI(t)
	r := c.must(exitOK, "audit", "bundle", "verify", "--json", "--log-key", l.vkey, p)
	if m := decodeJSON(t, r.stdout); m["events"] != float64(10) || m["size"] != float64(50) {
		t.Fatalf("%v", m)
	}
	c.stdin = string(b)
	c.must(exitOK, "audit", "bundle", "verify", "--log-key", l.wallet.DID().String())
	// One event changed.
	c.stdin = strings.Replace(string(b), "req-15", "req-51", 1)
	if r := c.run("audit", "bundle", "verify", "--log-key", l.vkey); r.code != exitFailed || !strings.Contains(r.stderr, "does not verify") {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	other, _ := audit.VerifierKey(testOrigin, mustWallet(t).PublicKey())
	c.stdin = string(b)
	c.must(exitFailed, "audit", "bundle", "verify", "--log-key", other)
}

func TestParseBundle(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want int
		ok   bool
	}{
		{[]byte{0, 1, 'a', 0, 0}, 2, true},
		{[]byte{0, 1, 'a', 0, 0}, 1, false},
		{[]byte{0, 1, 'a'}, 2, false},
		{[]byte{0, 2, 'a'}, 1, false},
		{[]byte{0}, 1, false},
		{nil, 1, false},
	} {
		es, err := parseBundle(tc.in, tc.want)
		if (err == nil) != tc.ok || tc.ok && len(es) != tc.want {
			t.Errorf("parseBundle(%x, %d) = %d entries, %v", tc.in, tc.want, len(es), err)
		}
	}
	if got := c2spTilePath("0", 1234067, 44); got != "tile/0/x001/x234/067.p/44" {
		t.Errorf("path %s", got)
	}
	if got := c2spTilePath("entries", 5, 256); got != "tile/entries/005" {
		t.Errorf("path %s", got)
	}
}

func TestProgressBar(t *testing.T) {
	if got := bar("entries", 5, 10, 10); got != "entries [#####-----]  50% 5/10" {
		t.Fatalf("%q", got)
	}
	if got := bar("entries", 1<<62, 1<<62, 4); got != "entries [####] 100% 4611686018427387904/4611686018427387904" {
		t.Fatalf("%q", got)
	}
	var p *progress
	p.set(1) // a nil bar draws nothing
	p.done()
}
