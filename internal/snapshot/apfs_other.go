//go:build !darwin

package snapshot

import "errors"

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
