package hold

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/stillpoint-backup/stillpoint/internal/fanotify"
)

// writeWatch sees the writes made to the target filesystems while the
// writers are held, so a writer the scans could not see (one that had
// nothing open there when they looked, e.g. `git -C DIR` started from
// elsewhere) makes the snapshot crash-consistent instead of passing for a
// point in time. A fanotify filesystem mark reports every write(2) with
// its pid; writes through shared mappings are not reported, but a process
// with such a mapping is held.
type writeWatch struct {
	w      *fanotify.Watch
	within []string // real paths; empty: the whole filesystems
}

func watchWrites(mountpoints, within []string) (*writeWatch, error) {
	fw, err := fanotify.Open(mountpoints)
	if err != nil {
		return nil, err
	}
	w := &writeWatch{w: fw}
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
	var who []string
	seen := map[int32]bool{}
	lost := false
	err := w.w.Drain(func(ev fanotify.Event) {
		switch {
		case ev.Lost:
			if !lost {
				lost = true
				who = append(who, "unknown processes (events lost)")
			}
		case !w.matters(ev.Path) || seen[ev.Pid]:
		default:
			seen[ev.Pid] = true
			who = append(who, fmt.Sprintf("%s[%d]", fanotify.Comm(ev.Pid), ev.Pid))
		}
	})
	if err != nil {
		return who, fmt.Errorf("reading fanotify events: %w", err)
	}
	return who, nil
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

func (w *writeWatch) close() { w.w.Close() }
