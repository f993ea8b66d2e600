package quiesce

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Method is how WaitQuiet noticed writes.
type Method string

// The methods of WaitQuiet.
const (
	// MethodFanotify watches the sources' filesystems with fanotify (Linux,
	// root): every write is seen as it happens, with the writer's pid.
	MethodFanotify Method = "fanotify"
	// MethodPoll compares the size and mtime of the files under the sources
	// at intervals: a write is seen one interval late, and who wrote is
	// unknown.
	MethodPoll Method = "poll"
)

// Default limits of the polling fallback.
const (
	DefaultPollMaxFiles = 100_000
	minPollInterval     = 20 * time.Millisecond
	maxPollInterval     = time.Second
)

// InactivityOptions tune WaitQuiet.
type InactivityOptions struct {
	// ForcePoll skips fanotify, e.g. for a network filesystem whose writes
	// by other hosts fanotify cannot see, or in tests.
	ForcePoll bool
	// Files, when set, are the only files polled (e.g. the files the run
	// found open for writing); otherwise polling walks every source.
	Files []string
	// PollInterval is the polling period; 0 picks a quarter of the quiet
	// period, between 20 ms and 1 s, and never less than four times the
	// time one poll takes, so polling costs at most a fifth of a core.
	PollInterval time.Duration
	// MaxFiles bounds the entries one poll walks; 0 means
	// DefaultPollMaxFiles. Entries beyond it are not watched (the result
	// says so).
	MaxFiles int
	// Snap, when set, takes the snapshot once the quiet period is reached,
	// while the watch goes on: a write that lands between the end of the
	// quiet period and the end of Snap may be in the snapshot half done.
	// Then the snapshot is released and the wait starts again, within
	// maxWait; past it the last snapshot is kept and the result is not
	// Quiet. Snap calls ready to have the watch looked at: last right
	// before it makes the snapshot, and before that as often as it likes.
	// forgive says that the writes since the look before (or since Snap
	// began) are those of writers freezing their applications, which do
	// not count; any other write seen while Snap prepares spoils the
	// snapshot as one while it is made does. release must undo what Snap
	// made.
	Snap func(ctx context.Context, ready func(forgive bool)) (release func(), err error)
	// SnapOnlyWhenQuiet: when maxWait passes without a quiet period, Snap
	// is not called (the caller fails the run).
	SnapOnlyWhenQuiet bool
}

// LastWriter is the process that wrote last.
type LastWriter struct {
	Pid  int    `json:"pid"`
	Comm string `json:"comm,omitempty"` // "" when it exited before we looked
	// Path is the file it wrote, when known.
	Path string `json:"path,omitempty"`
}

func (w *LastWriter) String() string {
	if w == nil {
		return "unknown"
	}
	s := fmt.Sprintf("pid %d", w.Pid)
	if w.Comm != "" {
		s += " (" + w.Comm + ")"
	}
	if w.Path != "" {
		s += " writing " + w.Path
	}
	return s
}

// InactivityResult is what WaitQuiet found.
type InactivityResult struct {
	// Quiet is true when no write happened for the whole quiet period.
	Quiet bool `json:"quiet"`
	// QuietFor is the time without writes when WaitQuiet returned.
	QuietFor time.Duration `json:"quiet_for_ns"`
	// Waited is the time WaitQuiet took.
	Waited time.Duration `json:"waited_ns"`
	Method Method        `json:"method"`
	// Fallback says why fanotify was not used; "" when it was (or polling
	// was asked for).
	Fallback string `json:"fallback,omitempty"`
	// Writes counts the write events (fanotify) or the polls that found a
	// change (polling).
	Writes int `json:"writes"`
	// LastWriter is the process that wrote last; nil when nothing was
	// written while we watched, or the method cannot tell.
	LastWriter *LastWriter `json:"last_writer,omitempty"`
	// Message is a sentence for the report.
	Message string `json:"message"`
	// Resnapped counts the snapshots released because a write landed
	// while they were made (see InactivityOptions.Snap).
	Resnapped int `json:"resnapped,omitempty"`
}

// WaitQuiet waits until no write happened under paths for the quiet
// period, and returns as soon as it did; the time before the call does
// not count, since nothing watched it. If maxWait passes first it returns
// Quiet=false (not an error): the caller decides whether to snap anyway,
// crash-consistent, or to fail. maxWait 0 means no limit but ctx.
//
// On Linux as root it uses a fanotify filesystem mark on each path's
// filesystem and counts the writes of other processes under the paths;
// elsewhere, or when fanotify is refused, it polls (see
// InactivityOptions), and the result's Fallback says why.
func WaitQuiet(ctx context.Context, paths []string, quiet, maxWait time.Duration, opts InactivityOptions) (InactivityResult, error) {
	start := time.Now()
	res := InactivityResult{Method: MethodPoll}
	if len(paths) == 0 {
		return res, errors.New("inactivity wait: no source path to watch")
	}
	if quiet < 0 || maxWait < 0 {
		return res, fmt.Errorf("inactivity wait: negative duration (inactivity %s, max-wait %s)", quiet, maxWait)
	}
	if maxWait > 0 && maxWait < quiet {
		return res, fmt.Errorf("inactivity wait: max-wait %s is shorter than the inactivity period %s, so it could never be reached; raise max-wait", maxWait, quiet)
	}
	roots := make([]string, 0, len(paths))
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return res, fmt.Errorf("inactivity wait: %w", err)
		}
		if real, err := filepath.EvalSymlinks(abs); err == nil {
			abs = real // event paths are real paths
		}
		if _, err := os.Stat(abs); err != nil {
			return res, fmt.Errorf("inactivity wait: source %s: %w", p, err)
		}
		roots = append(roots, abs)
	}
	if quiet == 0 {
		res.Quiet, res.Message = true, "no inactivity period asked for"
		if opts.Snap != nil {
			_, err := opts.Snap(ctx, func(bool) {})
			return res, err
		}
		return res, nil
	}
	tr := &quietTracker{start: start, last: start, quiet: quiet, maxWait: maxWait, snap: opts.Snap}
	var err error
	if opts.ForcePoll {
		err = pollQuiet(ctx, roots, tr, opts, &res)
	} else {
		var used bool
		used, err = fanotifyQuiet(ctx, roots, tr, &res)
		if !used {
			res.Fallback = err.Error()
			err = pollQuiet(ctx, roots, tr, opts, &res)
		}
	}
	now := time.Now()
	res.Waited = now.Sub(start)
	res.QuietFor = now.Sub(tr.last)
	res.Quiet = tr.quietReached
	res.Resnapped = tr.resnapped
	if err != nil {
		return res, err
	}
	if tr.snap != nil && !tr.snapped && !opts.SnapOnlyWhenQuiet {
		// max-wait passed without a quiet period: snap anyway, crash-consistent
		if _, err := tr.snap(ctx, func(bool) {}); err != nil {
			return res, err
		}
	}
	res.Message = tr.message(res)
	return res, nil
}

// quietTracker decides, from the times writes were seen, whether the quiet
// period was reached or the wait is over. It takes the time as an argument
// so tests can drive it with a made-up clock.
type quietTracker struct {
	start, last    time.Time
	quiet, maxWait time.Duration
	quietReached   bool
	lateWrite      bool // a write landed while the kept snapshot was made

	snap      func(context.Context, func(bool)) (func(), error)
	snapped   bool // snap made the snapshot that is kept
	resnapped int
}

// snapWhileWatching takes the snapshot once the quiet period is reached
// (when there is a Snap). wroteSince tells whether a write was seen since
// the watcher last looked; it is asked right before the snapshot, so the
// quiet period still holds then, and right after it, so a write that
// landed while it was made is known. done is true when the wait is over;
// false sends the caller back to waiting for a quiet period.
func (t *quietTracker) snapWhileWatching(ctx context.Context, wroteSince func() (bool, error)) (done bool, err error) {
	if t.snap == nil {
		return true, nil
	}
	if seen, err := wroteSince(); err != nil || seen {
		if seen {
			t.wrote(time.Now())
			t.quietReached = false
		}
		return err != nil, err
	}
	var (
		readyErr error
		early    bool // a write while Snap prepared, that is not forgiven
	)
	release, err := t.snap(ctx, func(forgive bool) {
		seen, err := wroteSince()
		early = early || seen && !forgive
		readyErr = cmp.Or(readyErr, err)
	})
	if err == nil {
		err = readyErr
	}
	if err != nil {
		return true, err
	}
	seen, err := wroteSince()
	if err != nil || !seen && !early {
		t.snapped = true
		return true, err
	}
	t.wrote(time.Now())
	t.quietReached = false
	if t.maxWait > 0 && time.Since(t.start) >= t.maxWait {
		t.snapped, t.lateWrite = true, true // no time left for another try: keep it, crash-consistent
		return true, nil
	}
	t.resnapped++
	release()
	return false, nil
}

func (t *quietTracker) wrote(at time.Time) {
	if at.After(t.last) {
		t.last = at
	}
}

// check tells whether the wait is over, and if not, how long to wait at
// most before checking again.
func (t *quietTracker) check(now time.Time) (done bool, next time.Duration) {
	if now.Sub(t.last) >= t.quiet {
		t.quietReached = true
		return true, 0
	}
	next = t.last.Add(t.quiet).Sub(now)
	if t.maxWait > 0 {
		left := t.start.Add(t.maxWait).Sub(now)
		if left <= 0 {
			return true, 0
		}
		next = min(next, left)
	}
	return false, next
}

func (t *quietTracker) message(res InactivityResult) string {
	if t.quietReached {
		if res.Writes == 0 {
			return fmt.Sprintf("no write for %s (%s)", t.quiet, res.Method)
		}
		return fmt.Sprintf("quiet for %s after %s of waiting; last writer %s (%s)",
			t.quiet, res.Waited.Round(time.Millisecond), res.LastWriter, res.Method)
	}
	if t.lateWrite {
		return fmt.Sprintf("a write landed while the snapshot was made, and max-wait %s left no time for another (last writer %s); snapshot is crash-consistent",
			t.maxWait, res.LastWriter)
	}
	return fmt.Sprintf("no quiet period of %s within %s (last writer %s); snapshot is crash-consistent",
		t.quiet, t.maxWait, res.LastWriter)
}

// fileState is what polling compares between two polls.
type fileState struct {
	size  int64
	mtime time.Time
}

// pollQuiet polls the sizes and mtimes of the files (or every entry under
// the roots, directories included so that creations and deletions count).
func pollQuiet(ctx context.Context, roots []string, tr *quietTracker, opts InactivityOptions, res *InactivityResult) error {
	res.Method = MethodPoll
	maxFiles := opts.MaxFiles
	if maxFiles <= 0 {
		maxFiles = DefaultPollMaxFiles
	}
	interval := opts.PollInterval
	if interval <= 0 {
		interval = min(max(tr.quiet/4, minPollInterval), maxPollInterval)
	}
	var prev map[string]fileState
	for {
		t0 := time.Now()
		cur, capped := pollState(roots, opts.Files, maxFiles)
		took := time.Since(t0)
		if capped && res.Fallback != "" && !strings.Contains(res.Fallback, "only the first") {
			res.Fallback += fmt.Sprintf("; polling watches only the first %d entries", maxFiles)
		}
		if prev != nil && !sameState(prev, cur) {
			res.Writes++
			tr.wrote(time.Now())
		}
		prev = cur
		done, next := tr.check(time.Now())
		if done && tr.quietReached {
			done, err := tr.snapWhileWatching(ctx, func() (bool, error) {
				now, _ := pollState(roots, opts.Files, maxFiles)
				if sameState(prev, now) {
					return false, nil
				}
				res.Writes++
				prev = now
				return true, nil
			})
			if done || err != nil {
				return err
			}
			continue
		}
		if done {
			return nil
		}
		wait := min(max(interval, 4*took), next)
		select {
		case <-ctx.Done():
			return fmt.Errorf("inactivity wait: %w", context.Cause(ctx))
		case <-time.After(wait):
		}
	}
}

func pollState(roots, files []string, maxFiles int) (map[string]fileState, bool) {
	st := make(map[string]fileState)
	add := func(p string, fi fs.FileInfo) {
		st[p] = fileState{size: fi.Size(), mtime: fi.ModTime()}
	}
	if len(files) > 0 {
		for _, f := range files {
			if fi, err := os.Stat(f); err == nil {
				add(f, fi)
			}
		}
		return st, false
	}
	capped := false
	for _, r := range roots {
		_ = filepath.WalkDir(r, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil // vanished or unreadable: its parent's mtime tells
			}
			if len(st) >= maxFiles {
				capped = true
				return filepath.SkipAll
			}
			if fi, err := d.Info(); err == nil {
				add(p, fi)
			}
			return nil
		})
	}
	return st, capped
}

func sameState(a, b map[string]fileState) bool {
	if len(a) != len(b) {
		return false
	}
	for p, s := range a {
		if t, ok := b[p]; !ok || t.size != s.size || !t.mtime.Equal(s.mtime) {
			return false
		}
	}
	return true
}
