//go:build unix && !linux

package restore

import "golang.org/x/sys/unix"

// futimens sets the times of the file open as fd, to the nanosecond. The
// system calls x/sys/unix offers through a descriptor here take
// microseconds, so the path is used.
func futimens(_ int, dst string, ts *[2]unix.Timespec) error {
	return unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts[:], unix.AT_SYMLINK_NOFOLLOW)
}

// processUmask is not known here without setting it for a moment.
func processUmask() (uint32, bool) { return 0, false }

// plainDir is only known on Linux.
func plainDir(string) bool { return false }

// pwritev writes the first of bs at off (not every Unix has pwritev;
// writeAt calls again for the rest).
func pwritev(fd int, bs [][]byte, off int64) (int, error) { return unix.Pwrite(fd, bs[0], off) }
