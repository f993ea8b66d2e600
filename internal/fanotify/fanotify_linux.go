package fanotify

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// fanotify_event_metadata: event_len u32, vers u8, reserved u8,
// metadata_len u16, mask u64, fd s32, pid s32.
const (
	metaLen  = 24
	offVers  = 4
	offMask  = 8
	offFd    = 16
	offPid   = 20
	contents = unix.FAN_MODIFY | unix.FAN_CLOSE_WRITE
)

// Event is one write by another process.
type Event struct {
	Pid int32
	// Path is the written file's path as seen from this process's mounts
	// ("" when the kernel could not give a descriptor).
	Path string
	// Lost: the kernel's queue overflowed or an event could not be read;
	// some process wrote something, Pid and Path are unknown.
	Lost bool
}

// MarkError says which path's filesystem could not be watched.
type MarkError struct {
	Path string
	Err  error
}

func (e *MarkError) Error() string {
	return fmt.Sprintf("fanotify cannot watch the filesystem of %s: %v", e.Path, e.Err)
}
func (e *MarkError) Unwrap() error { return e.Err }

// Watch reports write(2) and truncation on the filesystems of some paths.
// Writes through shared mappings are not reported by the kernel. Each event
// carries a descriptor of the written file (no FAN_REPORT_FID), which gives
// its path at the price of an open file per event.
type Watch struct {
	fd   int
	buf  []byte
	self int32
}

// Open watches the filesystems that hold paths. It needs CAP_SYS_ADMIN: the
// error then wraps unix.EPERM.
func Open(paths []string) (*Watch, error) {
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC|unix.FAN_NONBLOCK, unix.O_RDONLY|unix.O_LARGEFILE|unix.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("fanotify: %w", err)
	}
	for _, p := range paths {
		if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_FILESYSTEM, contents, unix.AT_FDCWD, p); err != nil {
			unix.Close(fd)
			return nil, &MarkError{Path: p, Err: err}
		}
	}
	return &Watch{fd: fd, buf: make([]byte, 64<<10), self: int32(os.Getpid())}, nil
}

// Fd is the descriptor to poll for readability.
func (w *Watch) Fd() int { return w.fd }

// Close stops the watch.
func (w *Watch) Close() error { return unix.Close(w.fd) }

// Drain reads every queued event and calls fn for each write made by
// another process. This process's own writes are left out, and so is the
// close of a file this process opened for writing that a child of ours
// makes: a child forked while the descriptor is open closes its copy when
// it execs (O_CLOEXEC), and the kernel reports that close as the child's.
func (w *Watch) Drain(fn func(Event)) error {
	for {
		n, err := unix.Read(w.fd, w.buf)
		switch {
		case errors.Is(err, unix.EAGAIN):
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			// The kernel could not open the written file for us (e.g.
			// EMFILE): the event is lost, not the fact that one happened.
			fn(Event{Lost: true})
			return nil
		case n < metaLen:
			return nil
		}
		for off := 0; off+metaLen <= n; {
			ev := w.buf[off:]
			evLen := int(binary.NativeEndian.Uint32(ev))
			if evLen < metaLen || off+evLen > n || ev[offVers] != unix.FANOTIFY_METADATA_VERSION {
				return fmt.Errorf("malformed fanotify event (len %d, version %d)", evLen, ev[offVers])
			}
			mask := binary.NativeEndian.Uint64(ev[offMask:])
			efd := int32(binary.NativeEndian.Uint32(ev[offFd:]))
			pid := int32(binary.NativeEndian.Uint32(ev[offPid:]))
			off += evLen
			path := ""
			if efd >= 0 {
				path, _ = os.Readlink("/proc/self/fd/" + strconv.Itoa(int(efd)))
				unix.Close(int(efd))
			}
			switch {
			case mask&unix.FAN_Q_OVERFLOW != 0:
				fn(Event{Lost: true})
			case pid == w.self:
			case mask&contents == unix.FAN_CLOSE_WRITE && parentOf(pid) == w.self:
			default:
				fn(Event{Pid: pid, Path: strings.TrimSuffix(path, " (deleted)")})
			}
		}
	}
}

// parentOf returns pid's parent, or -1 when the process is gone.
func parentOf(pid int32) int32 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/stat")
	if err != nil {
		return -1
	}
	// pid (comm) state ppid ...; comm may hold spaces and parentheses
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 2 {
		return -1
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return -1
	}
	return int32(ppid)
}

// Comm is a process's command name ("" when it is gone).
func Comm(pid int32) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/comm")
	return strings.TrimSpace(string(b))
}
