package hold

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// writeWatch sees the writes made to the target filesystems while the
// writers are held, so a writer the scans could not see (one that had
// nothing open there when they looked, e.g. `git -C DIR` started from
// elsewhere) makes the snapshot crash-consistent instead of passing for a
// point in time. A fanotify filesystem mark reports every write(2) with
// its pid; writes through shared mappings are not reported, but a process
// with such a mapping is held.
type writeWatch struct {
	fd     int
	buf    []byte
	within []string // real paths; empty: the whole filesystems
}

// fanotify_event_metadata: event_len u32, vers u8, reserved u8,
// metadata_len u16, mask u64, fd s32, pid s32.
const fanMetaLen = 24

func watchWrites(mountpoints, within []string) (*writeWatch, error) {
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC|unix.FAN_NONBLOCK, unix.O_RDONLY|unix.O_LARGEFILE|unix.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("fanotify: %w", err)
	}
	for _, mp := range mountpoints {
		if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_FILESYSTEM, unix.FAN_MODIFY|unix.FAN_CLOSE_WRITE, unix.AT_FDCWD, mp); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("fanotify mark on %s: %w", mp, err)
		}
	}
	w := &writeWatch{fd: fd, buf: make([]byte, 64<<10)}
	for _, p := range within {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real // event paths are real paths
		}
		w.within = append(w.within, filepath.Clean(p))
	}
	return w, nil
}

// drain reads every queued write event and names the processes, other
// than this one, that made them ("events lost" when the queue overflowed).
func (w *writeWatch) drain() ([]string, error) {
	self := int32(os.Getpid())
	var who []string
	seen := map[int32]bool{}
	for {
		n, err := unix.Read(w.fd, w.buf)
		switch {
		case errors.Is(err, unix.EAGAIN):
			return who, nil
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return who, fmt.Errorf("reading fanotify events: %w", err)
		case n < fanMetaLen:
			return who, nil
		}
		for off := 0; off+fanMetaLen <= n; {
			ev := w.buf[off:]
			evLen := int(binary.NativeEndian.Uint32(ev))
			if evLen < fanMetaLen || off+evLen > n {
				return who, errors.New("malformed fanotify event")
			}
			mask := binary.NativeEndian.Uint64(ev[8:])
			efd := int32(binary.NativeEndian.Uint32(ev[16:]))
			pid := int32(binary.NativeEndian.Uint32(ev[20:]))
			off += evLen
			path := ""
			if efd >= 0 {
				path, _ = os.Readlink("/proc/self/fd/" + strconv.Itoa(int(efd)))
				unix.Close(int(efd))
			}
			switch {
			case mask&unix.FAN_Q_OVERFLOW == 0 && !w.matters(strings.TrimSuffix(path, " (deleted)")):
			case mask&unix.FAN_Q_OVERFLOW != 0:
				who = append(who, "unknown processes (events lost)")
			case pid != self && !seen[pid]:
				seen[pid] = true
				comm, _ := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/comm")
				who = append(who, fmt.Sprintf("%s[%d]", strings.TrimSpace(string(comm)), pid))
			}
		}
	}
}

// matters tells whether a write to path concerns the hold.
func (w *writeWatch) matters(path string) bool {
	if len(w.within) == 0 || path == "" {
		return true
	}
	for _, r := range w.within {
		if path == r || strings.HasPrefix(path, strings.TrimSuffix(r, "/")+"/") {
			return true
		}
	}
	return false
}

func (w *writeWatch) close() { unix.Close(w.fd) }
