//go:build !linux && !windows && !darwin

package snapshot

import "path/filepath"

// DefaultProviders: until this platform has a provider (VSS, APFS), only
// live reading.
func DefaultProviders() []Provider { return []Provider{None{}} }

func filesystemOf(path string) (FSInfo, error) {
	return FSInfo{Mountpoint: filepath.VolumeName(path) + string(filepath.Separator)}, nil
}

func subvolumeOf(path string, _ FSInfo) (string, *Subvolume) { return path, nil }

func processStart(int) uint64 { return 0 }

// FindLeftovers finds nothing: no provider here leaves anything on disk.
func FindLeftovers([]string) ([]Leftover, error) { return nil, nil }

// Cleanup has nothing to remove on this platform.
func Cleanup([]Leftover) error { return nil }
