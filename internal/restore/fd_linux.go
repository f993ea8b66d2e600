package restore

import (
	"errors"
	"os"
	"strconv"
	"strings"
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

// processUmask reads the umask from /proc (Linux 4.7 on): asking the
// system call would set it, for a moment, for every goroutine.
func processUmask() (uint32, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			return uint32(m), err == nil
		}
	}
	return 0, false
}

// plainDir says whether files made in dir get the creating user's group
// and the mode they are created with less the umask: dir has no
// set-group-id bit and no default ACL.
func plainDir(dir string) bool {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil || st.Mode&unix.S_ISGID != 0 {
		return false
	}
	_, err := unix.Getxattr(dir, "system.posix_acl_default", nil)
	return errors.Is(err, unix.ENODATA) || errors.Is(err, unix.ENOTSUP)
}

// pwritev writes bs at off in one system call.
func pwritev(fd int, bs [][]byte, off int64) (int, error) { return unix.Pwritev(fd, bs, off) }
