// Package snapshot freezes the sources of a backup at one point in time and
// serves them, under their original paths, through a view.View.
//
// A Provider (btrfs, reflink, none; later lvm, zfs, vss, apfs) says whether
// it can snap a path (Detect) and makes a Snapshot of sources that share one
// filesystem (Create). A Set groups the sources of a run by filesystem,
// picks a provider per source according to its Policy, creates every
// snapshot close together (all or nothing) and releases them at the end.
// Every snapshot and staging directory on disk carries a Label, so the next
// run finds and removes what a killed run left behind (FindLeftovers,
// Cleanup). The package knows nothing of the repository.
package snapshot

import (
	"context"

	"github.com/stillpoint-backup/stillpoint/internal/view"
)

// Consistency is the point-in-time promise a snapshot makes.
type Consistency string

// Consistency levels, strongest first.
const (
	// Application: a point in time at which the applications writing the
	// files (VSS writers) had flushed and frozen them: what they restore
	// from without recovery.
	Application Consistency = "application"
	// Volume: every file of the snapshot is from the same instant: every
	// write that completed before it is in, none after.
	Volume Consistency = "volume"
	// Crash: what a power cut would leave. Every page is whole, but writes
	// in flight while the snapshot was made are in or out one by one, so
	// a file being written can be in no state it ever had. Crash-safe
	// applications (databases, anything that orders its writes with fsync)
	// recover from it. A btrfs snapshot is crash-consistent unless the
	// writers are held for it (package hold).
	Crash Consistency = "crash"
	// File: each file is whole at one instant, but files differ in time.
	File Consistency = "file"
	// Live: files are read as they are; a reader must verify them.
	Live Consistency = "live"
)

// Fit is a provider's answer to "can you snap this path?".
type Fit struct {
	Provider    string      `json:"provider"`
	OK          bool        `json:"ok"`
	Consistency Consistency `json:"consistency,omitempty"`
	// Reason says why it does not fit, or what it would snap when it does.
	Reason string `json:"reason,omitempty"`
}

// Provider makes snapshots of one kind.
type Provider interface {
	Name() string
	// Detect reports whether the provider can snap path. An error means the
	// path itself is unusable (missing, unreadable), not that it does not fit.
	Detect(path string) (Fit, error)
	// Create snaps sources, which are absolute original paths on one
	// filesystem. The label names what is created on disk.
	Create(ctx context.Context, sources []string, label Label) (Snapshot, error)
}

// SetCreator is implemented by providers that make one snapshot set of
// every volume at once (VSS): Plan.Create gives CreateSet all the sources
// the provider was chosen for, whatever their filesystems, instead of one
// Create per filesystem. When CreateSet fails, sources with policy
// required fail the run; the others are read live (on warns, auto notes).
type SetCreator interface {
	CreateSet(ctx context.Context, sources []string, label Label) (Snapshot, error)
}

// Preparer is implemented by providers whose Create has work that need
// not happen at the point in time: writing the label (with its fsync),
// making directories, opening what will be snapped. Prepare does that work
// and Snap, later, only takes the snapshot, so a writers' freeze or a hold
// around Snap waits for the snapshot itself and nothing else.
type Preparer interface {
	Prepare(ctx context.Context, sources []string, label Label) (Pending, error)
}

// Pending is a prepared snapshot, not yet taken.
type Pending interface {
	// Snap takes the snapshot. When it fails, what Prepare made is removed.
	Snap(ctx context.Context) (Snapshot, error)
	// Abort removes what Prepare made, when Snap is never called. After
	// Snap it does nothing.
	Abort() error
}

// Snapshot is one provider's point-in-time copy of some sources.
type Snapshot interface {
	Provider() string
	Consistency() Consistency
	Sources() []string
	// View serves the sources under their original paths.
	View() view.View
	// Notes are facts a user should see in the report, e.g. that nested
	// subvolumes are not atomic with their parent.
	Notes() []string
	// Release deletes what Create made. It is idempotent.
	Release() error
}

// Cloner is implemented by snapshots that can freeze single files on
// demand (reflink): Clone makes path's current content the content that
// the view serves for it until Release.
type Cloner interface {
	Clone(path string) error
}

// OriginOf tells where the bytes of a file opened through a view of this
// package come from: Crash (a volume snapshot), File (a per-file clone)
// or Live.
func OriginOf(f view.File) Consistency {
	if o, ok := f.(interface{ Consistency() Consistency }); ok {
		return o.Consistency()
	}
	return Live
}
