package quiesce

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Layout of struct fanotify_event_metadata (include/uapi/linux/fanotify.h):
// event_len u32, vers u8, reserved u8, metadata_len u16, mask u64,
// fd s32, pid s32.
const (
	fanMetaLen     = 24
	fanOffVers     = 4
	fanOffMask     = 8
	fanOffFd       = 16
	fanOffPid      = 20
	fanWriteEvents = unix.FAN_MODIFY | unix.FAN_CLOSE_WRITE
	// batchPause lets a busy writer's events pile up (the kernel merges
	// them per file) instead of waking us for each one; it only makes the
	// time of the last write look later, which is on the safe side.
	batchPause = 20 * time.Millisecond
	// ctxCheck bounds how long a cancelled ctx goes unnoticed.
	ctxCheck = 100 * time.Millisecond
)

// fanotifyQuiet watches roots' filesystems with fanotify. used is false
// when fanotify could not be set up; err then says why, for the result.
//
// Without FAN_REPORT_FID each event carries a descriptor of the written
// file, which gives its path (to ignore writes elsewhere on the same
// filesystem) at the price of an open file per event; FID mode would need
// open_by_handle_at for the same answer. Only content writes count
// (FAN_MODIFY, FAN_CLOSE_WRITE); writes through a shared mmap are not
// reported by the kernel, and a write through another mount of the same
// filesystem (a bind mount elsewhere) is seen under that mount's path.
func fanotifyQuiet(ctx context.Context, roots []string, tr *quietTracker, res *InactivityResult) (used bool, err error) {
	fd, err := unix.FanotifyInit(unix.FAN_CLASS_NOTIF|unix.FAN_CLOEXEC|unix.FAN_NONBLOCK, unix.O_RDONLY|unix.O_LARGEFILE|unix.O_CLOEXEC)
	if err != nil {
		if errors.Is(err, unix.EPERM) {
			return false, fmt.Errorf("fanotify needs root (CAP_SYS_ADMIN): %w; polling instead", err)
		}
		return false, fmt.Errorf("fanotify is not available: %w; polling instead", err)
	}
	defer unix.Close(fd)
	for _, r := range roots {
		if err := unix.FanotifyMark(fd, unix.FAN_MARK_ADD|unix.FAN_MARK_FILESYSTEM, fanWriteEvents, unix.AT_FDCWD, r); err != nil {
			return false, fmt.Errorf("fanotify cannot watch the filesystem of %s: %w; polling instead", r, err)
		}
	}
	res.Method = MethodFanotify
	self := int32(os.Getpid())
	buf := make([]byte, 64<<10)
	comms := map[int32]string{}
	pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		done, next := tr.check(time.Now())
		if done && tr.quietReached {
			// the kernel queues the events of writes made while the
			// snapshot is taken: draining after it tells whether one landed
			done, err := tr.snapWhileWatching(ctx, func() (bool, error) {
				return drainFanotify(fd, buf, self, roots, comms, res)
			})
			if done || err != nil {
				return true, err
			}
			continue
		}
		if done {
			return true, nil
		}
		if err := ctx.Err(); err != nil {
			return true, fmt.Errorf("inactivity wait: %w", context.Cause(ctx))
		}
		wait := min(next, ctxCheck)
		ms := int((wait + time.Millisecond - 1) / time.Millisecond)
		if _, err := unix.Poll(pfd, ms); err != nil && !errors.Is(err, unix.EINTR) {
			return true, fmt.Errorf("inactivity wait: poll fanotify: %w", err)
		}
		seen, err := drainFanotify(fd, buf, self, roots, comms, res)
		if err != nil {
			return true, err
		}
		if seen {
			tr.wrote(time.Now())
			time.Sleep(batchPause)
		}
	}
}

// drainFanotify reads every queued event and tells whether one of them was
// a write by another process under roots.
func drainFanotify(fd int, buf []byte, self int32, roots []string, comms map[int32]string, res *InactivityResult) (seen bool, err error) {
	for {
		n, err := unix.Read(fd, buf)
		switch {
		case errors.Is(err, unix.EAGAIN):
			return seen, nil
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			// The kernel could not open the written file for us (e.g.
			// EMFILE): we lost the event, so count it as a write.
			res.Writes++
			return true, nil
		case n < fanMetaLen:
			return seen, nil
		}
		for off := 0; off+fanMetaLen <= n; {
			ev := buf[off:]
			evLen := int(binary.NativeEndian.Uint32(ev))
			if evLen < fanMetaLen || off+evLen > n || ev[fanOffVers] != unix.FANOTIFY_METADATA_VERSION {
				return seen, fmt.Errorf("inactivity wait: malformed fanotify event (len %d, version %d)", evLen, ev[fanOffVers])
			}
			mask := binary.NativeEndian.Uint64(ev[fanOffMask:])
			efd := int32(binary.NativeEndian.Uint32(ev[fanOffFd:]))
			pid := int32(binary.NativeEndian.Uint32(ev[fanOffPid:]))
			off += evLen
			path := ""
			if efd >= 0 {
				path, _ = os.Readlink("/proc/self/fd/" + strconv.Itoa(int(efd)))
				unix.Close(int(efd))
			}
			switch {
			case mask&unix.FAN_Q_OVERFLOW != 0:
				// Events were lost: some write happened, by whoever.
				res.Writes++
				res.LastWriter = nil
				seen = true
			case pid == self:
				// Our own writes (logs, staging) are not the application's.
			case path != "" && !under(strings.TrimSuffix(path, " (deleted)"), roots):
				// Elsewhere on the same filesystem.
			default:
				res.Writes++
				seen = true
				res.LastWriter = &LastWriter{Pid: int(pid), Comm: commOf(pid, comms), Path: path}
			}
		}
	}
}

// commOf reads a process's command name once per pid: a busy writer makes
// thousands of events.
func commOf(pid int32, cache map[int32]string) string {
	if c, ok := cache[pid]; ok {
		return c
	}
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(int(pid)) + "/comm")
	c := strings.TrimSpace(string(b))
	if len(cache) > 1000 {
		clear(cache)
	}
	cache[pid] = c
	return c
}
