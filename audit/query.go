package audit

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/talosgo/talos/contracts"
)

// A Query selects events. Zero fields do not filter.
type Query struct {
	// Since and Until bound the event ts: Since ≤ ts < Until.
	Since, Until time.Time
	// PrincipalID and SurfaceID match exactly.
	PrincipalID string
	SurfaceID   string
	// After is a contract cursor; the page starts after it.
	After string
	// Limit bounds the page. If zero, DefaultQueryLimit; at most MaxQueryLimit.
	Limit int
}

// DefaultQueryLimit is the page size of a Query without Limit.
const DefaultQueryLimit = 100

// A Page is one page of query results in the contract order: newest first,
// by (ts in Unix seconds, event_id), both descending
// (test_vectors/ordering.json). Next is the cursor to pass as After for the
// following page, or "" at the end.
type Page struct {
	Entries []Entry
	Next    string
}

// An Entry is one stored event with its leaf index and contract cursor.
type Entry struct {
	Index  uint64
	Cursor string
	Event  *Event
}

// A Querier is a Store that answers queries itself (for example with
// database indexes). It must return the same pages as [ScanQuery].
type Querier interface {
	Query(ctx context.Context, q Query) (Page, error)
}

// Query returns one page of events matching q. It uses the store's
// [Querier] when it has one, else [ScanQuery].
func (l *Log) Query(ctx context.Context, q Query) (Page, error) {
	if qs, ok := l.cfg.Store.(Querier); ok {
		return qs.Query(ctx, q)
	}
	return ScanQuery(ctx, l.cfg.Store, q)
}

// queryKey is what ordering and filtering read from a stored event.
type queryKey struct {
	EventID   string `json:"event_id"`
	TS        string `json:"ts"`
	SurfaceID string `json:"surface_id"`
	Principal struct {
		PrincipalID string `json:"principal_id"`
	} `json:"principal"`
}

// QueryFields extracts what queries filter and order on from a sealed
// event: its cursor position, ts, principal id and surface id. Stores
// implementing [Querier] index these.
func QueryFields(entry []byte) (pos contracts.Cursor, ts time.Time, principalID, surfaceID string, err error) {
	var k queryKey
	if err := json.Unmarshal(entry, &k); err != nil {
		return pos, ts, "", "", storeError("stored entry is not an event", err)
	}
	ts, err = time.Parse(TimeFormat, k.TS)
	if err != nil {
		return pos, ts, "", "", storeError("stored entry has a bad ts", err)
	}
	return contracts.Cursor{Timestamp: ts.Unix(), EventID: k.EventID}, ts, k.Principal.PrincipalID, k.SurfaceID, nil
}

// CheckQuery validates q and returns its limit and decoded cursor.
func CheckQuery(q Query) (limit int, after *contracts.Cursor, err error) {
	limit = q.Limit
	switch {
	case limit == 0:
		limit = DefaultQueryLimit
	case limit < 0 || limit > MaxQueryLimit:
		return 0, nil, contracts.New(contracts.CodeInvalidInput, "audit: query limit out of range")
	}
	if q.After != "" {
		c, err := contracts.DecodeCursor(q.After)
		if err != nil {
			return 0, nil, err
		}
		after = &c
	}
	return limit, after, nil
}

// ScanQuery answers q by reading every entry of the store. It costs O(size)
// per page; stores for large logs implement [Querier].
func ScanQuery(ctx context.Context, s Store, q Query) (Page, error) {
	limit, after, err := CheckQuery(q)
	if err != nil {
		return Page{}, err
	}
	size, err := s.Size(ctx)
	if err != nil {
		return Page{}, err
	}
	type hit struct {
		pos   contracts.Cursor
		index uint64
	}
	var hits []hit
	const chunk = 4096
	for start := uint64(0); start < size; start += chunk {
		end := min(start+chunk, size)
		es, err := s.ReadEntries(ctx, start, end)
		if err != nil {
			return Page{}, err
		}
		for i, e := range es {
			pos, ts, pid, sid, err := QueryFields(e)
			if err != nil {
				return Page{}, err
			}
			if !matches(q, ts, pid, sid) {
				continue
			}
			if after != nil && contracts.CompareNewestFirst(*after, pos) >= 0 {
				continue
			}
			hits = append(hits, hit{pos, start + uint64(i)})
		}
	}
	slices.SortFunc(hits, func(a, b hit) int {
		if c := contracts.CompareNewestFirst(a.pos, b.pos); c != 0 {
			return c
		}
		return compareUint(b.index, a.index)
	})
	var page Page
	for i, h := range hits {
		if i == limit {
			break
		}
		raw, err := s.ReadEntries(ctx, h.index, h.index+1)
		if err != nil {
			return Page{}, err
		}
		e, err := ParseEvent(raw[0])
		if err != nil {
			return Page{}, err
		}
		cur, err := h.pos.Encode()
		if err != nil {
			return Page{}, storeError("stored event has no cursor", err)
		}
		page.Entries = append(page.Entries, Entry{Index: h.index, Cursor: cur, Event: e})
	}
	if len(hits) > limit {
		page.Next = page.Entries[len(page.Entries)-1].Cursor
	}
	return page, nil
}

func matches(q Query, ts time.Time, principalID, surfaceID string) bool {
	if !q.Since.IsZero() && ts.Before(q.Since) {
		return false
	}
	if !q.Until.IsZero() && !ts.Before(q.Until) {
		return false
	}
	if q.PrincipalID != "" && q.PrincipalID != principalID {
		return false
	}
	return q.SurfaceID == "" || q.SurfaceID == surfaceID
}

func compareUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
