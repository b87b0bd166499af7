//go:build !unix

package file

import (
	"os"

	"github.com/talosgo/talos/audit"
)

// lockDir opens the lock file. Without flock, exclusion across processes is
// the caller's responsibility on this platform.
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, audit.StoreError("file: cannot open the lock file", err)
	}
	return f, nil
}
