package quiesce

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stillpoint-backup/stillpoint/internal/fanotify"
)

const (
	// batchPause lets a busy writer's events pile up (the kernel merges
	// them per file) instead of waking us for each one; it only makes the
	// time of the last write look later, which is on the safe side.
	batchPause = 20 * time.Millisecond
	// ctxCheck bounds how long a cancelled ctx goes unnoticed.
	ctxCheck = 100 * time.Millisecond
)

// fanotifyQuiet watches roots' filesystems with fanotify. used is false
// when fanotify could not be set up; err then says why, for the result.
// Writes elsewhere on the same filesystems are told apart by path; a write
// through another mount of the same filesystem (a bind mount elsewhere) is
// seen under that mount's path.
func fanotifyQuiet(ctx context.Context, roots []string, tr *quietTracker, res *InactivityResult) (used bool, err error) {
	w, err := fanotify.Open(roots)
	if err != nil {
		var me *fanotify.MarkError
		switch {
		case errors.As(err, &me):
			return false, fmt.Errorf("%w; polling instead", err)
		case errors.Is(err, unix.EPERM):
			return false, fmt.Errorf("fanotify needs root (CAP_SYS_ADMIN): %w; polling instead", err)
		}
		return false, fmt.Errorf("fanotify is not available: %w; polling instead", err)
	}
	defer w.Close()
	res.Method = MethodFanotify
	comms := map[int32]string{}
	pfd := []unix.PollFd{{Fd: int32(w.Fd()), Events: unix.POLLIN}}
	for {
		done, next := tr.check(time.Now())
		if done && tr.quietReached {
			// the kernel queues the events of writes made while the
			// snapshot is taken: draining after it tells whether one landed
			done, err := tr.snapWhileWatching(ctx, func() (bool, error) {
				return drainWrites(w, roots, comms, res)
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
		seen, err := drainWrites(w, roots, comms, res)
		if err != nil {
			return true, err
		}
		if seen {
			tr.wrote(time.Now())
			time.Sleep(batchPause)
		}
	}
}

// drainWrites reads every queued event and tells whether one of them was
// a write by another process under roots.
func drainWrites(w *fanotify.Watch, roots []string, comms map[int32]string, res *InactivityResult) (seen bool, err error) {
	err = w.Drain(func(ev fanotify.Event) {
		switch {
		case ev.Lost:
			// some write happened, by whoever
			res.Writes++
			res.LastWriter = nil
			seen = true
		case ev.Path != "" && !under(ev.Path, roots):
			// elsewhere on the same filesystem
		default:
			res.Writes++
			seen = true
			res.LastWriter = &LastWriter{Pid: int(ev.Pid), Comm: commOf(ev.Pid, comms), Path: ev.Path}
		}
	})
	if err != nil {
		return seen, fmt.Errorf("inactivity wait: %w", err)
	}
	return seen, nil
}

// commOf reads a process's command name once per pid: a busy writer makes
// thousands of events.
func commOf(pid int32, cache map[int32]string) string {
	if c, ok := cache[pid]; ok {
		return c
	}
	c := fanotify.Comm(pid)
	if len(cache) > 1000 {
		clear(cache)
	}
	cache[pid] = c
	return c
}

// under tells whether p is one of roots or below one.
func under(p string, roots []string) bool {
	for _, r := range roots {
		if p == r || r == "/" || strings.HasPrefix(p, r+"/") {
			return true
		}
	}
	return false
}
