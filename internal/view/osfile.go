//go:build !linux

package view

import "os"

// osFile is a File on an *os.File: an open file where the system is not
// Linux (there it is an fdFile, see open_linux.go), a Windows stream.
type osFile struct{ *os.File }

func (f *osFile) Stat() (*Stat, error) { return fstat(f.File) }
