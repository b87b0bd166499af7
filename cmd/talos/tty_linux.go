//go:build linux

package main

import (
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// openTTY opens the controlling terminal with echo off; Close restores it.
func openTTY() (io.ReadWriteCloser, error) {
	f, err := os.OpenFile("/dev/tty", os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	old, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	if err != nil {
		f.Close()
		return nil, err
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	quiet.Lflag |= unix.ICANON | unix.ISIG
	if err := unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, &quiet); err != nil {
		f.Close()
		return nil, err
	}
	return &tty{File: f, restore: func() { unix.IoctlSetTermios(int(f.Fd()), unix.TCSETS, old) }}, nil
}

type tty struct {
	*os.File
	restore func()
}

func (t *tty) Close() error {
	t.restore()
	t.File.WriteString("\n")
	return t.File.Close()
}
