package drill

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/stillpoint-backup/stillpoint/internal/report"
)

// verifierRoom is the space verifiers need beyond the restored files: a
// database server writes WAL and logs while it recovers the copy.
const verifierRoom = 256 << 20

// spaceNeeded is what a drill of a snapshot of size bytes needs in its
// scratch directory: the files, a twentieth more for directories and
// blocks, and room for the verifiers.
func spaceNeeded(size int64) int64 { return size + size/20 + verifierRoom }

// ErrNoSpace is returned (wrapped) when the scratch directory cannot hold
// the restore.
var ErrNoSpace = errors.New("not enough free space for the drill's restore")

// makeScratch checks that parent can hold need bytes and makes a fresh
// directory in it, which others may enter (not list) so that a database
// server running as its own user reaches its restored data directory.
func makeScratch(parent string, need int64) (string, error) {
	fi, err := os.Stat(parent)
	if err != nil {
		return "", fmt.Errorf("scratch directory: %w (choose one with --scratch or drill.scratch)", err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("scratch directory %s is not a directory", parent)
	}
	free, err := freeBytes(parent)
	if err != nil {
		return "", fmt.Errorf("scratch directory %s: cannot tell its free space: %w", parent, err)
	}
	if free < need {
		return "", fmt.Errorf("%w: scratch directory %s has %s free, the drill needs %s (the snapshot's files and room for the verifiers); choose another with --scratch or drill.scratch",
			ErrNoSpace, parent, report.Bytes(free), report.Bytes(need))
	}
	dir, err := os.MkdirTemp(parent, "stillpoint-drill-")
	if err != nil {
		return "", fmt.Errorf("scratch directory: %w", err)
	}
	if err := os.Chmod(dir, 0o711); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("scratch directory: %w", err)
	}
	return dir, nil
}

// removeScratch removes dir, also when the restore left directories
// without write permission (a non-root drill cannot remove their entries).
func removeScratch(dir string) error {
	if err := os.RemoveAll(dir); err == nil {
		return nil
	}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove the drill's scratch directory %s: %w", dir, err)
	}
	return nil
}
