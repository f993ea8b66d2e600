package livefile

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/stillpoint-backup/stillpoint/internal/view"
)

// LockedBy tells whether another process holds an advisory lock on the file
// at path (a real filesystem path), and who. It returns nil when the file is
// not locked. An exclusive lock (fcntl write lock, exclusive flock) is
// reported before a shared one. st, when given, is the metadata the caller
// listed; a file replaced since then is an error.
//
// macOS has no /proc to name a flock holder: its pid stays 0.
func LockedBy(path string, st *view.Stat) (*Holder, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open for lock probe", Path: path, Err: err}
	}
	defer unix.Close(fd)
	var fst unix.Stat_t
	if err := unix.Fstat(fd, &fst); err != nil {
		return nil, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	if st != nil && (st.Dev != uint64(fst.Dev) || st.Ino != fst.Ino) {
		return nil, fmt.Errorf("probing locks on %s: the file was replaced since it was listed (inode %d, now %d)", path, st.Ino, fst.Ino)
	}
	h, err := probeLocks(fd, true)
	if err != nil {
		return nil, &os.PathError{Op: "probe locks", Path: path, Err: err}
	}
	return h, nil
}

type fdFile interface{ Fd() uintptr }

// probeViewFile looks for an exclusive lock on a file the Reader has open.
// Files without a descriptor (in-memory views) count as unlocked: change
// detection still guards their read.
func probeViewFile(f view.File, _ *view.Stat, _ *OpenFiles) (*Holder, error) {
	ff, ok := f.(fdFile)
	if !ok {
		return nil, nil
	}
	return probeLocks(int(ff.Fd()), false)
}

// probeLocks looks for locks of other processes on the file behind fd,
// which may be open read-only. With shared false it only looks for
// exclusive locks, the ones that mean a writer is at work.
func probeLocks(fd int, shared bool) (*Holder, error) {
	// A read-lock probe conflicts only with write locks. F_GETLK does not
	// report our own process's locks, which do not keep us from reading.
	if h, err := getlk(fd, unix.F_RDLCK); h != nil || err != nil {
		return h, err
	}
	// flock locks are apart from fcntl's: a non-blocking shared flock
	// fails only under an exclusive one; if it succeeds it is dropped.
	switch err := unix.Flock(fd, unix.LOCK_SH|unix.LOCK_NB); {
	case err == nil:
		_ = unix.Flock(fd, unix.LOCK_UN)
	case errors.Is(err, unix.EWOULDBLOCK):
		return &Holder{Lock: LockFlock, Exclusive: true}, nil
	case errors.Is(err, unix.ENOTSUP), errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EINVAL):
		// a filesystem without flock (some network ones): nothing to find
	default:
		return nil, fmt.Errorf("flock probe: %w", err)
	}
	if !shared {
		return nil, nil
	}
	return getlk(fd, unix.F_WRLCK)
}

func getlk(fd int, typ int16) (*Holder, error) {
	lk := unix.Flock_t{Type: typ, Whence: 0, Start: 0, Len: 0}
	if err := unix.FcntlFlock(uintptr(fd), unix.F_GETLK, &lk); err != nil {
		if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) {
			return nil, nil
		}
		return nil, fmt.Errorf("fcntl lock probe: %w", err)
	}
	if lk.Type == unix.F_UNLCK {
		return nil, nil
	}
	h := &Holder{Lock: LockPOSIX, Exclusive: lk.Type == unix.F_WRLCK}
	if lk.Pid > 0 {
		if int(lk.Pid) == os.Getpid() {
			return nil, nil
		}
		h.Pid, h.Comm = int(lk.Pid), commOf(int(lk.Pid))
	}
	return h, nil
}

// commOf is the command name of pid, or "" when it has exited.
func commOf(pid int) string {
	kp, err := unix.SysctlKinfoProc("kern.proc.pid", pid)
	if err != nil || int(kp.Proc.P_pid) != pid {
		return ""
	}
	return unix.ByteSliceToString(kp.Proc.P_comm[:])
}
