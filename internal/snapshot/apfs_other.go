//go:build !darwin

package snapshot

import (
	"errors"
	"path/filepath"
)

var errNoAPFS = errors.New("APFS snapshots exist only on macOS")

// noAPFS answers on platforms without APFS; tests give APFS a System.
type noAPFS struct{}

func systemAPFS() APFSSystem { return noAPFS{} }

func (noAPFS) VolumeOf(string) (FSInfo, error) { return FSInfo{}, errNoAPFS }
func (noAPFS) Volumes() ([]FSInfo, error)      { return nil, errNoAPFS }
func (noAPFS) Mounts() ([]MountEntry, error)   { return nil, errNoAPFS }
func (noAPFS) Root() bool                      { return false }
func (noAPFS) Alive(int, uint64) bool          { return true }

// APFSDoctor has nothing to report off macOS.
func APFSDoctor([]string) *APFSReport { return nil }

// evalSymlinks resolves the symlinks of a source, in slash form: off macOS
// only the replay tests take APFS snapshots, of temporary directories that
// stand for macOS volumes, and the APFS code works on slash paths.
func evalSymlinks(p string) (string, error) {
	real, err := filepath.EvalSymlinks(p)
	return filepath.ToSlash(real), err
}

// macPath is p as the APFS code takes it: a slash path, as on macOS.
func macPath(p string) string { return filepath.ToSlash(p) }
