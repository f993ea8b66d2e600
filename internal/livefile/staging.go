package livefile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Staging directories are named stagingPrefix+random inside the configured
// staging directory and hold a marker file with the pid of their run, so
// that PurgeStaging can tell a crashed run's leftovers from a live run's
// work and from anything else in that directory.
const (
	stagingPrefix = "stillpoint-stage-"
	stagingMarker = ".stillpoint-staging"
)

type stagingArea struct{ dir string }

func newStagingArea(parent string) (*stagingArea, error) {
	abs, err := filepath.Abs(parent)
	if err != nil {
		return nil, fmt.Errorf("staging directory %s: %w", parent, err)
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("creating staging directory: %w", err)
	}
	// 0700: staged copies of other users' files must not become readable.
	dir, err := os.MkdirTemp(abs, stagingPrefix)
	if err != nil {
		return nil, fmt.Errorf("creating staging directory in %s: %w", abs, err)
	}
	marker := fmt.Sprintf("pid %d\n", os.Getpid())
	if err := os.WriteFile(filepath.Join(dir, stagingMarker), []byte(marker), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("creating staging directory %s: %w", dir, err)
	}
	return &stagingArea{dir: dir}, nil
}

// path is where the staged copy of the original path orig goes: the
// original's directory structure below <area>/files.
func (s *stagingArea) path(orig string) (string, error) {
	vol := filepath.VolumeName(orig)
	// One separator before the rest, never two: Clean would take a leading
	// \\x\y for a UNC share and leave its ".." unresolved (Windows).
	rest := strings.TrimLeftFunc(orig[len(vol):], func(r rune) bool { return r < 0x80 && os.IsPathSeparator(uint8(r)) })
	rel := filepath.Clean(string(filepath.Separator) + rest)
	rel = strings.TrimLeft(rel, string(filepath.Separator))
	if rel == "" || rel == "." {
		return "", fmt.Errorf("cannot stage %q: not a file path", orig)
	}
	if vol != "" {
		// C:\x → files/C/x
		rel = filepath.Join(strings.Trim(vol, `\/:`), rel)
	}
	return filepath.Join(s.dir, "files", rel), nil
}

func (s *stagingArea) remove() error {
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("removing staging directory: %w", err)
	}
	return nil
}

// PurgeStaging removes what crashed runs left in the staging directory dir:
// every staging subdirectory whose marker names a process that no longer
// runs. Directories of running processes, and anything without our
// marker, are left alone. It returns the directories it removed; a missing
// dir is not an error.
func PurgeStaging(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("purging staging directory: %w", err)
	}
	var removed []string
	var errs []error
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), stagingPrefix) {
			continue
		}
		sub := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(filepath.Join(sub, stagingMarker))
		if err != nil {
			continue // not ours, or still being created
		}
		pidText, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "pid ")
		pid, err := strconv.Atoi(pidText)
		if !ok || err != nil || pid <= 0 {
			continue
		}
		if pid == os.Getpid() || processAlive(pid) {
			continue
		}
		if err := os.RemoveAll(sub); err != nil {
			errs = append(errs, fmt.Errorf("removing leftover staging directory: %w", err))
			continue
		}
		removed = append(removed, sub)
	}
	return removed, errors.Join(errs...)
}

// CheckStagingDir rejects a staging directory inside a source or holding
// one: staged copies would be backed up themselves, or staging would copy
// files onto themselves.
func CheckStagingDir(dir string, sources []string) error {
	d, err := canonical(dir)
	if err != nil {
		return fmt.Errorf("staging directory %s: %w", dir, err)
	}
	for _, src := range sources {
		s, err := canonical(src)
		if err != nil {
			return fmt.Errorf("source %s: %w", src, err)
		}
		if within(d, s) {
			return fmt.Errorf("staging directory %s is inside the source %s: choose a directory outside every source", dir, src)
		}
		if within(s, d) {
			return fmt.Errorf("source %s is inside the staging directory %s: choose a directory outside every source", src, dir)
		}
	}
	return nil
}

// canonical is the absolute path with symlinks resolved as far as the path
// exists (the staging directory may not exist yet).
func canonical(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	rest := ""
	for cur := abs; ; {
		if real, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(real, rest), nil
		}
		parent := filepath.Dir(cur)
		if parent == cur {
			return abs, nil
		}
		rest = filepath.Join(filepath.Base(cur), rest)
		cur = parent
	}
}

// within tells whether p is base or below it.
func within(p, base string) bool {
	rel, err := filepath.Rel(base, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
