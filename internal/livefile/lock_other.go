//go:build !linux && !darwin

package livefile

import (
	"fmt"

	"github.com/stillpoint-backup/stillpoint/internal/view"
)

// LockedBy cannot tell on this platform: it returns an error wrapping
// ErrLockDetectionUnavailable. The Reader reads files with change
// detection only here.
func LockedBy(path string, st *view.Stat) (*Holder, error) {
	return nil, fmt.Errorf("%s: %w", path, ErrLockDetectionUnavailable)
}

func probeViewFile(f view.File, st *view.Stat, open *OpenFiles) (*Holder, error) {
	return nil, nil
}
