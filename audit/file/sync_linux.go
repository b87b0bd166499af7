package file

import (
	"os"
	"syscall"
)

// datasync makes f's data durable with fdatasync(2): the data and the
// metadata needed to read it back (its size), not its times.
func datasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			if err != nil {
				return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}
