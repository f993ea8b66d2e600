package archiver

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"

	"github.com/stillpoint-backup/stillpoint/internal/pathmap"
	"github.com/stillpoint-backup/stillpoint/internal/view"
)

// MissingError says that none of the paths to back up exists: there is
// nothing to make a snapshot of.
type MissingError struct {
	Paths []string
}

func (e *MissingError) Error() string {
	if len(e.Paths) == 1 {
		return fmt.Sprintf("nothing to back up: %s does not exist", e.Paths[0])
	}
	return fmt.Sprintf("nothing to back up: none of %s exists", strings.Join(e.Paths, ", "))
}

// CheckRoots returns a *MissingError when none of paths exists in v, so
// that a run can stop before it creates, locks or snaps anything. The run
// itself checks again: a path removed in between is missing then.
func CheckRoots(v view.View, paths []string) error {
	roots, err := normalizeRoots(pathmap.Native, paths)
	if err != nil {
		return err
	}
	for _, p := range roots {
		if _, err := v.Lstat(p); err == nil || !notThere(err) {
			return nil // there, or the run will say why it cannot be read
		}
	}
	shown := make([]string, len(roots))
	for i, p := range roots {
		shown[i] = pathmap.Native.Display(p)
	}
	return &MissingError{Paths: shown}
}

// notThere tells whether err means that a path does not exist: it, or a
// directory on its way, is absent or not a directory.
func notThere(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}
