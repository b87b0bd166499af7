package redis

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/talosgo/talos/budget"
)

// buildReply turns fuzz bytes into a reply value of the shapes go-redis
// returns for scripts: int64, string, nil and nested []any.
func buildReply(b []byte, depth int) (any, []byte) {
	if len(b) == 0 {
		return nil, b
	}
	tag, b := b[0], b[1:]
	switch tag % 5 {
	case 0:
		var v int64
		if len(b) >= 8 {
			v, b = int64(binary.BigEndian.Uint64(b)), b[8:]
		}
		return v, b
	case 1: // small integers are the interesting ones
		if len(b) == 0 {
			return int64(0), b
		}
		return int64(int8(b[0])), b[1:]
	case 2:
		n := 0
		if len(b) > 0 {
			n, b = int(b[0]%40), b[1:]
		}
		n = min(n, len(b))
		return string(b[:n]), b[n:]
	case 3:
		return nil, b
	default:
		if depth > 3 || len(b) == 0 {
			return []any{}, b
		}
		n := int(b[0] % 40)
		b = b[1:]
		a := make([]any, 0, n)
		for range n {
			var v any
			v, b = buildReply(b, depth+1)
			a = append(a, v)
		}
		return a, b
	}
}

var fuzzReq = budget.ReserveRequest{Scopes: []budget.Scope{
	{ID: "agent:1", Limit: 100},
	{ID: "team:1", Limit: 100, Mode: budget.ModeOff},
	{ID: "org:1", Limit: 1000, Mode: budget.ModeWarn},
}, Amount: 10}

// FuzzDecodeReplies: the reply decoders never panic, and whatever they
// accept is internally consistent.
func FuzzDecodeReplies(f *testing.F) {
	f.Add([]byte{4, 8, 1, 1, 2, 32, 'o', 'r', 'g', '~'})
	f.Add([]byte{4, 10, 1, 1, 2, 32, '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'a', 'b', 'c', 'd', 'e', 'f', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'a', 'b', 'c', 'd', 'e', 'f', 1, 0, 1, 100, 1, 5, 1, 0, 1, 0, 1, 20, 1, 1})
	f.Add([]byte{4, 4, 1, 1, 1, 10, 1, 0, 1, 50})
	f.Add([]byte{4, 5, 1, 2, 1, 0, 1, 0})
	// Layout v5 shapes: reserve allowed {1, warned, expiry, 2 × (used,
	// reserved, exceeded)}, denied {0, index, 0, ...}, commit {1, expired,
	// meta, field, charged}.
	f.Add([]byte{4, 9, 1, 1, 1, 0, 1, 100, 1, 0, 1, 5, 1, 0, 1, 0, 1, 20, 1, 1})
	f.Add([]byte{4, 9, 1, 0, 1, 2, 1, 0, 1, 0, 1, 5, 1, 0, 1, 90, 1, 20, 1, 1})
	f.Add([]byte{2, 12, '0', ':', '0', ':', '0', ':', '0', ':', '0', ':', '0', ':'})
	f.Add([]byte{4, 5, 1, 1, 1, 0, 2, 13, '1', ':', 'k', '0', ':', '0', ':', '0', ':', '0', ':', '0', ':', 2, 9, 'c', ':', 't', ':', 'o', 'r', 'g', ':', '1', 1, 7})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, _ := buildReply(b, 0)
		active := []int{0, 2}
		if r, err := decodeReserve(v, "org:1", "org:1~0123456789abcdef0123456789abcdef", &fuzzReq, active); err == nil {
			if r.Allowed {
				if g, _, err := budget.ParseReservationID(r.ID); err != nil || g != "org:1" {
					t.Fatalf("accepted reservation with ID %q", r.ID)
				}
				if !r.Replayed && (len(r.Scopes) != 3 || r.State != budget.StateActive) {
					t.Fatalf("accepted %+v", r)
				}
			} else if r.DeniedBy != "agent:1" && r.DeniedBy != "org:1" {
				t.Fatalf("denied by %q", r.DeniedBy)
			}
		}
		if s, err := decodeCommit(v, "org:1~00000000000000000000000000000000", 7); err == nil {
			if len(s.Scopes) > budget.MaxScopes {
				t.Fatalf("%d scopes", len(s.Scopes))
			}
			for _, c := range s.Scopes {
				if c.Charged < 0 || c.Overage < 0 || c.Charged+c.Overage != 7 {
					t.Fatalf("accepted charge %+v for actual 7", c)
				}
			}
		}
		if str, ok := v.(string); ok {
			if m, ok := decodeMeta(str); ok && encodeMeta(&m) != str {
				t.Fatalf("meta %q decoded to %+v, which encodes differently", str, m)
			}
		}
		if r, err := decodeGCRA(v, 5); err == nil {
			if r.Remaining < 0 || r.Remaining > 5 || r.RetryAfter < 0 || r.ResetAfter < 0 || r.ResetAfter > budget.MaxLimitSpan+time.Second {
				t.Fatalf("accepted %+v", r)
			}
		}
	})
}

// The record's meta string decodes strictly: only what encodeMeta writes.
func TestDecodeMetaStrict(t *testing.T) {
	m := budget.Meta{KeyID: "k:1", Surface: "llm", MCPServerID: "a b:c\x00"}
	s := encodeMeta(&m)
	if got, ok := decodeMeta(s); !ok || got != m {
		t.Fatalf("decodeMeta(%q) = %+v, %v", s, got, ok)
	}
	if got, ok := decodeMeta(""); !ok || got != (budget.Meta{}) {
		t.Fatalf(`decodeMeta("") = %+v, %v`, got, ok)
	}
	for _, bad := range []string{
		"0:0:0:0:0:0:",   // six empty fields are ""
		"1:a0:0:0:0:0:x", // trailing bytes
		"1:a0:0:0:0:",    // five fields
		"01:a0:0:0:0:0:", // leading zero
		"2:a0:0:0:0:0:",  // length past the end
		":a0:0:0:0:0:",   // no length
		"x:a0:0:0:0:0:",  // not a number
		"257:" + string(make([]byte, 257)) + "0:0:0:0:0:", // over MaxMetaLen
	} {
		if got, ok := decodeMeta(bad); ok {
			t.Errorf("decodeMeta(%q) = %+v, want refused", bad, got)
		}
	}
}
