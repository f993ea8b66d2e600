package snapshot

import (
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// The flush before a freeze or hold goes round until a pass is quick,
// because what the snapshot (inside the freeze) has left to write back is
// what the applications dirtied during the last pass: a pass of at most
// flushSettled leaves it about that much. The rounds are bounded, since a
// writer that dirties pages as fast as the disk takes them never lets a
// pass be quick; then the snapshot writes back one pass's worth.
const (
	flushSettled   = 20 * time.Millisecond
	flushMaxPasses = 4
	flushBudget    = time.Second
)

// Flush writes back the dirty pages of every filesystem the plan snaps
// (syncfs), so that the snapshot itself, and any freeze or hold around
// it, has little left to write: the application's stall is then the
// snapshot's own milliseconds, not the writeback of its recent writes.
// It syncs again while a pass takes longer than flushSettled, up to
// flushMaxPasses passes or flushBudget.
func (p *Plan) Flush() error {
	mounts := p.Mounts()
	if len(mounts) == 0 {
		return nil
	}
	start := time.Now()
	for pass := 1; ; pass++ {
		t0 := time.Now()
		if err := syncMounts(mounts); err != nil {
			return err
		}
		now := time.Now()
		if now.Sub(t0) <= flushSettled || pass >= flushMaxPasses || now.Sub(start) >= flushBudget {
			return nil
		}
	}
}

// syncMounts is one pass of Flush; tests replace it.
var syncMounts = syncfsAll

func syncfsAll(mounts []string) error {
	var errs []error
	for _, mp := range mounts {
		fd, err := unix.Open(mp, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			errs = append(errs, &os.PathError{Op: "open", Path: mp, Err: err})
			continue
		}
		if err := unix.Syncfs(fd); err != nil {
			errs = append(errs, fmt.Errorf("syncfs %s: %w", mp, err))
		}
		unix.Close(fd)
	}
	return errors.Join(errs...)
}
