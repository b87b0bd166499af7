package config

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/talosgo/talos/contracts"
)

// Errors of stores, matched with errors.Is. Any other error is a back-end
// failure.
var (
	// ErrNotFound: no such document or version.
	ErrNotFound = errors.New("config: not found")
	// ErrFull: the document has MaxVersions versions.
	ErrFull = errors.New("config: too many versions")
)

// A Version is one stored version of a document.
type Version struct {
	Kind      string          `json:"kind"`
	Name      string          `json:"name"`
	Version   int64           `json:"version"`
	Digest    string          `json:"digest"` // hex SHA-256 of Document
	CreatedAt time.Time       `json:"created_at"`
	Document  json.RawMessage `json:"document,omitempty"` // canonical JSON (RFC 8785)
}

// A CommitFunc runs inside a store's write of version v (prevDigest is the
// previous version's digest, "" for version 1): if it fails, nothing is
// stored and the write returns its error.
type CommitFunc func(ctx context.Context, v Version, prevDigest string) error

// A Store persists versions. Implementations are safe for concurrent use
// and keep versions of one document dense (1, 2, 3, ...) under concurrent
// writers, also across processes when the back-end is shared.
type Store interface {
	// Put stores doc (canonical, with its digest) as version latest+1,
	// unless the latest version has the same digest: then it returns the
	// latest and false and calls nothing. commit runs inside the write
	// with the new version, while the document's writers are serialized:
	// if it fails, nothing is stored. More than MaxVersions versions is
	// ErrFull.
	Put(ctx context.Context, kind, name, digest string, doc []byte, at time.Time, commit CommitFunc) (Version, bool, error)
	// Latest returns the newest version with its document, or ErrNotFound.
	Latest(ctx context.Context, kind, name string) (Version, error)
	// Version returns version n with its document, or ErrNotFound.
	Version(ctx context.Context, kind, name string, n int64) (Version, error)
	// Versions returns up to limit versions after version `after`, oldest
	// first, without documents (an empty list when there are none).
	Versions(ctx context.Context, kind, name string, after int64, limit int) ([]Version, error)
}

// MemStore keeps versions in memory. It is safe for concurrent use.
type MemStore struct {
	mu   sync.Mutex // guards docs; held across commit so versions stay ordered
	docs map[string][]Version
}

var _ Store = (*MemStore)(nil)

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{docs: map[string][]Version{}} }

func memKey(kind, name string) string { return kind + "\x00" + name }

// Put implements Store.
func (m *MemStore) Put(ctx context.Context, kind, name, digest string, doc []byte, at time.Time, commit CommitFunc) (Version, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := memKey(kind, name)
	vs := m.docs[k]
	prev := ""
	if len(vs) > 0 {
		if last := vs[len(vs)-1]; last.Digest == digest {
			return last, false, nil
		}
		prev = vs[len(vs)-1].Digest
	}
	if len(vs) >= MaxVersions {
		return Version{}, false, ErrFull
	}
	v := Version{Kind: kind, Name: name, Version: int64(len(vs)) + 1, Digest: digest, CreatedAt: at, Document: bytes.Clone(doc)}
	if err := commit(ctx, v, prev); err != nil {
		return Version{}, false, err
	}
	m.docs[k] = append(vs, v)
	return v, true, nil
}

// Latest implements Store.
func (m *MemStore) Latest(_ context.Context, kind, name string) (Version, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	vs := m.docs[memKey(kind, name)]
	if len(vs) == 0 {
		return Version{}, ErrNotFound
	}
	return vs[len(vs)-1], nil
}

// Version implements Store.
func (m *MemStore) Version(_ context.Context, kind, name string, n int64) (Version, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	vs := m.docs[memKey(kind, name)]
	if n < 1 || n > int64(len(vs)) {
		return Version{}, ErrNotFound
	}
	return vs[n-1], nil
}

// Versions implements Store.
func (m *MemStore) Versions(_ context.Context, kind, name string, after int64, limit int) ([]Version, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	vs := m.docs[memKey(kind, name)]
	i := sort.Search(len(vs), func(i int) bool { return vs[i].Version > after })
	out := []Version{}
	for ; i < len(vs) && len(out) < limit; i++ {
		v := vs[i]
		v.Document = nil
		out = append(out, v)
	}
	return out, nil
}

// FileStore is the embedded durable store: the versions in memory, and each
// new version appended as one JSON line to a file (fsynced) so they survive
// a restart. The commit hook runs before the line is written: a failed write
// after a successful hook leaves, say, an audit event for a change that was
// not applied (never the reverse). The file belongs to one process. It is
// safe for concurrent use.
type FileStore struct {
	mem *MemStore
	f   *os.File
}

var _ Store = (*FileStore)(nil)

// OpenFile opens the store in the file at path (created 0600 when missing)
// and replays it. A torn last line (a crash during an append) is cut off;
// any other damage (versions out of order, a document that is not canonical
// JSON or does not match its digest) is an error naming the byte offset.
func OpenFile(path string) (*FileStore, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	s := &FileStore{mem: NewMemStore(), f: f}
	if err := s.load(); err != nil {
		f.Close()
		return nil, err
	}
	return s, nil
}

func (s *FileStore) load() error {
	raw, err := io.ReadAll(io.LimitReader(s.f, maxFileSize+1))
	if err != nil {
		return fmt.Errorf("config: reading %s: %w", s.f.Name(), err)
	}
	if len(raw) > maxFileSize {
		return fmt.Errorf("config: %s is larger than %d bytes", s.f.Name(), maxFileSize)
	}
	good := 0
	for len(raw[good:]) > 0 {
		line, _, complete := bytes.Cut(raw[good:], []byte("\n"))
		var v Version
		err := json.Unmarshal(line, &v)
		if err == nil {
			err = s.checkLoaded(v)
		}
		if err != nil {
			if !complete {
				break // torn tail
			}
			return fmt.Errorf("config: %s is damaged at byte %d: %v", s.f.Name(), good, err)
		}
		k := memKey(v.Kind, v.Name)
		s.mem.docs[k] = append(s.mem.docs[k], v)
		good += len(line) + 1
		if !complete {
			good--
			break
		}
	}
	if good < len(raw) {
		if err := s.f.Truncate(int64(good)); err != nil {
			return fmt.Errorf("config: cutting a torn line: %w", err)
		}
	}
	if _, err := s.f.Seek(int64(good), io.SeekStart); err != nil {
		return err
	}
	return nil
}

func (s *FileStore) checkLoaded(v Version) error {
	if v.Version != int64(len(s.mem.docs[memKey(v.Kind, v.Name)]))+1 {
		return errors.New("versions out of order")
	}
	canon, err := contracts.Canonicalize(v.Document)
	if err != nil || !bytes.Equal(canon, v.Document) {
		return errors.New("document is not canonical JSON")
	}
	sum := sha256.Sum256(canon)
	if hex.EncodeToString(sum[:]) != v.Digest {
		return errors.New("digest does not match the document")
	}
	return nil
}

// Put implements Store.
func (s *FileStore) Put(ctx context.Context, kind, name, digest string, doc []byte, at time.Time, commit CommitFunc) (Version, bool, error) {
	return s.mem.Put(ctx, kind, name, digest, doc, at, func(ctx context.Context, v Version, prev string) error {
		if err := commit(ctx, v, prev); err != nil {
			return err
		}
		line, err := json.Marshal(v)
		if err != nil {
			return err
		}
		off, err := s.f.Seek(0, io.SeekCurrent)
		if err != nil {
			return err
		}
		_, err = s.f.Write(append(line, '\n'))
		if err == nil {
			err = s.f.Sync()
		}
		if err != nil {
			// Not stored: cut the line off again, so a restart does not
			// bring back a version this process reported as failed.
			s.f.Truncate(off)
			s.f.Seek(off, io.SeekStart)
			return err
		}
		return nil
	})
}

// Latest implements Store.
func (s *FileStore) Latest(ctx context.Context, kind, name string) (Version, error) {
	return s.mem.Latest(ctx, kind, name)
}

// Version implements Store.
func (s *FileStore) Version(ctx context.Context, kind, name string, n int64) (Version, error) {
	return s.mem.Version(ctx, kind, name, n)
}

// Versions implements Store.
func (s *FileStore) Versions(ctx context.Context, kind, name string, after int64, limit int) ([]Version, error) {
	return s.mem.Versions(ctx, kind, name, after, limit)
}

// Close closes the file.
func (s *FileStore) Close() error { return s.f.Close() }
