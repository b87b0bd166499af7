//go:build !linux

package file

import "os"

// datasync makes f's data durable. Without fdatasync(2) it is f.Sync
// (F_FULLFSYNC on macOS).
func datasync(f *os.File) error { return f.Sync() }
