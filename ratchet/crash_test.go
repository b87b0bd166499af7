package ratchet_test

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/talosgo/talos/ratchet"
	"github.com/talosgo/talos/ratchet/ratchettest"
)

// fileStore is a SessionStore for one writer process at a time: a mutex
// makes its conditional Save atomic within the process: each id is
// one file, replaced atomically by rename. It survives SIGKILL (the kernel
// keeps completed writes); it does not fsync, so it is not a power-loss
// test.
type fileStore struct {
	dir string
	mu  *sync.Mutex
}

func newFileStore(dir string) fileStore { return fileStore{dir: dir, mu: new(sync.Mutex)} }

func (f fileStore) path(id string) string {
	return filepath.Join(f.dir, "store-"+hex.EncodeToString([]byte(id)))
}

func (f fileStore) Load(ctx context.Context, id string) ([]byte, uint64, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	b, err := os.ReadFile(f.path(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil, 0, ratchet.NotFound(id)
	}
	if err != nil {
		return nil, 0, err
	}
	if len(b) < 8 {
		return nil, 0, errors.New("short record")
	}
	return b[8:], binary.BigEndian.Uint64(b), nil
}

func (f fileStore) Save(ctx context.Context, id string, expected uint64, sealed []byte) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	_, v, err := f.Load(ctx, id)
	if err != nil && !errors.Is(err, ratchet.ErrNotFound) {
		return 0, err
	}
	if v != expected {
		return 0, ratchet.ErrConflict
	}
	tmp := f.path(id) + ".tmp"
	if err := os.WriteFile(tmp, append(binary.BigEndian.AppendUint64(nil, expected+1), sealed...), 0o600); err != nil {
		return 0, err
	}
	return expected + 1, os.Rename(tmp, f.path(id))
}

func (f fileStore) Delete(_ context.Context, id string) error {
	if err := os.Remove(f.path(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

func TestFileStoreConformance(t *testing.T) {
	ratchettest.Run(t, func(t *testing.T) ratchet.SessionStore { return newFileStore(t.TempDir()) })
}

// TestCrashRecovery runs the SIGKILL crash test on fileStore.
func TestCrashRecovery(t *testing.T) {
	t.Parallel()
	ratchettest.RunCrash(t, t.TempDir(), func(name string) (ratchet.SessionStore, error) {
		return newFileStore(name), nil
	})
}
