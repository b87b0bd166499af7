package contracts_test

import (
	"encoding/base64"
	"slices"
	"strings"
	"testing"

	"github.com/talosgo/talos/contracts"
)

const testID = "0190a5e0-7c3a-7000-8000-000000000001"

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func TestCursorRoundTrip(t *testing.T) {
	for _, ts := range []int64{0, 1, 9, 10, 1703721600, 1<<63 - 1} {
		s, err := contracts.EncodeCursor(ts, testID)
		if err != nil {
			t.Fatalf("EncodeCursor(%d): %v", ts, err)
		}
		if len(s) > contracts.MaxCursorLength {
			t.Errorf("cursor %q longer than MaxCursorLength", s)
		}
		c, err := contracts.DecodeCursor(s)
		if err != nil || c.Timestamp != ts || c.EventID != testID {
			t.Errorf("DecodeCursor(%q) = %+v, %v", s, c, err)
		}
		if again, _ := c.Encode(); again != s {
			t.Errorf("re-encoded %q, want %q", again, s)
		}
	}
}

func TestEncodeCursorRejects(t *testing.T) {
	for _, c := range []contracts.Cursor{
		{Timestamp: -1, EventID: testID},
		{Timestamp: 1, EventID: strings.ToUpper(testID)},
		{Timestamp: 1, EventID: "aaa"},
		{Timestamp: 1, EventID: ""},
	} {
		if s, err := c.Encode(); contracts.CodeOf(err) != contracts.CodeInvalidInput || s != "" {
			t.Errorf("Encode(%+v) = %q, %v; want a %s error", c, s, err, contracts.CodeInvalidInput)
		}
	}
}

func TestDecodeCursorRejects(t *testing.T) {
	for name, s := range map[string]string{
		"empty":            "",
		"padding":          b64("1:"+testID) + "=",
		"std alphabet":     "+" + b64("1:" + testID)[1:],
		"whitespace":       b64("1:"+testID) + "\n",
		"no separator":     b64("1703721600" + testID),
		"empty timestamp":  b64(":" + testID),
		"leading zero":     b64("01:" + testID),
		"plus sign":        b64("+1:" + testID),
		"negative":         b64("-1:" + testID),
		"hex timestamp":    b64("0x10:" + testID),
		"space":            b64(" 1:" + testID),
		"overflow":         b64("9223372036854775808:" + testID),
		"20 digits":        b64("10000000000000000000:" + testID),
		"uppercase id":     b64("1:" + strings.ToUpper(testID)),
		"not a uuid":       b64("1:aaa"),
		"uuid v4":          b64("1:0190a5e0-7c3a-4000-8000-000000000001"),
		"second colon":     b64("1:" + testID + ":x"),
		"colon in ts part": b64("1:2:" + testID),
		"trailing newline": b64("1:" + testID + "\n"),
		"too long":         strings.Repeat("A", contracts.MaxCursorLength+4),
		"non-canonical":    b64("1:" + testID)[:len(b64("1:"+testID))-1] + "B",
	} {
		t.Run(name, func(t *testing.T) {
			c, err := contracts.DecodeCursor(s)
			if contracts.CodeOf(err) != contracts.CodeInvalidInput {
				t.Fatalf("DecodeCursor(%q) = %+v, %v; want a %s error", s, c, err, contracts.CodeInvalidInput)
			}
			if c != (contracts.Cursor{}) {
				t.Errorf("non-zero cursor %+v with the error", c)
			}
		})
	}
}

func TestCursorOrder(t *testing.T) {
	ids := []string{
		"0190a5e0-7c3a-7000-8000-000000000002",
		"0190a5e0-7c3a-7000-8000-000000000001",
	}
	// 9 < 10 numerically, although "OTo" > "MTA" in base64url text.
	a, _ := contracts.EncodeCursor(9, ids[0])
	b, _ := contracts.EncodeCursor(10, ids[1])
	if a < b {
		t.Fatalf("test premise: %q sorts before %q as text", a, b)
	}
	if got, err := contracts.CompareCursors(a, b); err != nil || got != -1 {
		t.Errorf("CompareCursors(9, 10) = %d, %v; want -1", got, err)
	}
	if got, err := contracts.CompareCursors(b, a); err != nil || got != 1 {
		t.Errorf("CompareCursors(10, 9) = %d, %v; want 1", got, err)
	}
	if _, err := contracts.CompareCursors(a, "bad!"); contracts.CodeOf(err) != contracts.CodeInvalidInput {
		t.Errorf("CompareCursors with a bad cursor: %v", err)
	}
	if _, err := contracts.CompareCursors("bad!", a); contracts.CodeOf(err) != contracts.CodeInvalidInput {
		t.Errorf("CompareCursors with a bad cursor: %v", err)
	}

	feed := []contracts.Cursor{
		{Timestamp: 10, EventID: "aaa"},
		{Timestamp: 12, EventID: "aaa"},
		{Timestamp: 10, EventID: "bbb"},
		{Timestamp: 11, EventID: "zzz"},
	}
	slices.SortFunc(feed, contracts.CompareNewestFirst)
	want := []contracts.Cursor{
		{Timestamp: 12, EventID: "aaa"},
		{Timestamp: 11, EventID: "zzz"},
		{Timestamp: 10, EventID: "bbb"},
		{Timestamp: 10, EventID: "aaa"},
	}
	if !slices.Equal(feed, want) {
		t.Errorf("newest-first order %v, want %v", feed, want)
	}
	slices.SortFunc(feed, contracts.Cursor.Compare)
	slices.Reverse(want)
	if !slices.Equal(feed, want) {
		t.Errorf("ascending order %v, want %v", feed, want)
	}
}

func TestCheckCursorInvariant(t *testing.T) {
	good, _ := contracts.EncodeCursor(1703721600, testID)
	other, _ := contracts.EncodeCursor(1703721601, testID)
	for _, c := range []struct {
		event  string
		ok     bool
		reason string
	}{
		{`{"timestamp":1703721600,"event_id":"` + testID + `","cursor":"` + good + `","extra":[1,{"x":null}]}`, true, ""},
		{`{"timestamp":1703721600,"event_id":"` + testID + `","cursor":"` + other + `"}`, false, contracts.CursorMismatch},
		{`{"timestamp":1703721600,"event_id":"` + testID + `","cursor":"some-cursor"}`, false, contracts.CursorInvalidFrame},
		{`{"timestamp":"1703721600","event_id":"` + testID + `","cursor":"` + good + `"}`, false, contracts.CursorInvalidFrame},
		{`{"timestamp":1703721600.0,"event_id":"` + testID + `","cursor":"` + good + `"}`, false, contracts.CursorInvalidFrame},
		{`{"timestamp":1.7037216e9,"event_id":"` + testID + `","cursor":"` + good + `"}`, false, contracts.CursorInvalidFrame},
		{`{"timestamp":-1,"event_id":"` + testID + `","cursor":"` + good + `"}`, false, contracts.CursorInvalidFrame},
		{`{"timestamp":null,"event_id":"` + testID + `","cursor":"` + good + `"}`, false, contracts.CursorInvalidFrame},
		{`{"event_id":"` + testID + `","cursor":"` + good + `"}`, false, contracts.CursorInvalidFrame},
		{`{"timestamp":1703721600,"event_id":7,"cursor":"` + good + `"}`, false, contracts.CursorInvalidFrame},
		{`{"timestamp":1703721600,"event_id":"` + testID + `","cursor":null}`, false, contracts.CursorInvalidFrame},
		{`{"timestamp":1703721600,"event_id":"` + testID + `"}`, false, contracts.CursorInvalidFrame},
		{`{"timestamp":1703721600,"timestamp":1703721600,"event_id":"` + testID + `","cursor":"` + good + `"}`, false, contracts.CursorInvalidFrame},
		{`{"Timestamp":1703721600,"event_id":"` + testID + `","cursor":"` + good + `"}`, false, contracts.CursorInvalidFrame},
		{`[1703721600]`, false, contracts.CursorInvalidFrame},
		{`{"timestamp":1703721600`, false, contracts.CursorInvalidFrame},
		{``, false, contracts.CursorInvalidFrame},
		{`{"pad":"` + strings.Repeat("x", contracts.MaxCursorEventSize) + `"}`, false, contracts.CursorInvalidFrame},
	} {
		got := contracts.CheckCursorInvariantJSON([]byte(c.event))
		if got.OK != c.ok || got.Reason != c.reason {
			ev := c.event
			if len(ev) > 120 {
				ev = ev[:120] + "..."
			}
			t.Errorf("CheckCursorInvariantJSON(%s) = %+v, want ok=%v reason=%q", ev, got, c.ok, c.reason)
		}
		if got.OK && got.Derived != good {
			t.Errorf("Derived = %q, want %q", got.Derived, good)
		}
	}
}
