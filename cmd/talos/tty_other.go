//go:build !linux

package main

import (
	"errors"
	"io"
)

// openTTY is not supported here: use --passphrase-file or TALOS_PASSPHRASE.
func openTTY() (io.ReadWriteCloser, error) {
	return nil, errors.New("passphrase prompt not supported on this system")
}
