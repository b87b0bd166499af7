package audit

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/mod/sumdb/tlog"
)

// C2SP tlog-tiles geometry: 256 hashes or entries a tile.
const (
	tileHeight = 8
	tileWidth  = 1 << tileHeight
)

var tilePathRE = regexp.MustCompile(`^tile/(entries|[0-9]|[1-5][0-9]|6[0-3])/(x[0-9]{3}/)*[0-9]{3}(\.p/([1-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-5]))?$`)

// NewTileHandler serves any Store read-only as a C2SP tlog-tiles HTTP
// endpoint, under the rules of audit/file's Store.Handler, which serves the
// same bytes from its directory: GET (or HEAD) /checkpoint is the store's
// checkpoint note (Cache-Control no-cache); /tile/<L>/<N> a full hash tile
// or entry bundle (L "entries") once the log holds it (immutable, cached a
// year); /tile/<L>/<N>.p/<W> the partial tile of the stored checkpoint's
// tree only (cached a minute), until that tile is full. Everything else is
// 404 (without caching headers), other methods 405, and a failing store
// 503 with Cache-Control no-store (nothing is guessed). Mount it under a
// prefix with http.StripPrefix.
//
// Use it for stores that have no directory of tiles (PostgreSQL, memory);
// for audit/file prefer its own Handler. Like that one it serves entry
// bundles, whose bytes are the events, to whoever reaches it: unless the
// log is public, put tile/entries/... behind the authorization of event
// queries (gateway/auditapi does). Full tiles are cached in memory (at
// most 1024); the checkpoint and partial tiles are read from the store on
// every request. The handler is safe for concurrent use.
func NewTileHandler(s Store) http.Handler {
	if s == nil {
		panic("audit: NewTileHandler needs a Store")
	}
	cache := &tileCache{m: map[string][]byte{}}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		rel := strings.TrimPrefix(r.URL.Path, "/")
		var data []byte
		var partial bool
		var err error
		switch {
		case rel == "checkpoint":
			data, err = s.Checkpoint(r.Context())
		case tilePathRE.MatchString(rel):
			var ok bool
			if data, ok = cache.get(rel); !ok {
				data, partial, err = readTile(r.Context(), s, rel)
				if err == nil && !partial {
					cache.put(rel, data) // full tiles never change
				}
			}
		default:
			http.NotFound(w, r)
			return
		}
		switch {
		case errors.Is(err, ErrNotFound):
			http.NotFound(w, r) // not cached: the tile may exist later
			return
		case err != nil:
			w.Header().Set("Cache-Control", "no-store")
			http.Error(w, "audit store unavailable", http.StatusServiceUnavailable)
			return
		case rel == "checkpoint":
			w.Header().Set("Cache-Control", "no-cache")
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		case partial:
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("Content-Type", "application/octet-stream")
		default:
			w.Header().Set("Cache-Control", "max-age=31536000, immutable")
			w.Header().Set("Content-Type", "application/octet-stream")
		}
		w.Write(data)
	})
}

// tileCache keeps full tiles, which never change, so a tile client reading
// the same tiles again costs the store nothing. It is cleared when full.
type tileCache struct {
	mu sync.Mutex // guards m
	m  map[string][]byte
}

// maxCachedTiles bounds a tile handler's cache (about 8 MiB of hash tiles).
const maxCachedTiles = 1024

func (c *tileCache) get(rel string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.m[rel]
	return b, ok
}

func (c *tileCache) put(rel string, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= maxCachedTiles {
		clear(c.m)
	}
	c.m[rel] = b
}

// readTile returns the tile at rel (a path matching tilePathRE) if the log
// serves it, else ErrNotFound.
func readTile(ctx context.Context, s Store, rel string) (data []byte, partial bool, err error) {
	rest := strings.TrimPrefix(rel, "tile/")
	level, rest, _ := strings.Cut(rest, "/")
	index, width, partial := strings.Cut(rest, ".p/")
	w := tileWidth
	if partial {
		w, _ = strconv.Atoi(width)
	}
	n, err := strconv.ParseUint(strings.NewReplacer("x", "", "/", "").Replace(index), 10, 64)
	if err != nil || n >= 1<<40 || tileIndex(n) != index {
		return nil, partial, ErrNotFound // beyond any log, or not the canonical name
	}
	shift := 0
	if level != "entries" {
		l, _ := strconv.Atoi(level)
		shift = tileHeight * l
	}
	size, err := s.Size(ctx)
	if err != nil {
		return nil, partial, err
	}
	count := func(size uint64) uint64 { // entries (or hashes at the tile level) of a tree of size
		if shift >= 64 {
			return 0
		}
		return size >> shift
	}
	full := count(size) >= (n+1)*tileWidth
	if partial {
		// Only the partial tile of the stored checkpoint's tree, while
		// the tile is not full.
		cp, err := s.Checkpoint(ctx)
		if errors.Is(err, ErrNotFound) {
			return nil, partial, ErrNotFound
		}
		if err != nil {
			return nil, partial, err
		}
		cs, ok := noteSize(cp)
		if !ok {
			return nil, partial, storeError("stored checkpoint does not parse", nil)
		}
		if full || cs > size || count(cs)/tileWidth != n || int(count(cs)%tileWidth) != w {
			return nil, partial, ErrNotFound
		}
	} else if !full {
		return nil, partial, ErrNotFound
	}
	if level == "entries" {
		es, err := s.ReadEntries(ctx, n*tileWidth, n*tileWidth+uint64(w))
		if err != nil {
			return nil, partial, err
		}
		if len(es) != w {
			return nil, partial, storeError("store returned the wrong number of entries", nil)
		}
		var b []byte
		for _, e := range es {
			if len(e) > 1<<16-1 {
				return nil, partial, storeError("entry too large for an entry bundle", nil)
			}
			b = binary.BigEndian.AppendUint16(b, uint16(len(e)))
			b = append(b, e...)
		}
		return b, partial, nil
	}
	l, _ := strconv.Atoi(level)
	data, err = tlog.ReadTileData(tlog.Tile{H: tileHeight, L: l, N: int64(n), W: w}, hashReader{ctx, s})
	if err != nil {
		return nil, partial, err
	}
	return data, partial, nil
}

// tileIndex is the C2SP name of tile index n: 3-digit groups, all but the
// last prefixed with x (x001/x234/067).
func tileIndex(n uint64) string {
	s := pad3(n % 1000)
	for n >= 1000 {
		n /= 1000
		s = "x" + pad3(n%1000) + "/" + s
	}
	return s
}

func pad3(n uint64) string {
	s := strconv.FormatUint(n, 10)
	return strings.Repeat("0", 3-len(s)) + s
}

// noteSize reads the size line of a stored checkpoint note without
// verifying it (the Log verified it before storing it).
func noteSize(raw []byte) (uint64, bool) {
	i := bytes.Index(raw, []byte("\n\n"))
	if i < 0 {
		return 0, false
	}
	c, err := ParseCheckpointBody(raw[:i+1])
	if err != nil {
		return 0, false
	}
	return c.Size, true
}
