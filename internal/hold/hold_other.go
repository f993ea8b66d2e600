//go:build !linux

package hold

import (
	"context"
	"runtime"
)

// Hold is a hold that this platform cannot make.
type Hold struct{ report Report }

// Start holds nothing here: the only volume snapshots that need a hold
// (btrfs) are on Linux. With filesystems to hold it says so in the report.
func Start(_ context.Context, mountpoints []string, opts Options) *Hold {
	if !opts.Enabled || len(mountpoints) == 0 {
		return nil
	}
	return &Hold{report: Report{Message: "holding writers is not available on " + runtime.GOOS}}
}

// Prepare is Start: there is nothing to prepare.
func Prepare(mountpoints []string, opts Options) *Hold {
	return Start(context.Background(), mountpoints, opts)
}

// Stop does nothing.
func (h *Hold) Stop(context.Context) {}

// Release reports the hold.
func (h *Hold) Release() *Report {
	if h == nil {
		return nil
	}
	r := h.report
	return &r
}
