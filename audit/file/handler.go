package file

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

var tilePathRE = regexp.MustCompile(`^tile/(entries|[0-9]|[1-5][0-9]|6[0-3])/(x[0-9]{3}/)*[0-9]{3}(\.p/([1-9]|[1-9][0-9]|1[0-9][0-9]|2[0-4][0-9]|25[0-5]))?$`)

// Handler serves the log read-only as a C2SP tlog-tiles HTTP endpoint:
// GET /checkpoint (not cached) and GET /tile/... (full tiles immutable,
// partial tiles cacheable for a minute; a 404 carries no caching header).
// Nothing else in the directory, such as the journal, is served. Mount it under a prefix with
// http.StripPrefix.
//
// It serves entry bundles (tile/entries/...), whose bytes are the events
// themselves, to whoever reaches it. Unless the log is meant to be public,
// put the entries paths behind the same authorization as event queries and
// serve them with Cache-Control private (gateway/auditapi does): checkpoints
// and hash tiles reveal only hashes and can stay public.
func (s *Store) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		rel := strings.TrimPrefix(r.URL.Path, "/")
		if rel != CheckpointFile && !tilePathRE.MatchString(rel) {
			http.NotFound(w, r)
			return
		}
		data, err := os.ReadFile(filepath.Join(s.dir, filepath.FromSlash(rel)))
		if err != nil {
			// No caching headers: a tile missing now (not full yet) is
			// served later, and a cached 404 must not outlive that.
			http.NotFound(w, r)
			return
		}
		switch {
		case rel == CheckpointFile:
			w.Header().Set("Cache-Control", "no-cache")
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		case strings.Contains(rel, ".p/"):
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("Content-Type", "application/octet-stream")
		default:
			w.Header().Set("Cache-Control", "max-age=31536000, immutable")
			w.Header().Set("Content-Type", "application/octet-stream")
		}
		w.Write(data)
	})
}
