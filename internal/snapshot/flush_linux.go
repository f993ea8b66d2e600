package snapshot

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// Flush writes back the dirty pages of every filesystem the plan snaps
// (syncfs), so that the snapshot itself, and any freeze or hold around
// it, has little left to write: the application's stall is then the
// snapshot's own milliseconds, not the writeback of its recent writes.
func (p *Plan) Flush() error {
	var errs []error
	for _, mp := range p.Mounts() {
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
