package httpx

import (
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/talosgo/talos/contracts"
)

// Page sizes of every paginated list of the gateway packages.
const (
	DefaultPageLimit = 100
	MaxPageLimit     = 500
)

// ParsePage reads a list's ?limit= and ?cursor=, each at most once:
// limit in decimal digits without a leading zero, 1..MaxPageLimit
// (DefaultPageLimit when absent); cursor the opaque next_cursor of the
// previous page ([PageCursor]: "k1." and the page's last key, of 1..maxKey
// bytes of UTF-8, in unpadded base64url), "" or absent for the first page.
// has reports whether a cursor was given. Other parameters are the
// caller's. Errors are TALOS_INVALID_INPUT.
func ParsePage(q url.Values, maxKey int) (after string, has bool, limit int, err error) {
	limit = DefaultPageLimit
	if v, ok := q["limit"]; ok {
		if len(v) != 1 || len(v[0]) == 0 || len(v[0]) > 3 || strings.TrimLeft(v[0], "0123456789") != "" || v[0][0] == '0' {
			return "", false, 0, contracts.New(contracts.CodeInvalidInput, "limit must be 1 to 500")
		}
		n, aerr := strconv.Atoi(v[0])
		if aerr != nil || n < 1 || n > MaxPageLimit {
			return "", false, 0, contracts.New(contracts.CodeInvalidInput, "limit must be 1 to 500")
		}
		limit = n
	}
	if v, ok := q["cursor"]; ok {
		if len(v) != 1 {
			return "", false, 0, contracts.New(contracts.CodeInvalidInput, "invalid cursor")
		}
		if v[0] != "" {
			key, ok := decodePageCursor(v[0], maxKey)
			if !ok {
				return "", false, 0, contracts.New(contracts.CodeInvalidInput, "invalid cursor")
			}
			after, has = key, true
		}
	}
	return after, has, limit, nil
}

// PageCursor is the next_cursor of a page whose last key is key.
func PageCursor(key string) string { return contracts.EncodeBase64URL([]byte("k1." + key)) }

func decodePageCursor(c string, maxKey int) (string, bool) {
	if len(c) > 2*(maxKey+3) {
		return "", false
	}
	raw, err := contracts.DecodeBase64URL(c)
	if err != nil {
		return "", false
	}
	key, ok := strings.CutPrefix(string(raw), "k1.")
	if !ok || key == "" || len(key) > maxKey || !utf8.ValidString(key) {
		return "", false
	}
	return key, true
}
