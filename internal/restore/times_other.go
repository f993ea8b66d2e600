//go:build unix && !linux

package restore

import "golang.org/x/sys/unix"

// futimens sets the times of the file open as fd, to the nanosecond. The
// system calls x/sys/unix offers through a descriptor here take
// microseconds, so the path is used.
func futimens(_ int, dst string, ts *[2]unix.Timespec) error {
	return unix.UtimesNanoAt(unix.AT_FDCWD, dst, ts[:], unix.AT_SYMLINK_NOFOLLOW)
}
