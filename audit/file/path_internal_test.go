package file

import (
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// tilePath agrees with tlog's N encoding (C2SP tlog-tiles uses the same
// 3-digit groups without the height element).
func TestTilePathMatchesTlog(t *testing.T) {
	for _, n := range []int64{0, 7, 999, 1000, 1001, 123456, 1234067, 1e9 + 5} {
		for _, w := range []int{1, 44, 255, 256} {
			want := strings.TrimPrefix(tlog.Tile{H: 8, L: 2, N: n, W: w}.Path(), "tile/8/")
			if got := tilePath("2", uint64(n), w); got != "tile/"+want {
				t.Errorf("tilePath(2, %d, %d) = %s, want tile/%s", n, w, got, want)
			}
			want = strings.Replace(tlog.Tile{H: 8, L: -1, N: n, W: w}.Path(), "tile/8/data/", "tile/entries/", 1)
			if got := tilePath("entries", uint64(n), w); got != want {
				t.Errorf("entries path %s, want %s", got, want)
			}
			if !tilePathRE.MatchString(tilePath("entries", uint64(n), w)) {
				t.Errorf("handler would not serve %s", tilePath("entries", uint64(n), w))
			}
		}
	}
}
