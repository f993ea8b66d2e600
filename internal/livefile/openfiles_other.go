//go:build !linux && !darwin

package livefile

import (
	"fmt"
	"runtime"
)

// ScanOpenForWrite returns an empty set on this platform: it has no /proc to
// ask, so files are read with change detection only. Note says so.
func ScanOpenForWrite() (*OpenFiles, error) {
	return &OpenFiles{note: fmt.Sprintf("open-file detection is not available on %s; files are read with change detection only", runtime.GOOS)}, nil
}
