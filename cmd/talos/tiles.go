package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/contracts"
	"github.com/talosgo/talos/identity"
)

// C2SP tlog-tiles: height 8, 256 hashes or entries a tile.
const (
	tileHeight = 8
	tileWidth  = 1 << tileHeight
	// maxBundleBytes bounds one entry bundle: 256 entries of at most
	// 2^16−1 bytes, each after a 2-byte length.
	maxBundleBytes = tileWidth * (2 + 1<<16 - 1)
)

// errTileNotFound reports a tile (or checkpoint) the source does not have.
var errTileNotFound = errors.New("not found")

// A tileSource reads the files of a C2SP tiled log: "checkpoint",
// "tile/<L>/<N>[.p/<W>]" and "tile/entries/<N>[.p/<W>]".
type tileSource interface {
	read(ctx context.Context, path string, limit int) ([]byte, error)
	String() string
}

var tileFileRE = regexp.MustCompile(`^(checkpoint|tile/(entries|[0-9]+)/(x[0-9]{3}/)*[0-9]{3}(\.p/[0-9]+)?)$`)

// dirSource reads a directory written by audit/file.
type dirSource struct{ dir string }

func (d dirSource) String() string { return d.dir }

func (d dirSource) read(_ context.Context, path string, limit int) ([]byte, error) {
	if !tileFileRE.MatchString(path) {
		return nil, fmt.Errorf("bad tile path %q", path)
	}
	f, err := os.Open(filepath.Join(d.dir, filepath.FromSlash(path)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, errTileNotFound
	}
	if err != nil {
		return nil, wrap(exitIO, "cannot read "+path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		return nil, wrap(exitIO, "cannot read "+path, err)
	}
	if len(b) > limit {
		return nil, failf(exitFailed, "%s: larger than %d bytes", path, limit)
	}
	return b, nil
}

// httpSource reads a tiled log served over HTTP (examples/server: the
// base URL ends in /tlog/). auth, when set, is sent as a bearer
// credential: entry bundles may need an auditor's.
type httpSource struct {
	base   string
	auth   string
	client *http.Client
}

func (h *httpSource) String() string { return h.base }

func (h *httpSource) read(ctx context.Context, path string, limit int) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, h.base+path, nil)
	if err != nil {
		return nil, usageError("bad URL: %v", err)
	}
	if h.auth != "" {
		req.Header.Set("Authorization", "Bearer "+h.auth)
	}
	resp, err := h.client.Do(req)
	if err != nil {
		return nil, wrap(exitIO, "cannot fetch "+path, err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return nil, errTileNotFound
	case http.StatusUnauthorized, http.StatusForbidden:
		hint := ""
		if strings.HasPrefix(path, "tile/entries/") {
			hint = ": entry bundles need an auditor credential (--auth or $TALOS_ADMIN_TOKEN), or use --hashes-only"
		}
		return nil, failf(exitIO, "fetch %s: %s%s", path, resp.Status, hint)
	default:
		return nil, failf(exitIO, "fetch %s: %s", path, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, int64(limit)+1))
	if err != nil {
		return nil, wrap(exitIO, "cannot fetch "+path, err)
	}
	if len(b) > limit {
		return nil, failf(exitFailed, "%s: larger than %d bytes", path, limit)
	}
	return b, nil
}

// newSource opens a directory or an http(s) URL.
func newSource(arg, auth string) (tileSource, error) {
	if strings.HasPrefix(arg, "http://") || strings.HasPrefix(arg, "https://") {
		if !strings.HasSuffix(arg, "/") {
			arg += "/"
		}
		return &httpSource{base: arg, auth: auth, client: &http.Client{Timeout: 60 * time.Second}}, nil
	}
	if auth != "" {
		return nil, usageError("--auth applies to URLs only")
	}
	st, err := os.Stat(arg)
	if err != nil {
		return nil, wrap(exitIO, "cannot open the log", err)
	}
	if !st.IsDir() {
		return nil, failf(exitIO, "%s is not a directory", arg)
	}
	return dirSource{dir: arg}, nil
}

// c2spTilePath returns the C2SP path of a tile: level is "entries" or a
// level number; w < 256 makes it partial.
func c2spTilePath(level string, n int64, w int) string {
	var b strings.Builder
	b.WriteString("tile/" + level + "/")
	s := strconv.FormatInt(n, 10)
	for len(s)%3 != 0 {
		s = "0" + s
	}
	for i := 0; i < len(s); i += 3 {
		if i > 0 {
			b.WriteByte('/')
		}
		if i+3 < len(s) {
			b.WriteByte('x')
		}
		b.WriteString(s[i : i+3])
	}
	if w < tileWidth {
		b.WriteString(".p/" + strconv.Itoa(w))
	}
	return b.String()
}

// readTile returns a tile's data with exactly w units of size unit (a
// hash, or an entry for bundles, checked by the caller). A missing partial
// tile falls back to the full tile, as C2SP tlog-tiles allows: the log may
// have grown since the checkpoint.
func readTile(ctx context.Context, src tileSource, level string, n int64, w int, limit int) ([]byte, string, bool, error) {
	p := c2spTilePath(level, n, w)
	b, err := src.read(ctx, p, limit)
	if errors.Is(err, errTileNotFound) && w < tileWidth {
		full := c2spTilePath(level, n, tileWidth)
		if b, err = src.read(ctx, full, limit); err == nil {
			return b, full, true, nil
		}
	}
	if errors.Is(err, errTileNotFound) {
		return nil, p, false, failf(exitFailed, "%s is missing from %s", p, src)
	}
	return b, p, false, err
}

// hashTile reads a hash tile and returns its w hashes.
func hashTile(ctx context.Context, src tileSource, level int, n int64, w int) ([]tlog.Hash, string, error) {
	b, p, full, err := readTile(ctx, src, strconv.Itoa(level), n, w, tileWidth*tlog.HashSize)
	if err != nil {
		return nil, p, err
	}
	want := w
	if full {
		want = tileWidth
	}
	if len(b) != want*tlog.HashSize {
		return nil, p, failf(exitFailed, "%s: %d bytes, want %d", p, len(b), want*tlog.HashSize)
	}
	hs := make([]tlog.Hash, w)
	for i := range hs {
		copy(hs[i][:], b[i*tlog.HashSize:])
	}
	return hs, p, nil
}

// entryBundle reads an entry bundle and returns its w entries.
func entryBundle(ctx context.Context, src tileSource, n int64, w int) ([][]byte, string, error) {
	b, p, full, err := readTile(ctx, src, "entries", n, w, maxBundleBytes)
	if err != nil {
		return nil, p, err
	}
	want := w
	if full {
		want = tileWidth
	}
	entries, err := parseBundle(b, want)
	if err != nil {
		return nil, p, failf(exitFailed, "%s: %v", p, err)
	}
	return entries[:w], p, nil
}

// parseBundle splits a C2SP entry bundle (each entry a big-endian uint16
// length and its bytes) into exactly want entries, nothing after them.
// Errors are *contracts.Error (TALOS_INVALID_INPUT).
func parseBundle(b []byte, want int) ([][]byte, error) {
	bad := func(msg string) ([][]byte, error) {
		return nil, contracts.New(contracts.CodeInvalidInput, msg)
	}
	out := make([][]byte, 0, want)
	for len(b) > 0 {
		if len(out) == want {
			return bad("bytes after the last entry")
		}
		if len(b) < 2 {
			return bad("truncated entry length")
		}
		n := int(b[0])<<8 | int(b[1])
		if len(b) < 2+n {
			return bad("truncated entry")
		}
		out = append(out, b[2:2+n])
		b = b[2+n:]
	}
	if len(out) != want {
		return bad(fmt.Sprintf("%d entries, want %d", len(out), want))
	}
	return out, nil
}

// tileReader adapts a tileSource to tlog.TileReader for proofs. Tiles are
// verified by tlog.TileHashReader against the tree hash.
type tileReader struct {
	ctx context.Context
	src tileSource
	err error // the first I/O error, kept to report it with its exit code
}

func (r *tileReader) Height() int { return tileHeight }

func (r *tileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		if t.L < 0 {
			return nil, errors.New("data tiles are not read")
		}
		hs, _, err := hashTile(r.ctx, r.src, t.L, t.N, t.W)
		if err != nil {
			if r.err == nil {
				r.err = err
			}
			return nil, err
		}
		data := make([]byte, 0, len(hs)*tlog.HashSize)
		for _, h := range hs {
			data = append(data, h[:]...)
		}
		out[i] = data
	}
	return out, nil
}

func (r *tileReader) SaveTiles([]tlog.Tile, [][]byte) {}

// logKey is the log's public key as given on the command line: a C2SP
// verifier key ("<name>+<hash>+<key>") or a did:key, whose verifier takes
// the origin from --origin or from the note being verified.
type logKey struct {
	v      note.Verifier // set for a verifier key
	did    identity.DID  // set for a did:key
	origin string
}

func parseLogKey(s, origin string) (*logKey, error) {
	if s == "" {
		return nil, usageError("--log-key is required (a C2SP verifier key or a did:key)")
	}
	if strings.HasPrefix(s, "did:") {
		d, err := identity.ParseDID(s)
		if err != nil {
			return nil, usageError("bad --log-key: %v", err)
		}
		return &logKey{did: d, origin: origin}, nil
	}
	v, err := note.NewVerifier(s)
	if err != nil {
		return nil, usageError("bad --log-key: %v", err)
	}
	if origin != "" && origin != v.Name() {
		return nil, usageError("--origin %q differs from the verifier key's name %q", origin, v.Name())
	}
	return &logKey{v: v}, nil
}

// verifier returns the note verifier for a checkpoint note.
func (k *logKey) verifier(msg []byte) (note.Verifier, error) {
	if k.v != nil {
		return k.v, nil
	}
	origin := k.origin
	if origin == "" {
		line, _, _ := strings.Cut(string(msg), "\n")
		origin = line
	}
	v, err := audit.NewVerifier(origin, k.did.PublicKey())
	if err != nil {
		return nil, failf(exitFailed, "checkpoint: bad origin line")
	}
	return v, nil
}

// open verifies and parses a checkpoint note.
func (k *logKey) open(msg []byte) (audit.Checkpoint, error) {
	v, err := k.verifier(msg)
	if err != nil {
		return audit.Checkpoint{}, err
	}
	cp, err := audit.OpenCheckpoint(msg, v)
	if err != nil {
		return audit.Checkpoint{}, wrap(exitFailed, "checkpoint does not verify", err)
	}
	return cp, nil
}
