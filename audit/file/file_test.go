package file_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/audit/audittest"
	"github.com/talosgo/talos/audit/file"
	"golang.org/x/mod/sumdb/tlog"
)

func open(t testing.TB, dir string, cfg file.Config) *file.Store {
	t.Helper()
	cfg.Dir = dir
	s, err := file.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	audittest.Run(t, func(t *testing.T) audit.Store {
		// fsync is exercised by the crash test; here it only costs time.
		s := open(t, t.TempDir(), file.Config{JournalLimit: 8 << 10, NoSyncUnsafe: true})
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	// A small journal limit forces several rotations.
	s := open(t, dir, file.Config{JournalLimit: 16 << 10})
	l := audittest.NewLog(t, s)
	const n = 700 // two full bundles and a tail
	var cp audit.Checkpoint
	for start := 0; start < n; start += 50 {
		var wg sync.WaitGroup
		for i := start; i < start+50; i++ {
			wg.Go(func() {
				if _, err := l.Append(ctx, audittest.Event(i)); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if start == 300 {
			var err error
			if cp, err = l.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Size(ctx); err == nil {
		t.Fatal("closed store answers")
	}
	s2 := open(t, dir, file.Config{})
	defer s2.Close()
	l2 := audittest.NewLog(t, s2)
	if size, _ := l2.Size(ctx); size != n {
		t.Fatalf("reopened size %d", size)
	}
	if _, err := l2.Verify(ctx); err != nil {
		t.Fatal(err)
	}
	latest, err := l2.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p, err := l2.ConsistencyProof(ctx, cp.Size, latest.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := audit.VerifyConsistency(p, cp, latest); err != nil {
		t.Fatal(err)
	}
	// A second process cannot open the directory while it is in use.
	if _, err := file.Open(ctx, file.Config{Dir: dir}); err == nil {
		t.Fatal("directory opened twice")
	}
}

// dirTiles reads C2SP tiles from the directory, as a client of a static
// file server of it would.
type dirTiles struct{ dir string }

func (d dirTiles) Height() int { return 8 }
func (d dirTiles) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		p := strings.TrimPrefix(t.Path(), "tile/8/") // sumdb path → C2SP path
		b, err := os.ReadFile(filepath.Join(d.dir, "tile", filepath.FromSlash(p)))
		if err != nil {
			return nil, err
		}
		out[i] = b
	}
	return out, nil
}
func (d dirTiles) SaveTiles([]tlog.Tile, [][]byte) {}

func TestTiledLayout(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir, file.Config{NoSyncUnsafe: true}) // layout only
	defer s.Close()
	l := audittest.NewLog(t, s)
	// Append small raw entries straight to the store: the layout, not the
	// events, is under test, and 65,836 entries reach tile level 2.
	const n = 256*256 + 300
	for start := 0; start < n; start += 4096 {
		var batch [][]byte
		for i := start; i < min(start+4096, n); i++ {
			batch = append(batch, []byte("entry "+strconv.Itoa(i)))
		}
		if _, err := s.Append(ctx, batch, audit.BuildHashes(batch)); err != nil {
			t.Fatal(err)
		}
	}
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Everything below comes from the files only, with the public key.
	_, verifier := audittest.SignerVerifier(t)
	raw, err := os.ReadFile(filepath.Join(dir, file.CheckpointFile))
	if err != nil {
		t.Fatal(err)
	}
	fcp, err := audit.OpenCheckpoint(raw, verifier)
	if err != nil || fcp.Size != n || fcp.Hash != cp.Hash {
		t.Fatalf("checkpoint file: %v", err)
	}
	r := tlog.TileHashReader(fcp.Tree(), dirTiles{dir})
	for _, idx := range []int64{0, 255, 256, 65535, 65536, n - 1} {
		p, err := tlog.ProveRecord(int64(n), idx, r)
		if err != nil {
			t.Fatalf("prove %d from tiles: %v", idx, err)
		}
		entry := readBundleEntry(t, dir, idx, n)
		if err := audit.VerifyInclusion(p, fcp, uint64(idx), audit.LeafHash(entry)); err != nil {
			t.Fatalf("entry %d from its bundle: %v", idx, err)
		}
	}
}

// readBundleEntry finds entry idx in the entry bundles of a tree of size n.
func readBundleEntry(t *testing.T, dir string, idx, n int64) []byte {
	k := idx / 256
	w := 256
	if k == n/256 {
		w = int(n % 256)
	}
	p := tlog.Tile{H: 8, L: 0, N: k, W: w}.Path()
	p = "tile/entries/" + strings.TrimPrefix(p, "tile/8/0/")
	data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
	if err != nil {
		t.Fatal(err)
	}
	for i := int64(0); len(data) >= 2; i++ {
		l := int(data[0])<<8 | int(data[1])
		if i == idx%256 {
			return data[2 : 2+l]
		}
		data = data[2+l:]
	}
	t.Fatalf("entry %d not in %s", idx, p)
	return nil
}

func TestRedactedValuesNeverStored(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir, file.Config{})
	red, err := audit.NewRedactor(audit.RedactionConfig{
		Rules: []audit.RedactionRule{
			{Field: "meta.api_key", Action: audit.Drop},
			{Field: "meta.email", Action: audit.HMAC},
			{Field: "principal.principal_id", Action: audit.HMAC},
			{Field: "meta.prompt", Action: audit.Truncate, Keep: 4},
			{Field: "resource.resource_id", Action: audit.Drop},
		},
		HMACKey: []byte("redaction-key"), HMACKeyID: "rk1",
	})
	if err != nil {
		t.Fatal(err)
	}
	signer, verifier := audittest.SignerVerifier(t)
	l, err := audit.New(ctx, audit.Config{Store: s, Signer: signer, Verifier: verifier, Redactor: red})
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{"sk-SECRET-KEY-1234", "alice-SECRET@example.com", "principal-SECRET", "PROMPT-SECRET-TAIL", "resource-SECRET"}
	for i := range 300 {
		e := audittest.Event(i)
		e.Principal.PrincipalID = secrets[2]
		e.Resource = &audit.Resource{ResourceType: "doc", ResourceID: secrets[4]}
		e.Meta = map[string]any{"api_key": secrets[0], "email": secrets[1], "prompt": "ok: " + secrets[3], "n": i}
		r, err := l.Append(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			entry, _ := l.Entry(ctx, r.Index)
			ev, err := audit.ParseEvent(entry)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Meta["prompt"] != "ok: " || ev.Meta[audit.MetaRedactedKeys] != "api_key" ||
				!strings.HasPrefix(ev.Principal.PrincipalID, "hmac:rk1:") || ev.Resource.ResourceID != "" {
				t.Fatalf("redacted event %s", entry)
			}
		}
	}
	if _, err := l.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	files := 0
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files++
		// Every secret contains "SECRET"; truncation kept only "ok: ".
		if bytes.Contains(b, []byte("SECRET")) {
			t.Errorf("%s holds a redacted value", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 4 {
		t.Fatalf("only %d files scanned", files)
	}
}

// The crash test re-executes the test binary as a child that appends up to
// 100,000 events and reports each receipt on stdout; the parent kills it
// with SIGKILL mid-way and checks the store.
const crashEnv = "TALOS_AUDIT_FILE_CRASH_DIR"

func TestCrashChild(t *testing.T) {
	dir := os.Getenv(crashEnv)
	if dir == "" {
		t.Skip("helper process for TestCrashRecovery")
	}
	ctx := context.Background()
	s, err := file.Open(ctx, file.Config{Dir: dir, JournalLimit: 256 << 10})
	if err != nil {
		fmt.Println("ERR", err)
		os.Exit(2)
	}
	l := audittest.NewLog(t, s)
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= 100000 {
					return
				}
				r, err := l.Append(ctx, audittest.Event(int(i)))
				if err != nil {
					mu.Lock()
					fmt.Fprintln(out, "ERR", err)
					out.Flush()
					mu.Unlock()
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintf(out, "A %d %d\n", r.Index, i)
				if i%1000 == 0 {
					cp, err := l.Checkpoint(ctx)
					if err == nil {
						fmt.Fprintf(out, "C %s\n", base64.StdEncoding.EncodeToString(cp.Note))
					}
				}
				out.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	os.Exit(0)
}

func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[uint64]int{}
	var lastCP []byte
	var deadline time.Time
	sc := bufio.NewScanner(stdout)
	killed := false
	for sc.Scan() {
		if deadline.IsZero() {
			deadline = time.Now().Add(1500 * time.Millisecond)
		}
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 3 && f[0] == "A":
			idx, _ := strconv.ParseUint(f[1], 10, 64)
			i, _ := strconv.Atoi(f[2])
			acked[idx] = i
		case len(f) == 2 && f[0] == "C":
			lastCP, _ = base64.StdEncoding.DecodeString(f[1])
		case len(f) > 0 && f[0] == "ERR":
			t.Fatalf("child: %s", sc.Text())
		}
		if !killed && (len(acked) >= 10000 || time.Now().After(deadline)) {
			cmd.Process.Signal(syscall.SIGKILL)
			killed = true
		}
	}
	werr := cmd.Wait()
	if !killed {
		t.Fatalf("child finished all appends before the kill: no crash was exercised")
	}
	var ee *exec.ExitError
	if !errors.As(werr, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child was not killed by SIGKILL: %v", werr)
	}
	if len(acked) == 0 || lastCP == nil {
		t.Fatalf("child acknowledged %d entries and no checkpoint", len(acked))
	}
	ctx := context.Background()
	s := open(t, dir, file.Config{})
	defer s.Close()
	l := audittest.NewLog(t, s)
	size, err := l.Size(ctx)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := s.ReadEntries(ctx, 0, size)
	if err != nil {
		t.Fatal(err)
	}
	for idx, i := range acked {
		if idx >= size {
			t.Fatalf("acknowledged entry %d lost (size %d)", idx, size)
		}
		ev, err := audit.ParseEvent(entries[idx])
		if err != nil {
			t.Fatalf("entry %d: %v", idx, err)
		}
		if ev.RequestID != "req-"+strconv.Itoa(i) {
			t.Fatalf("entry %d holds %s, want req-%d", idx, ev.RequestID, i)
		}
	}
	if _, err := l.Verify(ctx); err != nil {
		t.Fatal(err)
	}
	_, verifier := audittest.SignerVerifier(t)
	old, err := audit.OpenCheckpoint(lastCP, verifier)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p, err := l.ConsistencyProof(ctx, old.Size, cur.Size)
	if err != nil {
		t.Fatal(err)
	}
	if err := audit.VerifyConsistency(p, old, cur); err != nil {
		t.Fatal(err)
	}
	t.Logf("killed after %d acknowledged appends; recovered %d entries; last checkpoint %d", len(acked), size, old.Size)
	// The log keeps working after recovery.
	if _, err := l.Append(ctx, audittest.Event(1<<20)); err != nil {
		t.Fatal(err)
	}
}

func TestTornJournalTail(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir, file.Config{})
	l := audittest.NewLog(t, s)
	for i := range 10 {
		if _, err := l.Append(ctx, audittest.Event(i)); err != nil {
			t.Fatal(err)
		}
	}
	// Simulate a crash: drop the store without Close, then tear the journal.
	jp := filepath.Join(dir, "talos-journal")
	f, err := os.OpenFile(jp, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte{0, 0, 1, 0, 9, 9, 9, 9, 'g', 'a', 'r'})
	f.Close()
	s.Close()
	f, _ = os.OpenFile(jp, os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte{0, 0, 1, 0, 9, 9})
	f.Close()
	s2 := open(t, dir, file.Config{})
	defer s2.Close()
	l2 := audittest.NewLog(t, s2)
	if n, _ := l2.Size(ctx); n != 10 {
		t.Fatalf("size %d after torn tail", n)
	}
	if _, err := l2.Append(ctx, audittest.Event(10)); err != nil {
		t.Fatal(err)
	}
	if _, err := l2.Verify(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestTamperingDetected(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir, file.Config{})
	l := audittest.NewLog(t, s)
	for i := range 600 {
		if _, err := l.Append(ctx, audittest.Event(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Rewrite one event inside a full entry bundle: the stored hashes no
	// longer match the entries, which Verify reports.
	bp := filepath.Join(dir, "tile", "entries", "000")
	b, err := os.ReadFile(bp)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(bp, bytes.Replace(b, []byte("req-17"), []byte("req-71"), 1), 0o644)
	s2 := open(t, dir, file.Config{})
	l2 := audittest.NewLog(t, s2)
	if _, err := l2.Verify(ctx); err == nil {
		t.Fatal("rewritten entry not detected")
	}
	s2.Close()
	os.WriteFile(bp, b, 0o644)
	// Flip a hash in a level-0 tile: the tree no longer matches the signed
	// checkpoint, and the log refuses the store.
	tp := filepath.Join(dir, "tile", "0", "001")
	h, err := os.ReadFile(tp)
	if err != nil {
		t.Fatal(err)
	}
	h[5] ^= 1
	os.WriteFile(tp, h, 0o644)
	s3 := open(t, dir, file.Config{})
	defer s3.Close()
	signer, verifier := audittest.SignerVerifier(t)
	if _, err := audit.New(ctx, audit.Config{Store: s3, Signer: signer, Verifier: verifier}); err == nil {
		t.Fatal("store with a flipped hash accepted")
	}
}

func TestHandler(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir, file.Config{})
	defer s.Close()
	l := audittest.NewLog(t, s)
	for i := range 300 {
		if _, err := l.Append(ctx, audittest.Event(i)); err != nil {
			t.Fatal(err)
		}
	}
	cp, err := l.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	get := func(p string) (int, []byte, http.Header) {
		resp, err := srv.Client().Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b, resp.Header
	}
	if code, b, _ := get("/checkpoint"); code != 200 || !bytes.Equal(b, cp.Note) {
		t.Fatalf("checkpoint: %d", code)
	}
	if code, _, h := get("/tile/0/000"); code != 200 || !strings.Contains(h.Get("Cache-Control"), "immutable") {
		t.Fatalf("full tile: %d", code)
	}
	if code, b, _ := get("/tile/entries/001.p/44"); code != 200 || len(b) == 0 {
		t.Fatalf("partial bundle: %d", code)
	}
	for _, p := range []string{"/talos-journal", "/talos-lock", "/tile/../talos-journal", "/tile/0/000.p/256", "/tile/0/1"} {
		if code, _, _ := get(p); code != 404 {
			t.Errorf("%s served with %d", p, code)
		}
	}
}

// TestObsoletePartialsRemoved: when a tile becomes full, its published
// partial versions are removed, whether they were published by this
// process or before a reopen.
func TestObsoletePartialsRemoved(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	exists := func(rel string) bool {
		_, err := os.Stat(filepath.Join(dir, filepath.FromSlash(rel)))
		return err == nil
	}
	appendN := func(l *audit.Log, from, to int) {
		for i := from; i < to; i++ {
			if _, err := l.Append(ctx, audittest.Event(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	s := open(t, dir, file.Config{NoSyncUnsafe: true})
	l := audittest.NewLog(t, s)
	appendN(l, 0, 300)
	if _, err := l.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if !exists("tile/0/001.p/44") || !exists("tile/entries/001.p/44") {
		t.Fatal("partial tiles of the checkpoint not published")
	}
	appendN(l, 300, 520) // tile 1 full: its partials go
	if exists("tile/0/001.p") || exists("tile/entries/001.p") {
		t.Fatal("partials of a full tile left")
	}
	if !exists("tile/0/001") || !exists("tile/entries/001") {
		t.Fatal("full tile 1 missing")
	}
	if _, err := l.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if !exists("tile/0/002.p/8") {
		t.Fatal("partial tile 2 not published")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, file.Config{NoSyncUnsafe: true})
	defer s.Close()
	l = audittest.NewLog(t, s)
	appendN(l, 520, 800) // tile 2 full after the reopen
	if exists("tile/0/002.p") || exists("tile/entries/002.p") {
		t.Fatal("partials published before the reopen left")
	}
	if _, err := l.Verify(ctx); err != nil {
		t.Fatal(err)
	}
}

// journalEnd walks the frames of a journal file and returns where they end
// (the first zero frame header or the end of the file).
func journalEnd(t *testing.T, data []byte) int {
	t.Helper()
	off := 20
	for len(data)-off >= 8 {
		n := int(binary.BigEndian.Uint32(data[off:]))
		if n == 0 {
			break
		}
		off += 8 + n
	}
	return off
}

// copyDir copies the files of a store directory as they are on disk: what a
// crash of the process that holds it open leaves.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The journal file is extended with zeros ahead of its frames; a crash
// leaves them (and possibly a torn frame inside them) behind, and recovery
// reads exactly the acknowledged frames.
func TestPreallocatedJournal(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	const limit = 64 << 10 // the chunk is at most the limit: several chunks before a rotation
	s := open(t, dir, file.Config{Dir: dir, JournalLimit: 8 << 20})
	l := audittest.NewLog(t, s)
	const n = 3000 // > 1 MiB of events: the journal grows by more than one chunk
	for i := range n {
		if _, err := l.Append(ctx, audittest.Event(i)); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, "talos-journal"))
	if err != nil {
		t.Fatal(err)
	}
	end := journalEnd(t, data)
	if len(data)%(1<<20) != 0 || end >= len(data) || end < 1<<20 {
		t.Fatalf("journal file %d bytes, frames end at %d: want whole 1 MiB chunks ahead of more than one chunk of frames", len(data), end)
	}
	if !bytes.Equal(data[end:], make([]byte, len(data)-end)) {
		t.Fatal("the space ahead of the frames is not zeros")
	}
	for _, torn := range []bool{false, true} {
		crash := t.TempDir()
		copyDir(t, dir, crash)
		if torn {
			// A frame whose write was cut short: its header and part of its
			// payload landed in the zeros.
			f, err := os.OpenFile(filepath.Join(crash, "talos-journal"), os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			hdr := []byte{0, 0, 2, 0, 1, 2, 3, 4, 0, 0, 1, 0xf0, '{', '"'}
			if _, err := f.WriteAt(hdr, int64(end)); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
		s2 := open(t, crash, file.Config{Dir: crash, JournalLimit: limit})
		l2 := audittest.NewLog(t, s2)
		if size, err := l2.Size(ctx); err != nil || size != n {
			t.Fatalf("torn %v: recovered size %d, %v; want %d", torn, size, err, n)
		}
		if _, err := l2.Verify(ctx); err != nil {
			t.Fatal(err)
		}
		// The recovered store appends across chunks and rotations again.
		for i := n; i < n+300; i++ {
			if _, err := l2.Append(ctx, audittest.Event(i)); err != nil {
				t.Fatal(err)
			}
		}
		again := t.TempDir()
		copyDir(t, crash, again)
		s3 := open(t, again, file.Config{Dir: again, JournalLimit: limit})
		l3 := audittest.NewLog(t, s3)
		if size, _ := l3.Size(ctx); size != n+300 {
			t.Fatalf("torn %v: second recovery size %d, want %d", torn, size, n+300)
		}
		if _, err := l3.Verify(ctx); err != nil {
			t.Fatal(err)
		}
		s3.Close()
		s2.Close()
	}
	s.Close()
}
