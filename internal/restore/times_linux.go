package restore

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// futimens sets the times of the file open as fd, to the nanosecond: it
// is utimensat with no path, as the C library's futimens is (x/sys/unix
// offers only microseconds through a descriptor, Futimes).
func futimens(fd int, _ string, ts *[2]unix.Timespec) error {
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(ts)), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}
