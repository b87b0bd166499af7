package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// A Record is one stored envelope. Version is 1 when the record is created
// and increases by one on every update.
type Record struct {
	ID       string
	Envelope []byte
	Version  int64

	written time.Time // FileStore only: when the record was last written
}

// Errors of stores, matched with errors.Is. Any other error is a back-end
// failure.
var (
	// ErrNotFound: no record has the id.
	ErrNotFound = errors.New("secrets: not found")
	// ErrExists: Create found a record with the id.
	ErrExists = errors.New("secrets: already exists")
	// ErrConflict: Update found another version than the one expected.
	ErrConflict = errors.New("secrets: version conflict")
)

// A Store persists sealed envelopes. It never sees plaintext. Implementations
// are safe for concurrent use and, when shared by several processes, keep
// every method atomic across them.
type Store interface {
	// Get returns the record, or ErrNotFound.
	Get(ctx context.Context, id string) (Record, error)
	// List returns every record whose id starts with prefix, sorted by id.
	List(ctx context.Context, prefix string) ([]Record, error)
	// Create stores a new record at version 1, or returns ErrExists.
	Create(ctx context.Context, id string, env []byte) error
	// Update replaces the envelope if the stored version is version and
	// increments it; ErrConflict if the version differs, ErrNotFound if
	// there is no record.
	Update(ctx context.Context, id string, env []byte, version int64) error
	// Remove deletes a record; removing an absent record is not an error.
	Remove(ctx context.Context, id string) error
	// TryLock takes the rotation lock without waiting: ok is false when
	// another holder has it. unlock must be called when ok is true.
	TryLock(ctx context.Context) (unlock func(), ok bool, err error)
	// Age returns how long ago the record was last written (created or
	// updated), by the store's own clock, so that every process sharing
	// the store measures it alike; ErrNotFound when there is no record.
	// The vault's scheduled rotation decides from the primary KEK's age
	// whether a rotation is due (see [Vault.RotateEvery]).
	Age(ctx context.Context, id string) (time.Duration, error)
}

// FileStore keeps the records in one JSON file, rewritten atomically
// (temporary file, fsync, rename, directory fsync) on every change: a crash
// leaves the old or the new file. Its rotation lock is process-local, so the
// file must not be shared by processes. It is safe for concurrent use.
type FileStore struct {
	path string

	rotMu sync.Mutex // the rotation lock

	mu      sync.Mutex // guards records and the file
	records map[string]Record
}

var _ Store = (*FileStore)(nil)

type secretsFile struct {
	Format  string              `json:"format"`
	Secrets map[string]fileItem `json:"secrets"`
}

type fileItem struct {
	Envelope json.RawMessage `json:"envelope"`
	Version  int64           `json:"version"`
	// Written is when the record was last written (absent in files
	// written before it was recorded: such a record's age is unknown and
	// counts as older than any interval).
	Written time.Time `json:"written,omitzero"`
}

// FileFormat is the format member of the secrets file.
const FileFormat = "talos-server-secrets-v1"

// OpenFile opens the store in the file at path (0600), which need not exist
// yet. A file that is not a FileFormat document, or is over 16 MiB, is an
// error.
func OpenFile(path string) (*FileStore, error) {
	s := &FileStore{path: path, records: map[string]Record{}}
	raw, err := readLimited(path, maxFileSize)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("secrets: reading %s: %w", path, err)
	}
	var f secretsFile
	if err := json.Unmarshal(raw, &f); err != nil || f.Format != FileFormat {
		return nil, fmt.Errorf("secrets: %s is not a %s file", path, FileFormat)
	}
	for id, it := range f.Secrets {
		if it.Version < 1 || len(it.Envelope) == 0 {
			return nil, fmt.Errorf("secrets: %s: bad record %q", path, id)
		}
		s.records[id] = Record{ID: id, Envelope: []byte(it.Envelope), Version: it.Version, written: it.Written}
	}
	return s, nil
}

// Path returns the file's path.
func (s *FileStore) Path() string { return s.path }

// Get implements Store.
func (s *FileStore) Get(_ context.Context, id string) (Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.records[id]
	if !ok {
		return Record{}, ErrNotFound
	}
	r.Envelope = slices.Clone(r.Envelope)
	r.written = time.Time{}
	return r, nil
}

// Age implements Store with the process's clock (the file belongs to one
// process). A record written before ages were recorded is reported as
// older than any interval (math.MaxInt64).
func (s *FileStore) Age(_ context.Context, id string) (time.Duration, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.records[id]
	if !ok {
		return 0, ErrNotFound
	}
	if r.written.IsZero() {
		return time.Duration(math.MaxInt64), nil
	}
	return max(time.Since(r.written), 0), nil
}

// List implements Store.
func (s *FileStore) List(_ context.Context, prefix string) ([]Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Record
	for id, r := range s.records {
		if strings.HasPrefix(id, prefix) {
			r.Envelope = slices.Clone(r.Envelope)
			r.written = time.Time{}
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b Record) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// Create implements Store.
func (s *FileStore) Create(_ context.Context, id string, env []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.records[id]; ok {
		return ErrExists
	}
	return s.commitLocked(id, &Record{ID: id, Envelope: slices.Clone(env), Version: 1, written: time.Now()})
}

// Update implements Store.
func (s *FileStore) Update(_ context.Context, id string, env []byte, version int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.records[id]
	if !ok {
		return ErrNotFound
	}
	if r.Version != version {
		return ErrConflict
	}
	return s.commitLocked(id, &Record{ID: id, Envelope: slices.Clone(env), Version: version + 1, written: time.Now()})
}

// Remove implements Store.
func (s *FileStore) Remove(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.records[id]; !ok {
		return nil
	}
	return s.commitLocked(id, nil)
}

// commitLocked writes the file with id set to r (removed when r is nil), and
// only then updates the map: a failed write changes nothing.
func (s *FileStore) commitLocked(id string, r *Record) error {
	f := secretsFile{Format: FileFormat, Secrets: make(map[string]fileItem, len(s.records)+1)}
	for rid, x := range s.records {
		f.Secrets[rid] = fileItem{Envelope: x.Envelope, Version: x.Version, Written: x.written}
	}
	if r != nil {
		f.Secrets[id] = fileItem{Envelope: r.Envelope, Version: r.Version, Written: r.written}
	} else {
		delete(f.Secrets, id)
	}
	b, err := json.MarshalIndent(f, "", " ")
	if err != nil {
		return fmt.Errorf("secrets: encoding: %w", err)
	}
	if err := writeFileAtomic(s.path, b, 0o600); err != nil {
		return fmt.Errorf("secrets: writing: %w", err)
	}
	if r != nil {
		s.records[id] = *r
	} else {
		delete(s.records, id)
	}
	return nil
}

// TryLock implements Store with a process-local lock.
func (s *FileStore) TryLock(context.Context) (func(), bool, error) {
	if !s.rotMu.TryLock() {
		return nil, false, nil
	}
	return s.rotMu.Unlock, true, nil
}

// readLimited reads at most limit bytes of path, failing when it is longer.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(raw)) > limit {
		return nil, fmt.Errorf("larger than %d bytes", limit)
	}
	return raw, nil
}

// writeFileAtomic replaces path with data: a crash leaves the old or the new
// file, never a mix.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	name := tmp.Name()
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(name)
		}
	}()
	if err := tmp.Chmod(perm); err != nil {
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(name, path); err != nil {
		return err
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
