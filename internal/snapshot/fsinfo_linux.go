package snapshot

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/sys/mountinfo"
)

// filesystemOf finds the mount that holds path (symlinks resolved).
func filesystemOf(path string) (FSInfo, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return FSInfo{}, err
	}
	m, err := mountOf(real)
	if err != nil {
		return FSInfo{}, err
	}
	return infoOf(m), nil
}

func infoOf(m *mountinfo.Info) FSInfo {
	ro := false
	for _, o := range strings.Split(m.Options, ",") {
		ro = ro || o == "ro"
	}
	return FSInfo{Mountpoint: m.Mountpoint, FSType: m.FSType, Device: m.Source,
		DevNum: fmt.Sprintf("%d:%d", m.Major, m.Minor), ReadOnly: ro}
}

// mountOf returns the mount of an already resolved path: the longest mount
// point containing it; of several at the same point, the last (topmost).
func mountOf(real string) (*mountinfo.Info, error) {
	ms, err := mountinfo.GetMounts(mountinfo.ParentsFilter(real))
	if err != nil {
		return nil, fmt.Errorf("reading the mount table for %s: %w", real, err)
	}
	var best *mountinfo.Info
	for _, m := range ms {
		if best == nil || len(m.Mountpoint) >= len(best.Mountpoint) {
			best = m
		}
	}
	if best == nil {
		return nil, &os.PathError{Op: "find mount", Path: real, Err: os.ErrNotExist}
	}
	return best, nil
}

// rel is target relative to base, "." when equal; both are clean and
// target is within base.
func rel(base, target string) string {
	r, err := filepath.Rel(base, target)
	if err != nil {
		return "."
	}
	return r
}
