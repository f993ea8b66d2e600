//go:build !linux && !windows

package view

import (
	"os"

	"golang.org/x/sys/unix"
)

func openFile(p string) (File, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	return &osFile{f}, nil
}

func fstat(f *os.File) (*Stat, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, &os.PathError{Op: "fstat", Path: f.Name(), Err: err}
	}
	return fromUnix(&st), nil
}
