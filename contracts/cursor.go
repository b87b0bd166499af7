package contracts

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
)

// A Cursor is the position of an event in a stream: its Unix timestamp in
// seconds and its event id. Its wire form (test_vectors/cursor_derivation.json,
// golden.json "cursor") is
//
//	base64url_nopad(UTF-8(decimal(Timestamp) + ":" + EventID))
//
// where the timestamp is canonical base 10 (no sign, no leading zeros except
// "0") and EventID is a lowercase UUIDv7. The contracts' prose
// (specs/semantics.md) speaks of milliseconds; the vectors, which win, use
// seconds.
//
// Cursors must be decoded before they are compared: the order of their
// base64url text is not the order of the positions.
type Cursor struct {
	Timestamp int64
	EventID   string
}

// EncodeCursor returns the wire form of the cursor (timestamp, eventID). It
// returns a TALOS_INVALID_INPUT error for a negative timestamp or an event id
// that is not a lowercase UUIDv7, so every cursor it produces decodes again.
func EncodeCursor(timestamp int64, eventID string) (string, error) {
	return Cursor{Timestamp: timestamp, EventID: eventID}.Encode()
}

// Encode returns the wire form of c; see [EncodeCursor].
func (c Cursor) Encode() (string, error) {
	if c.Timestamp < 0 {
		return "", New(CodeInvalidInput, "cursor: negative timestamp")
	}
	if !IsUUIDv7(c.EventID) {
		return "", New(CodeInvalidInput, "cursor: event id is not a lowercase UUIDv7")
	}
	var buf [20 + 1 + uuidLen]byte
	b := strconv.AppendInt(buf[:0], c.Timestamp, 10)
	b = append(b, ':')
	b = append(b, c.EventID...)
	return EncodeBase64URL(b), nil
}

// DecodeCursor parses the wire form of a cursor strictly: at most
// [MaxCursorLength] characters of strict base64url (no padding, canonical
// trailing bits), split at the first ':', a canonical non-negative decimal
// timestamp that fits int64, and a lowercase UUIDv7 event id. Every accepted
// cursor re-encodes to s. Errors are *Error with code TALOS_INVALID_INPUT.
func DecodeCursor(s string) (Cursor, error) {
	if len(s) > MaxCursorLength {
		return Cursor{}, New(CodeInvalidInput, "cursor: longer than "+strconv.Itoa(MaxCursorLength)+" characters")
	}
	raw, err := DecodeBase64URL(s)
	if err != nil {
		return Cursor{}, Wrap(CodeInvalidInput, "cursor: not strict base64url", err)
	}
	ts, id, ok := bytes.Cut(raw, []byte{':'})
	if !ok {
		return Cursor{}, New(CodeInvalidInput, "cursor: missing ':' separator")
	}
	n, ok := parseCanonicalUint(ts)
	if !ok {
		return Cursor{}, New(CodeInvalidInput, "cursor: timestamp is not a canonical non-negative decimal integer")
	}
	if !IsUUIDv7(string(id)) {
		return Cursor{}, New(CodeInvalidInput, "cursor: event id is not a lowercase UUIDv7")
	}
	return Cursor{Timestamp: n, EventID: string(id)}, nil
}

// parseCanonicalUint parses a non-empty decimal without sign or leading zeros
// (except "0") that fits int64.
func parseCanonicalUint(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 19 || (b[0] == '0' && len(b) > 1) {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	if n > 1<<63-1 {
		return 0, false
	}
	return int64(n), true
}

// Compare orders cursors ascending, by timestamp and then by event id
// (byte-wise): it returns -1 when c is before o, 0 when equal, +1 after.
// This is the contracts' compare_cursor order (oldest first).
func (c Cursor) Compare(o Cursor) int {
	switch {
	case c.Timestamp < o.Timestamp:
		return -1
	case c.Timestamp > o.Timestamp:
		return 1
	}
	return strings.Compare(c.EventID, o.EventID)
}

// CompareCursors decodes two cursors in wire form and compares them with
// [Cursor.Compare]. It returns the first decoding error.
func CompareCursors(a, b string) (int, error) {
	ca, err := DecodeCursor(a)
	if err != nil {
		return 0, err
	}
	cb, err := DecodeCursor(b)
	if err != nil {
		return 0, err
	}
	return ca.Compare(cb), nil
}

// CompareNewestFirst is the contracts' event ordering (ordering.json,
// golden.json "ordering"): descending, newest first. It returns -1 when a
// comes before b, that is when a has the higher timestamp or, on equal
// timestamps, the byte-wise higher event id; 0 when both are equal; +1
// otherwise. Event ids need not be UUIDs here. Use it with slices.SortFunc to
// sort a feed.
func CompareNewestFirst(a, b Cursor) int {
	return b.Compare(a)
}

// Reasons reported by [CheckCursorInvariant].
const (
	// CursorInvalidFrame: the event's fields have the wrong types, or a
	// cursor cannot be derived from them or decoded.
	CursorInvalidFrame = "INVALID_FRAME"
	// CursorMismatch: the event's cursor differs from the one derived from
	// its timestamp and event id.
	CursorMismatch = "CURSOR_MISMATCH"
)

// A CursorCheck is the result of [CheckCursorInvariant].
type CursorCheck struct {
	// OK is true when the event's cursor is the one derived from it.
	OK bool
	// Reason is "" when OK, else CursorInvalidFrame or CursorMismatch.
	Reason string
	// Derived is the cursor derived from the event's timestamp and event
	// id, or "" when none can be derived.
	Derived string
}

// CheckCursorInvariant is the contracts' assert_cursor_invariant: it checks
// that an event's "cursor" is the cursor derived from its "timestamp" and
// "event_id". It never fails: problems are reported in the result.
func CheckCursorInvariant(timestamp int64, eventID, cursor string) CursorCheck {
	derived, err := EncodeCursor(timestamp, eventID)
	if err != nil {
		return CursorCheck{Reason: CursorInvalidFrame}
	}
	if _, err := DecodeCursor(cursor); err != nil {
		return CursorCheck{Reason: CursorInvalidFrame, Derived: derived}
	}
	if cursor != derived {
		return CursorCheck{Reason: CursorMismatch, Derived: derived}
	}
	return CursorCheck{OK: true, Derived: derived}
}

// CheckCursorInvariantJSON is [CheckCursorInvariant] over an event given as a
// JSON object with the members "timestamp" (an integer), "event_id" and
// "cursor" (strings); other members are ignored. Malformed JSON, duplicate
// keys, missing or mistyped members and events over [MaxCursorEventSize]
// bytes are reported as CursorInvalidFrame.
func CheckCursorInvariantJSON(event []byte) CursorCheck {
	invalid := CursorCheck{Reason: CursorInvalidFrame}
	if len(event) > MaxCursorEventSize || CheckJSON(event, false) != nil {
		return invalid
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(event, &m); err != nil {
		return invalid
	}
	tsRaw := bytes.TrimPrefix(m["timestamp"], []byte{'-'})
	ts, ok := parseCanonicalUint(tsRaw)
	if !ok || len(tsRaw) != len(m["timestamp"]) {
		// Not a JSON integer (string, float, exponent, null, absent) or negative.
		return invalid
	}
	var id, cursor string
	if !jsonString(m["event_id"], &id) || !jsonString(m["cursor"], &cursor) {
		return invalid
	}
	return CheckCursorInvariant(ts, id, cursor)
}

// jsonString decodes raw into *s when raw is a JSON string.
func jsonString(raw json.RawMessage, s *string) bool {
	return len(raw) > 0 && raw[0] == '"' && json.Unmarshal(raw, s) == nil
}
