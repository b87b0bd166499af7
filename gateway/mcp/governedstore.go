package mcp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/talosgo/talos/audit"
	"github.com/talosgo/talos/contracts"
)

// Errors of a [TraceStore], matched with errors.Is. Any other error is a
// back-end failure, which refuses the governed call (TGA_DB_UNAVAILABLE).
var (
	// ErrTraceNotFound: no trace with that id (or scope).
	ErrTraceNotFound = errors.New("mcp: governed trace not found")
	// ErrTraceConflict: the entry is not the next one of its trace (its
	// seq is taken or leaves a gap), or a new trace's scope is already
	// used: another writer got there first.
	ErrTraceConflict = errors.New("mcp: governed trace changed concurrently")
)

// MaxTraceRecord bounds the stored size of one [TraceRecord] (entry and
// result together).
const MaxTraceRecord = 2 << 20

// A TraceRecord is one persisted step of a governed write: the sealed TGA
// execution log entry (its artifact_data holds the artifact) and, on the
// tool_effect entry, the tool's result.
type TraceRecord struct {
	TraceID string `json:"trace_id"`
	Seq     int64  `json:"seq"`
	// State is the entry's to_state.
	State string `json:"state"`
	// Entry is the canonical JSON of the execution_log_entry.
	Entry json.RawMessage `json:"entry"`
	// Result is the JSON CallToolResult of a tool_effect entry whose call
	// returned one (nil otherwise).
	Result []byte `json:"result,omitempty"`
	// Scope, on seq 1 only, is the idempotency scope of the call (the
	// gateway's hash of principal, tool and client key): at most one
	// trace per scope.
	Scope string `json:"scope,omitempty"`
}

// A TraceSummary describes a trace in a listing.
type TraceSummary struct {
	TraceID   string
	State     string // the last entry's to_state
	Seq       int64  // the last entry's seq
	UpdatedAt time.Time
}

// A TraceStore persists governed-write traces durably: an Append that
// returns nil has reached stable storage, so the gateway takes the next
// step only after its predecessor survives a crash. Implementations are
// safe for concurrent use; [FileTraceStore] and gateway/mcp/postgres's
// TraceStore pass gateway/mcp/tracetest.
type TraceStore interface {
	// Append stores rec as entry rec.Seq of its trace: seq 1 creates the
	// trace (ErrTraceConflict if the trace or its scope exists); any other
	// seq must be exactly the stored last seq + 1 (ErrTraceConflict
	// otherwise, ErrTraceNotFound without the trace).
	Append(ctx context.Context, rec TraceRecord) error
	// Load returns a trace's records in seq order, or ErrTraceNotFound.
	Load(ctx context.Context, traceID string) ([]TraceRecord, error)
	// ByScope returns the trace created with scope, or ErrTraceNotFound.
	ByScope(ctx context.Context, scope string) (traceID string, err error)
	// Open lists up to limit traces that are not terminal (last state
	// neither COMPLETED, FAILED nor DENIED) with trace id greater than
	// after, by trace id; state, if set, keeps only traces in that state.
	Open(ctx context.Context, state, after string, limit int) ([]TraceSummary, error)
}

// terminal reports whether a trace in state s is finished.
func terminal(s string) bool {
	return s == audit.StateCompleted || s == audit.StateFailed || s == audit.StateDenied
}

// ValidTraceID reports whether id has the shape of a trace id: 36
// characters of lowercase hex digits and '-' (a UUID). Stores may use it
// in file names.
func ValidTraceID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c == '-') {
			return false
		}
	}
	return true
}

// A FileTraceStore keeps each trace in DIR/<trace_id>.jsonl, one fsynced
// JSON line per record (a new file's directory is fsynced too). Open
// replays every file; a torn last line (a crash mid-write) is cut off,
// other damage refuses to open. It is for one process: replicas share
// gateway/mcp/postgres.
type FileTraceStore struct {
	dir string

	mu     sync.Mutex
	traces map[string]*fileTrace
	scopes map[string]string
}

type fileTrace struct {
	seq     int64
	state   string
	updated time.Time
}

var _ TraceStore = (*FileTraceStore)(nil)

// OpenFileTraceStore opens (creating it, mode 0700) the store in dir.
func OpenFileTraceStore(dir string) (*FileTraceStore, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	s := &FileTraceStore{dir: dir, traces: map[string]*fileTrace{}, scopes: map[string]string{}}
	names, err := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		id := strings.TrimSuffix(filepath.Base(name), ".jsonl")
		if !ValidTraceID(id) {
			return nil, contracts.New(contracts.CodeInvalidInput, "mcp: governed trace store: unexpected file "+filepath.Base(name))
		}
		recs, err := s.read(id, true)
		if err != nil {
			return nil, err
		}
		if len(recs) == 0 {
			continue
		}
		fi, _ := os.Stat(name)
		ft := &fileTrace{seq: recs[len(recs)-1].Seq, state: recs[len(recs)-1].State}
		if fi != nil {
			ft.updated = fi.ModTime().UTC()
		}
		s.traces[id] = ft
		if recs[0].Scope != "" {
			s.scopes[recs[0].Scope] = id
		}
	}
	return s, nil
}

func (s *FileTraceStore) path(id string) string { return filepath.Join(s.dir, id+".jsonl") }

// read parses a trace file; repair cuts a torn last line off.
func (s *FileTraceStore) read(id string, repair bool) ([]TraceRecord, error) {
	f, err := os.OpenFile(s.path(id), os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrTraceNotFound
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, 64*MaxTraceRecord))
	if err != nil {
		return nil, err
	}
	bad := func(msg string) error {
		return contracts.New(contracts.CodeTGAHashChainBroken, "mcp: governed trace "+id+": "+msg)
	}
	var recs []TraceRecord
	off := 0
	for off < len(data) {
		nl := bytes.IndexByte(data[off:], '\n')
		if nl < 0 {
			// A torn last line: the append that wrote it never returned.
			if !repair {
				break
			}
			if err := f.Truncate(int64(off)); err != nil {
				return nil, err
			}
			if err := f.Sync(); err != nil {
				return nil, err
			}
			break
		}
		var r TraceRecord
		if err := contracts.UnmarshalFields(data[off:off+nl], &r); err != nil {
			return nil, bad("unreadable record")
		}
		if r.TraceID != id || r.Seq != int64(len(recs))+1 {
			return nil, bad("records out of order")
		}
		recs = append(recs, r)
		off += nl + 1
	}
	return recs, nil
}

// Append implements TraceStore.
func (s *FileTraceStore) Append(_ context.Context, rec TraceRecord) error {
	if !ValidTraceID(rec.TraceID) || rec.Seq < 1 {
		return contracts.New(contracts.CodeInvalidInput, "mcp: bad governed trace record")
	}
	line, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if len(line) > MaxTraceRecord {
		return contracts.New(contracts.CodeTGAEventTooLarge, "mcp: governed trace record too large")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.traces[rec.TraceID]
	switch {
	case rec.Seq == 1 && t != nil:
		return ErrTraceConflict
	case rec.Seq == 1 && rec.Scope != "" && s.scopes[rec.Scope] != "":
		return ErrTraceConflict
	case rec.Seq > 1 && t == nil:
		return ErrTraceNotFound
	case rec.Seq > 1 && rec.Seq != t.seq+1:
		return ErrTraceConflict
	}
	f, err := os.OpenFile(s.path(rec.TraceID), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	_, werr := f.Write(append(line, '\n'))
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		return err
	}
	if rec.Seq == 1 {
		if err := syncDir(s.dir); err != nil {
			return err
		}
		t = &fileTrace{}
		s.traces[rec.TraceID] = t
		if rec.Scope != "" {
			s.scopes[rec.Scope] = rec.TraceID
		}
	}
	t.seq, t.state, t.updated = rec.Seq, rec.State, time.Now().UTC()
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Load implements TraceStore.
func (s *FileTraceStore) Load(_ context.Context, traceID string) ([]TraceRecord, error) {
	if !ValidTraceID(traceID) {
		return nil, ErrTraceNotFound
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.traces[traceID] == nil {
		return nil, ErrTraceNotFound
	}
	return s.read(traceID, false)
}

// ByScope implements TraceStore.
func (s *FileTraceStore) ByScope(_ context.Context, scope string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id, ok := s.scopes[scope]; ok {
		return id, nil
	}
	return "", ErrTraceNotFound
}

// Open implements TraceStore.
func (s *FileTraceStore) Open(_ context.Context, state, after string, limit int) ([]TraceSummary, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []TraceSummary
	for id, t := range s.traces {
		if id <= after || terminal(t.state) || (state != "" && t.state != state) {
			continue
		}
		out = append(out, TraceSummary{TraceID: id, State: t.state, Seq: t.seq, UpdatedAt: t.updated})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].TraceID < out[j].TraceID })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}
