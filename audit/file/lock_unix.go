//go:build unix

package file

import (
	"os"
	"syscall"

	"github.com/talosgo/talos/audit"
)

// lockDir takes an exclusive advisory lock, so two processes never append
// to one directory.
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, audit.StoreError("file: cannot open the lock file", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, audit.StoreError("file: directory is in use by another process", err)
	}
	return f, nil
}
