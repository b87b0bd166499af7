package httpx

import (
	"net/url"
	"testing"

	"github.com/talosgo/talos/contracts"
)

func TestParsePage(t *testing.T) {
	for _, tc := range []struct {
		query string
		after string
		has   bool
		limit int
	}{
		{"", "", false, DefaultPageLimit},
		{"limit=1", "", false, 1},
		{"limit=500&cursor=" + PageCursor("b"), "b", true, 500},
		{"cursor=", "", false, DefaultPageLimit},
		{"cursor=" + PageCursor("é/ü"), "é/ü", true, DefaultPageLimit},
		{"team=x&limit=7", "", false, 7},
	} {
		q, err := url.ParseQuery(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		after, has, limit, err := ParsePage(q, 16)
		if err != nil || after != tc.after || has != tc.has || limit != tc.limit {
			t.Errorf("%q: %q %v %d %v", tc.query, after, has, limit, err)
		}
	}
	for _, bad := range []string{
		"limit=0", "limit=501", "limit=abc", "limit=01", "limit=-1", "limit=", "limit=1&limit=2", "limit=1e2",
		"cursor=!!", "cursor=a=", "cursor=" + contracts.EncodeBase64URL([]byte("x")),
		"cursor=" + contracts.EncodeBase64URL([]byte("k1.")), "cursor=" + PageCursor("a") + "&cursor=" + PageCursor("b"),
		"cursor=" + PageCursor("seventeen-bytes-x"), "cursor=" + contracts.EncodeBase64URL([]byte("k1.\xff")),
	} {
		q, _ := url.ParseQuery(bad)
		if _, _, _, err := ParsePage(q, 16); contracts.CodeOf(err) != contracts.CodeInvalidInput {
			t.Errorf("%q: %v, want TALOS_INVALID_INPUT", bad, err)
		}
	}
}
